package policy

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ServiceEntries and WorkloadEntries, as Istio's service registry turns them
// into services and endpoints (pilot/pkg/serviceregistry/serviceentry,
// conversion.go convertServices, convertServiceEntryToInstances,
// convertWorkloadEntryToWorkloadInstance, getTLSModeFromWorkloadEntry,
// convertWorkloadInstanceToServiceInstance; extended semantics doc §2):
//
//   - One service per host, in the ServiceEntry's namespace: DestinationRules
//     are looked up for it as for a Kubernetes Service, and PeerAuthentication
//     of its endpoints is resolved in that namespace.
//   - Only MESH_INTERNAL entries with resolution STATIC, DNS, DNS_ROUND_ROBIN
//     or NONE become services. MESH_EXTERNAL (the zero value of location) is
//     out of scope: a DestinationRule SIMPLE to such a host is TLS
//     origination, and its endpoints are outside the mesh's policies.
//     DYNAMIC_DNS entries have wildcard hosts and no endpoints.
//   - Endpoints are the inline endpoints, or, with a workloadSelector, the
//     Pods and then the WorkloadEntries of the entry's namespace whose labels
//     it selects (PILOT_ENABLE_SERVICEENTRY_SELECT_PODS defaults to true). A
//     WorkloadEntry whose address is a host name is selected only by DNS
//     entries. A DNS entry with neither has one synthetic endpoint, the host
//     name itself with tlsMode disabled; what answers there is not in the
//     configuration, so the engine lists no endpoint for it.
//   - A WorkloadEntry's labels are its spec labels with metadata labels laid
//     over them. Its tlsMode is the security.istio.io/tlsMode label, else
//     "istio" when it names a serviceAccount, else "disabled"; the engine
//     takes tlsMode istio as "runs a sidecar" (the server side, whose
//     PeerAuthentication it resolves with the entry's labels), anything else
//     as no sidecar.
//   - Target port: the endpoint's ports[<service port name>], else the
//     port's targetPort, else its number (for selected Pods, their named
//     container ports play the part of ports).
//   - Resolution NONE is an ORIGINAL_DST cluster: auto mTLS is all or
//     nothing, as for a headless Service.
//   - UDP ports are skipped, as for Services.
//
// Not modelled: a Kubernetes Service selecting WorkloadEntries
// (PILOT_ENABLE_K8S_SELECT_WORKLOAD_ENTRIES), WorkloadGroups, the address
// ranges of entries, and clients that are VMs: client views are Pods.

// serviceEntry is a ServiceEntry reduced to what builds services.
type serviceEntry struct {
	namespace, name string
	created         time.Time
	hosts           []string
	internal        bool
	resolution      networkingapi.ServiceEntry_Resolution
	ports           []servicePort
	exportTo        []string
	hasSelector     bool
	selector        selector
	endpoints       []*pod
}

func (se *serviceEntry) ref() string { return se.name + "/" + se.namespace }

// dnsResolved reports whether the entry resolves endpoints by DNS, which
// is what lets it select WorkloadEntries addressed by host name.
func (se *serviceEntry) dnsResolved() bool {
	return se.resolution == networkingapi.ServiceEntry_DNS || se.resolution == networkingapi.ServiceEntry_DNS_ROUND_ROBIN
}

// modelled reports whether the entry becomes services of the engine.
func (se *serviceEntry) modelled() bool {
	return se.internal && se.resolution != networkingapi.ServiceEntry_DYNAMIC_DNS
}

func newServiceEntry(o *networkingv1.ServiceEntry) (*serviceEntry, error) {
	spec := &o.Spec
	where := func(field string, err string, args ...any) error {
		return fmt.Errorf("ServiceEntry %s/%s: %s: %s", o.Namespace, o.Name, field, fmt.Sprintf(err, args...))
	}
	if _, ok := networkingapi.ServiceEntry_Location_name[int32(spec.GetLocation())]; !ok {
		return nil, where("spec.location", "unknown location %d", spec.GetLocation())
	}
	if _, ok := networkingapi.ServiceEntry_Resolution_name[int32(spec.GetResolution())]; !ok {
		return nil, where("spec.resolution", "unknown resolution %d", spec.GetResolution())
	}
	if len(spec.GetHosts()) == 0 {
		return nil, where("spec.hosts", "at least one host is required")
	}
	for i, h := range spec.GetHosts() {
		if h == "" || strings.Contains(h, "/") {
			return nil, where(fmt.Sprintf("spec.hosts[%d]", i), "invalid host %q", h)
		}
	}
	if spec.GetWorkloadSelector() != nil && len(spec.GetEndpoints()) > 0 {
		return nil, where("spec.workloadSelector", "cannot be combined with spec.endpoints")
	}
	out := &serviceEntry{
		namespace:  o.Namespace,
		name:       o.Name,
		created:    o.CreationTimestamp.Time,
		hosts:      spec.GetHosts(),
		internal:   spec.GetLocation() == networkingapi.ServiceEntry_MESH_INTERNAL,
		resolution: spec.GetResolution(),
		exportTo:   spec.GetExportTo(),
	}
	for i, p := range spec.GetPorts() {
		if p.GetNumber() == 0 || p.GetNumber() > 65535 {
			return nil, where(fmt.Sprintf("spec.ports[%d].number", i), "port %d is out of range", p.GetNumber())
		}
		if p.GetTargetPort() > 65535 {
			return nil, where(fmt.Sprintf("spec.ports[%d].targetPort", i), "port %d is out of range", p.GetTargetPort())
		}
		if strings.EqualFold(p.GetProtocol(), "UDP") {
			continue
		}
		out.ports = append(out.ports, servicePort{
			name: p.GetName(), port: int32(p.GetNumber()),
			target: intstr.FromInt32(int32(p.GetTargetPort())), entry: true,
		})
	}
	if ws := spec.GetWorkloadSelector(); ws != nil {
		out.hasSelector = true
		out.selector = newSelector(ws.GetLabels())
	}
	for i, ep := range spec.GetEndpoints() {
		p, err := entryEndpoint(o.Namespace, o.Name+"-"+strconv.Itoa(i), ep, nil)
		if err != nil {
			return nil, where(fmt.Sprintf("spec.endpoints[%d]", i), "%v", err)
		}
		p.ref = fmt.Sprintf("ServiceEntry %s/%s endpoints[%d] %s", o.Namespace, o.Name, i, ep.GetAddress())
		out.endpoints = append(out.endpoints, p)
	}
	return out, nil
}

// newWorkloadEntry is a WorkloadEntry as an endpoint.
func newWorkloadEntry(o *networkingv1.WorkloadEntry) (*pod, error) {
	p, err := entryEndpoint(o.Namespace, o.Name, &o.Spec, o.Labels)
	if err != nil {
		return nil, fmt.Errorf("WorkloadEntry %s/%s: spec: %w", o.Namespace, o.Name, err)
	}
	p.ref = "WorkloadEntry " + o.Namespace + "/" + o.Name
	return p, nil
}

// entryEndpoint is convertWorkloadEntryToWorkloadInstance reduced to what
// the rules read. meta are the object's metadata labels, which win over the
// spec's.
func entryEndpoint(ns, name string, we *networkingapi.WorkloadEntry, meta map[string]string) (*pod, error) {
	labels := we.GetLabels()
	if len(meta) > 0 {
		labels = maps.Clone(labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, meta)
	}
	tlsMode := "disabled"
	if v, ok := labels[TLSModeLabel]; ok {
		tlsMode = v
	} else if we.GetServiceAccount() != "" {
		tlsMode = "istio"
	}
	// convertWorkloadEntryToWorkloadInstance: the identity is the entry's
	// serviceAccount in the entry's namespace (a WorkloadEntry's, or the
	// ServiceEntry's for an inline endpoint).
	p := &pod{namespace: ns, name: name, labels: labels, tlsIstio: tlsMode == "istio", serviceAccount: we.GetServiceAccount()}
	p.sidecar = p.tlsIstio
	for portName, n := range we.GetPorts() {
		if n > 65535 {
			return nil, fmt.Errorf("ports[%s]: port %d is out of range", portName, n)
		}
		if p.namedPorts == nil {
			p.namedPorts = map[string]int32{}
		}
		p.namedPorts[portName] = int32(n)
	}
	return p, nil
}

// addressedByName reports whether a WorkloadEntry's address is a host name
// rather than an IP or a unix socket: such entries serve DNS entries only.
func addressedByName(o *networkingv1.WorkloadEntry) bool {
	a := o.Spec.GetAddress()
	return a != "" && !strings.HasPrefix(a, "unix://") && net.ParseIP(a) == nil
}

// entryTargetPort is convertWorkloadInstanceToServiceInstance's priority:
// the endpoint's port of the same name, the port's targetPort, its number.
func (sp servicePort) entryTargetPort(p *pod) int32 {
	if n, ok := p.namedPorts[sp.name]; ok && n > 0 {
		return n
	}
	if sp.target.IntVal > 0 {
		return sp.target.IntVal
	}
	return sp.port
}

// entries are a namespace's ServiceEntries, WorkloadEntries and Sidecars,
// and the services the entries make. Never changed once shared: a change
// replaces it with a changed copy.
type entries struct {
	serviceEntries  map[string]*serviceEntry
	workloadEntries map[string]*workloadEntry
	sidecars        []*sidecar // sortSidecars order
	services        []*service // sorted by host, then entry name
}

type workloadEntry struct {
	ep     *pod
	byName bool // addressed by host name
}

func (e *entries) clone() *entries {
	if e == nil {
		return &entries{serviceEntries: map[string]*serviceEntry{}, workloadEntries: map[string]*workloadEntry{}}
	}
	return &entries{
		serviceEntries:  maps.Clone(e.serviceEntries),
		workloadEntries: maps.Clone(e.workloadEntries),
		sidecars:        e.sidecars,
		services:        e.services,
	}
}

func (e *entries) empty() bool {
	return e == nil || len(e.serviceEntries) == 0 && len(e.workloadEntries) == 0 && len(e.sidecars) == 0
}

// selectsPods reports whether some entry of the namespace selects pods, so
// that a pod event must rebuild its services.
func (e *entries) selectsPods() bool {
	if e == nil {
		return false
	}
	for _, se := range e.serviceEntries {
		if se.hasSelector && se.modelled() {
			return true
		}
	}
	return false
}

// entryHosts is the State's index of ServiceEntry services by host. It is
// never changed once shared: every write builds a new one.
type entryHosts struct {
	byHost pmap[[]*service]
	// sidecarNamespaces are the namespaces that hold a Sidecar: each may
	// see services differently from the others.
	sidecarNamespaces map[string]bool
}

func (s *State) entryIndex() *entryHosts {
	if s.entryIdx == nil {
		return &entryHosts{byHost: newPmap[[]*service]()}
	}
	return s.entryIdx
}

// entryServicesOf lists the ServiceEntry services of a host.
func (s *State) entryServicesOf(host string) []*service {
	if s.entryIdx == nil {
		return nil
	}
	return s.entryIdx.byHost.get(host)
}

// eachEntryService calls fn for every ServiceEntry service.
func (s *State) eachEntryService(fn func(*service)) {
	if s.entryIdx == nil {
		return
	}
	s.entryIdx.byHost.each(func(_ string, l []*service) bool {
		for _, svc := range l {
			fn(svc)
		}
		return true
	})
}

// rebuildEntries recomputes the services of n's ServiceEntries, n being a
// private copy whose entries are private too, and updates the host index.
func (s *State) rebuildEntries(n *namespace) {
	e := n.entries
	var built []*service
	if e != nil {
		names := slices.Sorted(maps.Keys(e.serviceEntries))
		for _, name := range names {
			se := e.serviceEntries[name]
			if !se.modelled() {
				continue
			}
			members := s.entryMembers(n, se)
			for _, h := range se.hosts {
				built = append(built, &service{
					namespace: n.name, name: se.name, host: h,
					headless: se.resolution == networkingapi.ServiceEntry_NONE,
					ports:    se.ports, members: members, entry: se,
				})
			}
		}
		slices.SortFunc(built, func(a, b *service) int { return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.name, b.name)) })
	}
	var old []*service
	if e != nil {
		old = e.services
	}
	idx := *s.entryIndex()
	for _, svc := range old {
		l := slices.DeleteFunc(slices.Clone(idx.byHost.get(svc.host)), func(o *service) bool { return o == svc })
		if len(l) == 0 {
			idx.byHost = idx.byHost.del(svc.host)
		} else {
			idx.byHost = idx.byHost.set(svc.host, l)
		}
	}
	for _, svc := range built {
		l := append(slices.Clone(idx.byHost.get(svc.host)), svc)
		slices.SortFunc(l, func(a, b *service) int {
			return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
		})
		idx.byHost = idx.byHost.set(svc.host, l)
	}
	s.entryIdx = &idx
	if e != nil {
		e.services = built
	}
	s.indexSidecars(n)
}

// indexSidecars records whether n (a private copy) holds a Sidecar, and
// drops its entries once they are empty. A Sidecar changes no service:
// services keep their identity across a Sidecar write, which is what lets
// its decision compare endpoints by position.
func (s *State) indexSidecars(n *namespace) {
	idx := *s.entryIndex()
	sidecars := n.entries != nil && len(n.entries.sidecars) > 0
	if idx.sidecarNamespaces[n.name] != sidecars {
		idx.sidecarNamespaces = maps.Clone(idx.sidecarNamespaces)
		if idx.sidecarNamespaces == nil {
			idx.sidecarNamespaces = map[string]bool{}
		}
		if sidecars {
			idx.sidecarNamespaces[n.name] = true
		} else {
			delete(idx.sidecarNamespaces, n.name)
		}
		s.entryIdx = &idx
	}
	if n.entries.empty() {
		n.entries = nil
	}
}

// entryMembers are the endpoints of a ServiceEntry: its inline endpoints,
// or the pods then WorkloadEntries of its namespace it selects, each sorted
// by name.
func (s *State) entryMembers(n *namespace, se *serviceEntry) []*pod {
	if !se.hasSelector {
		return se.endpoints
	}
	var pods, wes []*pod
	n.pods.each(func(_ string, p *pod) bool {
		if se.selector.matches(p.labels) {
			pods = append(pods, p)
		}
		return true
	})
	sortPods(pods)
	for _, we := range n.entries.workloadEntries {
		if (!we.byName || se.dnsResolved()) && se.selector.matches(we.ep.labels) {
			wes = append(wes, we.ep)
		}
	}
	sortPods(wes)
	return append(pods, wes...)
}

// editEntries returns a private copy of namespace name with private entries.
func (s *State) editEntries(name string) *namespace {
	n := s.edit(name)
	n.entries = n.entries.clone()
	return n
}

// applyEntry adds or replaces a ServiceEntry, WorkloadEntry or Sidecar.
func (s *State) applyEntry(obj any) error {
	switch o := obj.(type) {
	case *networkingv1.ServiceEntry:
		se, err := newServiceEntry(o)
		if err != nil {
			return err
		}
		n := s.editEntries(o.Namespace)
		n.entries.serviceEntries[o.Name] = se
		s.rebuildEntries(n)
	case *networkingv1.WorkloadEntry:
		ep, err := newWorkloadEntry(o)
		if err != nil {
			return err
		}
		n := s.editEntries(o.Namespace)
		n.entries.workloadEntries[o.Name] = &workloadEntry{ep: ep, byName: addressedByName(o)}
		s.rebuildEntries(n)
	case *networkingv1.Sidecar:
		sc, err := newSidecar(o)
		if err != nil {
			return err
		}
		n := s.editEntries(o.Namespace)
		n.entries.sidecars = append(withoutSidecar(n.entries.sidecars, o.Name), sc)
		sortSidecars(n.entries.sidecars)
		s.indexSidecars(n)
		s.setViews(n, computeViews(n, n.drs))
	}
	return nil
}

// removeEntry deletes a ServiceEntry, WorkloadEntry or Sidecar.
func (s *State) removeEntry(obj any) {
	var ns string
	switch o := obj.(type) {
	case *networkingv1.ServiceEntry:
		ns = o.Namespace
		if n := s.ns(ns); n == nil || n.entries == nil || n.entries.serviceEntries[o.Name] == nil {
			return
		}
		n := s.editEntries(ns)
		delete(n.entries.serviceEntries, o.Name)
		s.rebuildEntries(n)
	case *networkingv1.WorkloadEntry:
		ns = o.Namespace
		if n := s.ns(ns); n == nil || n.entries == nil || n.entries.workloadEntries[o.Name] == nil {
			return
		}
		n := s.editEntries(ns)
		delete(n.entries.workloadEntries, o.Name)
		s.rebuildEntries(n)
	case *networkingv1.Sidecar:
		ns = o.Namespace
		if n := s.ns(ns); n == nil || n.entries == nil || !slices.ContainsFunc(n.entries.sidecars, func(sc *sidecar) bool { return sc.name == o.Name }) {
			return
		}
		n := s.editEntries(ns)
		n.entries.sidecars = withoutSidecar(n.entries.sidecars, o.Name)
		s.indexSidecars(n)
		s.setViews(n, computeViews(n, n.drs))
	}
}

// entriesPodChanged rebuilds the services of n (a private copy) when a
// ServiceEntry of n selects the pod that changed.
func (s *State) entriesPodChanged(n *namespace, old, upd *pod) {
	if !n.entries.selectsPods() {
		return
	}
	for _, se := range n.entries.serviceEntries {
		if se.hasSelector && ((old != nil && se.selector.matches(old.labels)) || (upd != nil && se.selector.matches(upd.labels))) {
			n.entries = n.entries.clone()
			s.rebuildEntries(n)
			return
		}
	}
}

// addEntries indexes a snapshot's ServiceEntries, WorkloadEntries and
// Sidecars, building each namespace once.
func (s *State) addEntries(ses []*networkingv1.ServiceEntry, wes []*networkingv1.WorkloadEntry, scs []*networkingv1.Sidecar) error {
	touched := map[string]*namespace{}
	get := func(ns string) *namespace {
		if n, ok := touched[ns]; ok {
			return n
		}
		n := s.editEntries(ns)
		touched[ns] = n
		return n
	}
	for _, o := range ses {
		se, err := newServiceEntry(o)
		if err != nil {
			return err
		}
		get(o.Namespace).entries.serviceEntries[o.Name] = se
	}
	for _, o := range wes {
		ep, err := newWorkloadEntry(o)
		if err != nil {
			return err
		}
		get(o.Namespace).entries.workloadEntries[o.Name] = &workloadEntry{ep: ep, byName: addressedByName(o)}
	}
	for _, o := range scs {
		sc, err := newSidecar(o)
		if err != nil {
			return err
		}
		n := get(o.Namespace)
		n.entries.sidecars = append(withoutSidecar(n.entries.sidecars, o.Name), sc)
	}
	for _, n := range touched {
		sortSidecars(n.entries.sidecars)
		hasSidecars := len(n.entries.sidecars) > 0
		s.rebuildEntries(n)
		if hasSidecars {
			s.setViews(n, computeViews(n, n.drs))
		}
	}
	return nil
}

// HasHost reports whether a Service or a ServiceEntry defines host h
// exactly: tls-check takes such a name as it is written.
func (s *State) HasHost(h string) bool {
	return s.servicesByHost.get(h) != nil || len(s.entryServicesOf(h)) > 0
}
