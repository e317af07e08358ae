package policy

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Snapshot is a cluster's state as plain objects: the input to NewState.
type Snapshot struct {
	Mesh                Mesh
	Namespaces          []*corev1.Namespace
	Services            []*corev1.Service
	Pods                []*corev1.Pod
	PeerAuthentications []*securityv1.PeerAuthentication
	DestinationRules    []*networkingv1.DestinationRule
	// ServiceEntries, WorkloadEntries and Sidecars: see serviceentry.go
	// and sidecarscope.go.
	ServiceEntries  []*networkingv1.ServiceEntry
	WorkloadEntries []*networkingv1.WorkloadEntry
	Sidecars        []*networkingv1.Sidecar
}

// State is an indexed snapshot. Reads (Table, Decide) never modify it, so
// any number may run at once. Apply, Remove and SetMesh change it and must
// not run concurrently with anything else on the same State; to change a
// State that others are reading, change a Clone, which costs O(1) and shares
// everything the change does not touch.
type State struct {
	// base is the mesh the caller configured; mesh is base with the mesh
	// ConfigMap laid over it.
	base       Mesh
	mesh       Mesh
	namespaces pmap[*namespace]
	// servicesByHost finds the service of an exact rule host.
	servicesByHost pmap[*service]
	// drHosts and drWildcards count, per rule host, the namespaces with a
	// rule for it. They name the client namespaces whose own rules can change
	// a lookup. Namespace-wide wildcards ("*.<ns>.svc.<domain>") are kept
	// apart in drNamespaceWide, keyed by the namespace they cover, so that a
	// lookup does not scan them.
	// Like the rest of the State they are never changed, only replaced: a
	// rule event replaces the counts of its host, not all of them.
	drHosts         counts
	drWildcards     map[string]map[string]int // few: copied whole on a change
	drNamespaceWide counts
	// exportNamed counts, per namespace, the namespaces its rules name in
	// exportTo.
	exportNamed counts
	// totalViews counts the client views of every namespace;
	// totalZtunnelViews their ambient client views (ambient_views.go).
	totalViews        int
	totalZtunnelViews int
	// entryIdx indexes ServiceEntry services and Sidecars (serviceentry.go);
	// nil when there are none. Replaced, never changed.
	entryIdx *entryHosts
	// versions numbers the namespaces and mesh settings of this State and
	// of every Clone of it, so that a cache kept across States
	// (servers.go) tells them apart; meshVersion is the mesh settings'.
	versions    *atomic.Uint64
	meshVersion uint64
	// clientVersion and the namespaces' rulesVersion date the services'
	// client plans (clients.go). A DestinationRule event changes the
	// lookups of the services its host matches only: the rulesVersion of
	// the namespace its host names (or a namespace-wide wildcard covers)
	// changes with it. Other wildcards, the mesh settings, ServiceEntries,
	// WorkloadEntries and Sidecars change clientVersion, for every
	// service; pods, namespaces, Services and PeerAuthentications do not
	// reach the plans (clientsMayChange). The namespaces a
	// rule's exportTo names are special for the services of its namespace
	// (specialNamespaces), but they resolve differently only those its host
	// matches: a plan that keeps the earlier set evaluates them one by one,
	// or with the others, to the same rows.
	clientVersion uint64
}

// namespace is never changed once a State that holds it is shared: an
// event replaces it with a changed copy (see State.edit).
type namespace struct {
	// version is unique among the namespaces of a State and its Clones:
	// a changed copy has a new one. rulesVersion is the version in which
	// the rules that can match its services last changed (clients.go).
	version      uint64
	rulesVersion uint64
	name         string
	labels       map[string]string
	pods         pmap[*pod]
	services     map[string]*service
	pas          []*peerAuth // oldest first
	drs          []*destRule // sortDestRules order
	drIdx        *drIndex
	views        []ClientView
	injection    bool
	entries      *entries // ServiceEntries, WorkloadEntries, Sidecars; nil: none
	// ambient: labelled istio.io/dataplane-mode=ambient; ztunnel is its
	// ambient client view, if any.
	ambient bool
	ztunnel []ClientView
}

// NewState indexes a snapshot. It fails on the first object it cannot use,
// naming it.
func NewState(s Snapshot) (*State, error) {
	st := &State{
		mesh:            s.Mesh,
		namespaces:      newPmap[*namespace](),
		servicesByHost:  newPmap[*service](),
		drHosts:         newCounts(),
		drNamespaceWide: newCounts(),
		exportNamed:     newCounts(),
		versions:        new(atomic.Uint64),
	}
	st.meshVersion = st.versions.Add(1)
	st.clientVersion = st.meshVersion
	if st.mesh.RootNamespace == "" || st.mesh.ClusterDomain == "" {
		d := DefaultMesh()
		if st.mesh.RootNamespace == "" {
			st.mesh.RootNamespace = d.RootNamespace
		}
		if st.mesh.ClusterDomain == "" {
			st.mesh.ClusterDomain = d.ClusterDomain
		}
	}
	st.base = st.mesh

	// Build plain per-namespace structures first, then freeze them.
	type building struct {
		n    *namespace
		pods map[string]*pod
	}
	all := map[string]*building{}
	get := func(name string) *building {
		b, ok := all[name]
		if !ok {
			b = &building{n: &namespace{name: name, services: map[string]*service{}}, pods: map[string]*pod{}}
			all[name] = b
		}
		return b
	}
	for _, o := range s.Namespaces {
		get(o.Name).n.setLabels(o.Labels)
	}
	for _, o := range s.Pods {
		if !terminated(o) {
			get(o.Namespace).pods[o.Name] = newPod(o)
		}
	}
	for _, o := range s.PeerAuthentications {
		pa, err := newPeerAuth(o)
		if err != nil {
			return nil, err
		}
		b := get(o.Namespace)
		b.n.pas = append(b.n.pas, pa)
	}
	for _, o := range s.DestinationRules {
		dr, err := newDestRule(o, st.mesh.ClusterDomain)
		if err != nil {
			return nil, err
		}
		b := get(o.Namespace)
		b.n.drs = append(b.n.drs, dr)
		st.countDR(dr, 1)
	}
	byNamespace := map[string][]*corev1.Service{}
	for _, o := range s.Services {
		byNamespace[o.Namespace] = append(byNamespace[o.Namespace], o)
		get(o.Namespace)
	}
	hosts := map[string]*service{}
	nss := map[string]*namespace{}
	for name, b := range all {
		n := b.n
		n.version = st.versions.Add(1)
		n.pods = pmapOf(b.pods)
		for _, o := range byNamespace[name] {
			if old := n.services[o.Name]; old != nil {
				delete(hosts, old.host)
				delete(n.services, o.Name)
			}
			if o.Spec.Type == corev1.ServiceTypeExternalName {
				continue
			}
			svc := newService(o, st.mesh.ClusterDomain)
			svc.members = selectMembers(svc.selector, b.pods)
			n.services[o.Name] = svc
			hosts[svc.host] = svc
		}
		sortPeerAuths(n.pas)
		if len(n.drs) > 0 {
			sortDestRules(n.drs)
			n.drIdx = buildDRIndex(name, n.drs, st.mesh)
		}
		if len(b.pods) > 0 || len(n.drs) > 0 || n.injection {
			n.views = computeViews(n, n.drs)
			st.totalViews += len(n.views)
		}
		n.ztunnel = computeZtunnelView(n)
		st.totalZtunnelViews += len(n.ztunnel)
		nss[name] = n
	}
	st.namespaces = pmapOf(nss)
	st.servicesByHost = pmapOf(hosts)
	if len(s.ServiceEntries)+len(s.WorkloadEntries)+len(s.Sidecars) > 0 {
		if err := st.addEntries(s.ServiceEntries, s.WorkloadEntries, s.Sidecars); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// Clone returns a copy of s that Apply, Remove and SetMesh can change while
// others keep reading s. It costs O(1): the copy shares s's structures and
// replaces, never changes, those an event touches. s itself must not be
// changed afterwards.
func (s *State) Clone() *State {
	c := *s
	return &c
}

// Mesh returns the mesh settings in force.
func (s *State) Mesh() Mesh { return s.mesh }

// ns returns the namespace name, or nil.
func (s *State) ns(name string) *namespace { return s.namespaces.get(name) }

// edit returns a private copy of namespace name (a new one if it does not
// exist) and puts it in s in place of the shared one.
func (s *State) edit(name string) *namespace {
	var n *namespace
	if old := s.namespaces.get(name); old != nil {
		c := *old
		n = &c
	} else {
		n = &namespace{name: name, pods: newPmap[*pod](), services: map[string]*service{}}
	}
	n.version = s.versions.Add(1)
	s.namespaces = s.namespaces.set(name, n)
	return n
}

func (n *namespace) setLabels(l map[string]string) {
	n.labels = l
	n.injection = l[InjectionLabel] == "enabled" || l[RevisionLabel] != ""
	n.ambient = l[DataplaneModeLabel] == "ambient"
}

// setService replaces (svc non-nil) or removes service name of n, which
// must be a private copy.
func (s *State) setService(n *namespace, name string, svc *service) {
	old := n.services[name]
	n.services = maps.Clone(n.services)
	if old != nil {
		s.servicesByHost = s.servicesByHost.del(old.host)
		delete(n.services, name)
	}
	if svc != nil {
		n.services[name] = svc
		s.servicesByHost = s.servicesByHost.set(svc.host, svc)
	}
}

func (s *State) putService(o *corev1.Service) {
	n := s.edit(o.Namespace)
	if o.Spec.Type == corev1.ServiceTypeExternalName {
		s.setService(n, o.Name, nil)
		return
	}
	svc := newService(o, s.mesh.ClusterDomain)
	var pods []*pod
	n.pods.each(func(_ string, p *pod) bool {
		if selects(svc.selector, p) {
			pods = append(pods, p)
		}
		return true
	})
	sortPods(pods)
	svc.members = pods
	s.setService(n, o.Name, svc)
}

// selects reports whether a service selector picks pod p. An empty
// selector picks nothing: such a service has no managed endpoints.
func selects(sel selector, p *pod) bool {
	return len(sel) > 0 && sel.matches(p.labels)
}

func selectMembers(sel selector, pods map[string]*pod) []*pod {
	var out []*pod
	for _, p := range pods {
		if selects(sel, p) {
			out = append(out, p)
		}
	}
	sortPods(out)
	return out
}

func sortPods(pods []*pod) {
	slices.SortFunc(pods, func(a, b *pod) int { return strings.Compare(a.name, b.name) })
}

// withMember returns members with old removed and upd (when non-nil)
// inserted by name, as a new slice.
func withMember(members []*pod, old, upd *pod) []*pod {
	out := make([]*pod, 0, len(members)+1)
	for _, p := range members {
		if old == nil || p.name != old.name {
			out = append(out, p)
		}
	}
	if upd != nil {
		i, _ := slices.BinarySearchFunc(out, upd.name, func(p *pod, name string) int { return strings.Compare(p.name, name) })
		out = slices.Insert(out, i, upd)
	}
	return out
}

func sortPeerAuths(pas []*peerAuth) {
	sort.SliceStable(pas, func(i, j int) bool {
		a, b := pas[i], pas[j]
		return olderThan(a.created, a.name, a.namespace, b.created, b.name, b.namespace)
	})
}

func (s *State) countDR(dr *destRule, delta int) {
	if ns, ok := namespaceWildcard(dr.host, ".svc."+s.mesh.ClusterDomain); ok {
		s.drNamespaceWide = s.drNamespaceWide.add(ns, dr.namespace, delta)
	} else if isWildcard(dr.host) {
		s.drWildcards = maps.Clone(s.drWildcards)
		if s.drWildcards == nil {
			s.drWildcards = map[string]map[string]int{}
		}
		s.drWildcards[dr.host] = counted(s.drWildcards[dr.host], dr.namespace, delta)
		if s.drWildcards[dr.host] == nil {
			delete(s.drWildcards, dr.host)
		}
	} else {
		s.drHosts = s.drHosts.add(dr.host, dr.namespace, delta)
	}
	for _, e := range dr.exportTo {
		if e != "." && e != "*" && e != "~" {
			s.exportNamed = s.exportNamed.add(dr.namespace, e, delta)
		}
	}
}

// counts holds, per key (a rule host, or a namespace), how many rules of
// each namespace count for it: a persistent map whose inner maps are
// replaced, never changed.
type counts struct{ p pmap[map[string]int] }

func newCounts() counts { return counts{newPmap[map[string]int]()} }

// of returns the counts of key, which the caller must not change.
func (c counts) of(key string) map[string]int { return c.p.get(key) }

// add returns c with delta added to the count of ns under key.
func (c counts) add(key, ns string, delta int) counts {
	if inner := counted(c.p.get(key), ns, delta); inner != nil {
		return counts{c.p.set(key, inner)}
	}
	return counts{c.p.del(key)}
}

// counted returns a copy of inner with delta added to ns's count, dropping
// a count that reaches zero; nil when none is left.
func counted(inner map[string]int, ns string, delta int) map[string]int {
	out := maps.Clone(inner)
	if out == nil {
		out = map[string]int{}
	}
	out[ns] += delta
	if out[ns] == 0 {
		delete(out, ns)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Apply adds or replaces one object: a Namespace, Service, Pod,
// PeerAuthentication, DestinationRule, ServiceEntry, WorkloadEntry or
// Sidecar (networking v1 and security v1 types; convert other versions
// first), or the mesh ConfigMap.
func (s *State) Apply(obj runtime.Object) error {
	s.clientsMayChange(obj)
	switch o := obj.(type) {
	case *corev1.Namespace:
		n := s.edit(o.Name)
		n.setLabels(o.Labels)
		s.setViews(n, computeViews(n, n.drs))
		s.setZtunnelView(n, computeZtunnelView(n))
	case *corev1.Service:
		s.putService(o)
	case *corev1.Pod:
		if terminated(o) {
			return s.Remove(obj)
		}
		n := s.edit(o.Namespace)
		p := newPod(o)
		old := n.pods.get(o.Name)
		n.pods = n.pods.set(o.Name, p)
		s.podChanged(n, old, p)
	case *securityv1.PeerAuthentication:
		pa, err := newPeerAuth(o)
		if err != nil {
			return err
		}
		n := s.edit(o.Namespace)
		n.pas = append(withoutPeerAuth(n.pas, o.Name), pa)
		sortPeerAuths(n.pas)
	case *networkingv1.DestinationRule:
		dr, err := newDestRule(o, s.mesh.ClusterDomain)
		if err != nil {
			return err
		}
		n := s.edit(o.Namespace)
		old := s.removeDR(n, o.Name)
		n.drs = append(n.drs, dr)
		s.countDR(dr, 1)
		s.reindexDRs(n)
		s.rulesChanged(n, old, dr)
	case *networkingv1.ServiceEntry, *networkingv1.WorkloadEntry, *networkingv1.Sidecar:
		return s.applyEntry(o)
	case *corev1.ConfigMap:
		if o.Name != MeshConfigMapName || o.Namespace != s.base.RootNamespace {
			return nil
		}
		m, err := s.base.WithConfigMap(o)
		if err != nil {
			return err
		}
		return s.setMesh(m)
	default:
		return fmt.Errorf("policy: unsupported object type %T", obj)
	}
	return nil
}

// Remove deletes one object; removing an unknown object is a no-op.
func (s *State) Remove(obj runtime.Object) error {
	s.clientsMayChange(obj)
	switch o := obj.(type) {
	case *corev1.Namespace:
		// The objects inside go with their own delete events; until then
		// the namespace only loses its labels.
		if s.ns(o.Name) != nil {
			n := s.edit(o.Name)
			n.setLabels(nil)
			s.setViews(n, computeViews(n, n.drs))
			s.setZtunnelView(n, computeZtunnelView(n))
		}
	case *corev1.Service:
		if n := s.ns(o.Namespace); n != nil && n.services[o.Name] != nil {
			s.setService(s.edit(o.Namespace), o.Name, nil)
		}
	case *corev1.Pod:
		if n := s.ns(o.Namespace); n != nil {
			if old := n.pods.get(o.Name); old != nil {
				n := s.edit(o.Namespace)
				n.pods = n.pods.del(o.Name)
				s.podChanged(n, old, nil)
			}
		}
	case *securityv1.PeerAuthentication:
		if s.ns(o.Namespace) != nil {
			n := s.edit(o.Namespace)
			n.pas = withoutPeerAuth(n.pas, o.Name)
		}
	case *networkingv1.DestinationRule:
		if s.ns(o.Namespace) != nil {
			n := s.edit(o.Namespace)
			old := s.removeDR(n, o.Name)
			s.reindexDRs(n)
			s.rulesChanged(n, old)
		}
	case *networkingv1.ServiceEntry, *networkingv1.WorkloadEntry, *networkingv1.Sidecar:
		s.removeEntry(o)
	case *corev1.ConfigMap:
		if o.Name == MeshConfigMapName && o.Namespace == s.base.RootNamespace {
			return s.setMesh(s.base)
		}
	default:
		return fmt.Errorf("policy: unsupported object type %T", obj)
	}
	return nil
}

// clientsMayChange outdates every client plan before an event that can
// change how clients resolve rules, other than a DestinationRule's (which
// rulesChanged dates) and the mesh settings' (setMesh): the ServiceEntries
// of a host, and Sidecars, make client namespaces special (scopingNamespaces).
// A Kubernetes Service's event replaces that service, with a plan of its
// own; only ServiceEntry services, which keep none, read the others.
func (s *State) clientsMayChange(obj runtime.Object) {
	switch obj.(type) {
	case *networkingv1.ServiceEntry, *networkingv1.WorkloadEntry, *networkingv1.Sidecar:
		s.clientVersion = s.versions.Add(1)
	}
}

// SetMesh replaces the configured mesh settings (what a mesh ConfigMap is
// then laid over). The cluster domain cannot change.
func (s *State) SetMesh(m Mesh) error {
	if err := s.setMesh(m); err != nil {
		return err
	}
	s.base = m
	return nil
}

func (s *State) setMesh(m Mesh) error {
	if m.ClusterDomain != s.mesh.ClusterDomain {
		return fmt.Errorf("policy: changing the cluster domain from %q to %q needs a new State", s.mesh.ClusterDomain, m.ClusterDomain)
	}
	s.mesh = m
	s.meshVersion = s.versions.Add(1)
	s.clientVersion = s.meshVersion
	var withRules []string
	s.namespaces.each(func(name string, n *namespace) bool {
		if len(n.drs) > 0 {
			withRules = append(withRules, name)
		}
		return true
	})
	for _, name := range withRules {
		n := s.edit(name)
		n.drIdx = buildDRIndex(n.name, n.drs, s.mesh)
	}
	return nil
}

// removeDR drops rule name from n, a private copy, and returns it.
func (s *State) removeDR(n *namespace, name string) *destRule {
	for i, dr := range n.drs {
		if dr.name == name {
			s.countDR(dr, -1)
			n.drs = slices.Delete(slices.Clone(n.drs), i, i+1)
			return dr
		}
	}
	return nil
}

// rulesChanged outdates the client plans of the services that rules of n
// (a private copy), as they were or are now, can match: those of the
// namespace their host names, or of every namespace.
func (s *State) rulesChanged(n *namespace, rules ...*destRule) {
	for _, dr := range rules {
		if dr == nil {
			continue
		}
		ns, ok := hostNamespace(dr.host, ".svc."+s.mesh.ClusterDomain)
		switch {
		case ok && ns == n.name:
			n.rulesVersion = n.version
		case ok:
			if s.ns(ns) != nil {
				m := s.edit(ns)
				m.rulesVersion = m.version
			}
		case isWildcard(dr.host):
			s.clientVersion = s.versions.Add(1)
		}
		// Other hosts are no Kubernetes Service's; ServiceEntry services
		// keep no plan.
	}
}

func (s *State) reindexDRs(n *namespace) {
	n.drs = slices.Clone(n.drs)
	sortDestRules(n.drs)
	n.drIdx = nil
	if len(n.drs) > 0 {
		n.drIdx = buildDRIndex(n.name, n.drs, s.mesh)
	}
	s.setViews(n, computeViews(n, n.drs))
}

// podChanged keeps n's services' members and client views current after a
// pod was added, changed or removed (old or upd nil). n is a private copy.
func (s *State) podChanged(n *namespace, old, upd *pod) {
	for name, svc := range n.services {
		was := old != nil && selects(svc.selector, old)
		is := upd != nil && selects(svc.selector, upd)
		if !was && !is {
			continue
		}
		c := *svc
		c.servers = &serverCache{}
		if is {
			c.members = withMember(svc.members, old, upd)
		} else {
			c.members = withMember(svc.members, old, nil)
		}
		s.setService(n, name, &c)
	}
	s.entriesPodChanged(n, old, upd)
	s.updateViews(n, old, upd)
	s.updateZtunnelView(n, old, upd)
}

// updateViews keeps a namespace's client views current. Without
// workloadSelector rules the namespace has one view and the pod list is
// updated in place of a full recomputation, which would cost O(pods) per
// event.
func (s *State) updateViews(n *namespace, old, upd *pod) {
	if slices.ContainsFunc(n.drs, func(d *destRule) bool { return d.hasSelector }) || len(n.views) > 1 || n.entries.hasSelectorSidecar() {
		s.setViews(n, computeViews(n, n.drs))
		return
	}
	wasClient, isClient := old != nil && old.sidecar, upd != nil && upd.sidecar
	if wasClient == isClient {
		return
	}
	var pods []string
	if len(n.views) == 1 {
		pods = n.views[0].Pods
	}
	pods = withPodKey(pods, n, old, upd, isClient)
	if len(pods) == 0 {
		s.setViews(n, computeViews(n, n.drs)) // only an injection label can keep a view
		return
	}
	s.setViews(n, []ClientView{{Namespace: n.name, Pods: pods}})
}

// withPodKey returns the sorted pod keys of a single view with the pod of
// an event in it (in) or not, copying rather than changing pods, which an
// older State may share.
func withPodKey(pods []string, n *namespace, old, upd *pod, in bool) []string {
	key := n.name + "/"
	if upd != nil {
		key += upd.name
	} else {
		key += old.name
	}
	i, found := slices.BinarySearch(pods, key)
	switch {
	case in && !found:
		pods = slices.Insert(slices.Clip(pods), i, key)
	case !in && found:
		pods = slices.Delete(slices.Clone(pods), i, i+1)
	}
	return pods
}

func (s *State) setViews(n *namespace, views []ClientView) {
	s.totalViews += len(views) - len(n.views)
	n.views = views
}

func withoutPeerAuth(pas []*peerAuth, name string) []*peerAuth {
	out := make([]*peerAuth, 0, len(pas))
	for _, pa := range pas {
		if pa.name != name {
			out = append(out, pa)
		}
	}
	return out
}

func withoutDestRule(drs []*destRule, name string) []*destRule {
	out := make([]*destRule, 0, len(drs)+1)
	for _, dr := range drs {
		if dr.name != name {
			out = append(out, dr)
		}
	}
	return out
}
