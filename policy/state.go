package policy

import (
	"fmt"
	"slices"
	"sort"

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
}

// State is an indexed snapshot. Reads (Table, Decide) never modify it, so
// any number may run at once; Apply, Remove and SetMesh must not run
// concurrently with anything else.
type State struct {
	// base is the mesh the caller configured; mesh is base with the mesh
	// ConfigMap laid over it.
	base       Mesh
	mesh       Mesh
	namespaces map[string]*namespace
	// servicesByHost finds the service of an exact rule host.
	servicesByHost map[string]*service
	// drHosts and drWildcards count, per rule host, the namespaces with a
	// rule for it. They name the client namespaces whose own rules can change
	// a lookup. Namespace-wide wildcards ("*.<ns>.svc.<domain>") are kept
	// apart in drNamespaceWide, keyed by the namespace they cover, so that a
	// lookup does not scan them.
	drHosts         map[string]map[string]int
	drWildcards     map[string]map[string]int
	drNamespaceWide map[string]map[string]int
	// exportNamed counts, per namespace, the namespaces its rules name in
	// exportTo.
	exportNamed map[string]map[string]int
	// totalViews counts the client views of every namespace.
	totalViews int
}

type namespace struct {
	name      string
	labels    map[string]string
	pods      map[string]*pod
	services  map[string]*service
	pas       []*peerAuth // oldest first
	drs       []*destRule // sortDestRules order
	drIdx     *drIndex
	views     []ClientView
	injection bool
}

// NewState indexes a snapshot. It fails on the first object it cannot use,
// naming it.
func NewState(s Snapshot) (*State, error) {
	st := &State{
		mesh:            s.Mesh,
		namespaces:      map[string]*namespace{},
		servicesByHost:  map[string]*service{},
		drHosts:         map[string]map[string]int{},
		drWildcards:     map[string]map[string]int{},
		drNamespaceWide: map[string]map[string]int{},
		exportNamed:     map[string]map[string]int{},
	}
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
	touched := map[string]bool{}
	for _, o := range s.Namespaces {
		st.ns(o.Name).setLabels(o.Labels)
	}
	for _, o := range s.Services {
		st.putService(o)
	}
	for _, o := range s.Pods {
		if !terminated(o) {
			st.ns(o.Namespace).pods[o.Name] = newPod(o)
			touched[o.Namespace] = true
		}
	}
	for _, o := range s.PeerAuthentications {
		pa, err := newPeerAuth(o)
		if err != nil {
			return nil, err
		}
		n := st.ns(o.Namespace)
		n.pas = append(n.pas, pa)
	}
	for _, o := range s.DestinationRules {
		dr, err := newDestRule(o, st.mesh.ClusterDomain)
		if err != nil {
			return nil, err
		}
		n := st.ns(o.Namespace)
		n.drs = append(n.drs, dr)
		st.countDR(dr, 1)
	}
	for name, n := range st.namespaces {
		sortPeerAuths(n.pas)
		if len(n.drs) > 0 {
			sortDestRules(n.drs)
			n.drIdx = buildDRIndex(name, n.drs, st.mesh)
			touched[name] = true
		}
		if touched[name] || n.injection {
			st.setViews(n, computeViews(n, n.drs))
		}
	}
	return st, nil
}

// Mesh returns the mesh settings in force.
func (s *State) Mesh() Mesh { return s.mesh }

func (s *State) ns(name string) *namespace {
	n, ok := s.namespaces[name]
	if !ok {
		n = &namespace{name: name, pods: map[string]*pod{}, services: map[string]*service{}}
		s.namespaces[name] = n
	}
	return n
}

func (n *namespace) setLabels(l map[string]string) {
	n.labels = l
	n.injection = l[InjectionLabel] == "enabled" || l[RevisionLabel] != ""
}

func (s *State) putService(o *corev1.Service) {
	n := s.ns(o.Namespace)
	if old, ok := n.services[o.Name]; ok {
		delete(s.servicesByHost, old.host)
	}
	if o.Spec.Type == corev1.ServiceTypeExternalName {
		delete(n.services, o.Name)
		return
	}
	svc := newService(o, s.mesh.ClusterDomain)
	n.services[o.Name] = svc
	s.servicesByHost[svc.host] = svc
}

func sortPeerAuths(pas []*peerAuth) {
	sort.SliceStable(pas, func(i, j int) bool {
		a, b := pas[i], pas[j]
		return olderThan(a.created, a.name, a.namespace, b.created, b.name, b.namespace)
	})
}

func (s *State) countDR(dr *destRule, delta int) {
	byHost, key := s.drHosts, dr.host
	if ns, ok := namespaceWildcard(dr.host, ".svc."+s.mesh.ClusterDomain); ok {
		byHost, key = s.drNamespaceWide, ns
	} else if isWildcard(dr.host) {
		byHost = s.drWildcards
	}
	count(byHost, key, dr.namespace, delta)
	for _, e := range dr.exportTo {
		if e != "." && e != "*" && e != "~" {
			count(s.exportNamed, dr.namespace, e, delta)
		}
	}
}

// count adds delta to m[key][ns], dropping entries that reach zero.
func count(m map[string]map[string]int, key, ns string, delta int) {
	inner := m[key]
	if inner == nil {
		inner = map[string]int{}
		m[key] = inner
	}
	inner[ns] += delta
	if inner[ns] == 0 {
		delete(inner, ns)
	}
	if len(inner) == 0 {
		delete(m, key)
	}
}

// Apply adds or replaces one object: a Namespace, Service, Pod,
// PeerAuthentication or DestinationRule (networking v1 and security v1
// types; convert other versions first), or the mesh ConfigMap.
func (s *State) Apply(obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Namespace:
		n := s.ns(o.Name)
		n.setLabels(o.Labels)
		s.setViews(n, computeViews(n, n.drs))
	case *corev1.Service:
		s.putService(o)
	case *corev1.Pod:
		if terminated(o) {
			return s.Remove(obj)
		}
		n := s.ns(o.Namespace)
		p := newPod(o)
		old := n.pods[o.Name]
		n.pods[o.Name] = p
		s.podChanged(n, old, p)
	case *securityv1.PeerAuthentication:
		pa, err := newPeerAuth(o)
		if err != nil {
			return err
		}
		n := s.ns(o.Namespace)
		n.pas = append(withoutPeerAuth(n.pas, o.Name), pa)
		sortPeerAuths(n.pas)
	case *networkingv1.DestinationRule:
		dr, err := newDestRule(o, s.mesh.ClusterDomain)
		if err != nil {
			return err
		}
		n := s.ns(o.Namespace)
		s.removeDR(n, o.Name)
		n.drs = append(n.drs, dr)
		s.countDR(dr, 1)
		s.reindexDRs(n)
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
	switch o := obj.(type) {
	case *corev1.Namespace:
		// The objects inside go with their own delete events; until then
		// the namespace only loses its labels.
		if n, ok := s.namespaces[o.Name]; ok {
			n.setLabels(nil)
			s.setViews(n, computeViews(n, n.drs))
		}
	case *corev1.Service:
		if n, ok := s.namespaces[o.Namespace]; ok {
			if svc, ok := n.services[o.Name]; ok {
				delete(s.servicesByHost, svc.host)
				delete(n.services, o.Name)
			}
		}
	case *corev1.Pod:
		if n, ok := s.namespaces[o.Namespace]; ok {
			if old, ok := n.pods[o.Name]; ok {
				delete(n.pods, o.Name)
				s.podChanged(n, old, nil)
			}
		}
	case *securityv1.PeerAuthentication:
		if n, ok := s.namespaces[o.Namespace]; ok {
			n.pas = withoutPeerAuth(n.pas, o.Name)
		}
	case *networkingv1.DestinationRule:
		if n, ok := s.namespaces[o.Namespace]; ok {
			s.removeDR(n, o.Name)
			s.reindexDRs(n)
		}
	case *corev1.ConfigMap:
		if o.Name == MeshConfigMapName && o.Namespace == s.base.RootNamespace {
			return s.setMesh(s.base)
		}
	default:
		return fmt.Errorf("policy: unsupported object type %T", obj)
	}
	return nil
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
	for _, n := range s.namespaces {
		if len(n.drs) > 0 {
			n.drIdx = buildDRIndex(n.name, n.drs, s.mesh)
		}
	}
	return nil
}

func (s *State) removeDR(n *namespace, name string) {
	for i, dr := range n.drs {
		if dr.name == name {
			s.countDR(dr, -1)
			n.drs = slices.Delete(slices.Clone(n.drs), i, i+1)
			return
		}
	}
}

func (s *State) reindexDRs(n *namespace) {
	sortDestRules(n.drs)
	n.drIdx = nil
	if len(n.drs) > 0 {
		n.drIdx = buildDRIndex(n.name, n.drs, s.mesh)
	}
	s.setViews(n, computeViews(n, n.drs))
}

// podChanged keeps a namespace's client views current after a pod was
// added, changed or removed (old or upd nil). Without workloadSelector rules
// the namespace has one view and the pod list is updated in place of a
// full recomputation, which would cost O(pods) per event.
func (s *State) podChanged(n *namespace, old, upd *pod) {
	if slices.ContainsFunc(n.drs, func(d *destRule) bool { return d.hasSelector }) || len(n.views) > 1 {
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
	key := n.name + "/"
	if upd != nil {
		key += upd.name
	} else {
		key += old.name
	}
	i, found := slices.BinarySearch(pods, key)
	switch {
	case isClient && !found:
		pods = slices.Insert(slices.Clip(pods), i, key)
	case !isClient && found:
		pods = slices.Delete(slices.Clone(pods), i, i+1)
	}
	if len(pods) == 0 {
		s.setViews(n, computeViews(n, n.drs)) // only an injection label can keep a view
		return
	}
	s.setViews(n, []ClientView{{Namespace: n.name, Pods: pods}})
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
