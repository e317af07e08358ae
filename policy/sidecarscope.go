package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

// Sidecar resources narrow the services a client sidecar has clusters for
// (extended semantics doc §3; pilot/pkg/model/push_context.go
// initSidecarScopes and doGetSidecarScope, sidecar.go
// convertIstioListenerToWrapper, selectServices, needsPortMatch,
// initSidecarScopeInternalIndexes):
//
//   - A client uses the oldest Sidecar of its namespace whose
//     workloadSelector its labels match, else the oldest of its namespace
//     without a selector, else the oldest selector-less Sidecar of the root
//     namespace with "." read as the client's namespace, else none (every
//     service). There is no merging. A chosen Sidecar without egress imports
//     "*/*".
//   - An egress host "ns/dnsName" imports the services of namespace ns ("."
//     the client's, "*" any) whose host dnsName matches (exact, or a "*"
//     wildcard); "~ns/dnsName" excludes within its listener. A listener with
//     a port (not HTTP_PROXY) imports only that service port. A service port
//     is imported when some listener imports it.
//   - Only services exported to the client's namespace can be imported; the
//     engine reads exportTo of ServiceEntries (Kubernetes Services are taken
//     as exported everywhere).
//   - A service port the client has no cluster for is reached through the
//     PassthroughCluster in plaintext when the outbound traffic policy is
//     ALLOW_ANY (the Sidecar's outboundTrafficPolicy when it has the field,
//     even empty, whose mode then is REGISTRY_ONLY; else the mesh's, default
//     ALLOW_ANY), whatever the DestinationRules say; under REGISTRY_ONLY it
//     is dropped, and the table has no row for it.
//
// Not modelled: services imported through VirtualService destinations, the
// egressProxy of an ALLOW_ANY policy (such rows are left out), and the
// choice between services of one host imported from several namespaces.

// passthroughCluster is what the DESTINATION RULE column names for a client
// that has no cluster for the host.
const passthroughCluster = "PassthroughCluster"

// sidecar is a Sidecar reduced to its egress scoping.
type sidecar struct {
	namespace, name string
	created         time.Time
	hasSelector     bool
	selector        selector
	listeners       []egressListener
	// outbound is the Sidecar's own mode; hasOutbound is false when the
	// field is absent and the mesh's applies.
	outbound    networkingapi.OutboundTrafficPolicy_Mode
	hasOutbound bool
	egressProxy bool
	// noCluster is the rule rows use for the services it does not import.
	noCluster *mergedRule
}

func (sc *sidecar) ref() string { return sc.name + "/" + sc.namespace }

type egressListener struct {
	port  uint32 // 0: every port
	hosts []egressHost
}

type egressHost struct {
	namespace, host string // namespace as written: ".", "*" or a name
	excluded        bool
}

func newSidecar(o *networkingv1.Sidecar) (*sidecar, error) {
	spec := &o.Spec
	sc := &sidecar{namespace: o.Namespace, name: o.Name, created: o.CreationTimestamp.Time}
	if ws := spec.GetWorkloadSelector(); ws != nil {
		sc.hasSelector = true
		sc.selector = newSelector(ws.GetLabels())
	}
	if p := spec.GetOutboundTrafficPolicy(); p != nil {
		if _, ok := networkingapi.OutboundTrafficPolicy_Mode_name[int32(p.GetMode())]; !ok {
			return nil, fmt.Errorf("Sidecar %s/%s: spec.outboundTrafficPolicy.mode: unknown mode %d", o.Namespace, o.Name, p.GetMode())
		}
		sc.outbound, sc.hasOutbound = p.GetMode(), true
		sc.egressProxy = p.GetEgressProxy() != nil
	}
	egress := spec.GetEgress()
	if len(egress) == 0 {
		egress = []*networkingapi.IstioEgressListener{{Hosts: []string{"*/*"}}}
	}
	for i, l := range egress {
		el := egressListener{}
		if l.GetPort().GetNumber() != 0 && !strings.EqualFold(l.GetPort().GetProtocol(), "HTTP_PROXY") {
			el.port = l.GetPort().GetNumber()
		}
		for j, h := range l.GetHosts() {
			ns, name, ok := strings.Cut(h, "/")
			if !ok || strings.Contains(name, "/") || name == "" {
				return nil, fmt.Errorf("Sidecar %s/%s: spec.egress[%d].hosts[%d]: %q must be namespace/dnsName", o.Namespace, o.Name, i, j, h)
			}
			eh := egressHost{namespace: ns, host: name}
			if strings.HasPrefix(ns, "~") {
				eh.excluded = true
				eh.namespace = strings.TrimPrefix(ns, "~")
				if eh.namespace == "" {
					eh.namespace = "*"
				}
			}
			el.hosts = append(el.hosts, eh)
		}
		sc.listeners = append(sc.listeners, el)
	}
	sc.noCluster = &mergedRule{noCluster: "the client's Sidecar " + sc.ref() + " does not import this host"}
	return sc, nil
}

// sortSidecars is initSidecarScopes' order: Sidecars with a selector first,
// each group oldest first.
func sortSidecars(l []*sidecar) {
	slices.SortFunc(l, func(a, b *sidecar) int {
		return bySelectorThenAge(a.hasSelector, a.created, a.name, a.namespace, b.hasSelector, b.created, b.name, b.namespace)
	})
}

func withoutSidecar(l []*sidecar, name string) []*sidecar {
	out := make([]*sidecar, 0, len(l)+1)
	for _, sc := range l {
		if sc.name != name {
			out = append(out, sc)
		}
	}
	return out
}

// selectorSidecar is the Sidecar with a workloadSelector that a client with
// labels lbls uses, or nil: what splits a namespace's client views.
func (e *entries) selectorSidecar(lbls map[string]string) *sidecar {
	if e == nil {
		return nil
	}
	for _, sc := range e.sidecars {
		if sc.hasSelector && sc.selector.matches(lbls) {
			return sc
		}
	}
	return nil
}

// sidecarOf is doGetSidecarScope for a client view: nil when no Sidecar
// applies.
func (s *State) sidecarOf(v ClientView) *sidecar {
	if n := s.ns(v.Namespace); n != nil && n.entries != nil {
		for _, sc := range n.entries.sidecars {
			if !sc.hasSelector || sc.selector.matches(v.labels) {
				return sc
			}
		}
	}
	if n := s.ns(s.mesh.RootNamespace); n != nil && n.entries != nil {
		for _, sc := range n.entries.sidecars {
			if !sc.hasSelector {
				return sc
			}
		}
	}
	return nil
}

// imports reports whether the Sidecar, used by a client of namespace
// client, gives it a cluster for svc's port sp.
func (sc *sidecar) imports(client string, svc *service, sp servicePort) bool {
	for _, l := range sc.listeners {
		if l.port != 0 && l.port != uint32(sp.port) {
			continue
		}
		if l.imports(client, svc) {
			return true
		}
	}
	return false
}

func (l egressListener) imports(client string, svc *service) bool {
	resolve := func(ns string) string {
		if ns == "." {
			return client
		}
		return ns
	}
	for _, h := range l.hosts {
		if ns := resolve(h.namespace); h.excluded && (ns == "*" || ns == svc.namespace) && hostMatches(h.host, svc.host) {
			return false
		}
	}
	for _, h := range l.hosts {
		if ns := resolve(h.namespace); !h.excluded && (ns == "*" || ns == svc.namespace) && hostMatches(h.host, svc.host) {
			return true
		}
	}
	return false
}

// exportedTo reports whether svc is visible from namespace client. Only
// ServiceEntries' exportTo is read; an empty list is the mesh default,
// taken as "*".
func (svc *service) exportedTo(client string) bool {
	if svc.entry == nil || len(svc.entry.exportTo) == 0 {
		return true
	}
	for _, e := range svc.entry.exportTo {
		switch e {
		case "*":
			return true
		case ".":
			if client == svc.namespace {
				return true
			}
		default:
			if e == client {
				return true
			}
		}
	}
	return false
}

// notExported is the rule of rows for a ServiceEntry not exported to the
// client's namespace.
var notExported = &mergedRule{noCluster: "the ServiceEntry is not exported to the client's namespace"}

// viaPassthrough reports whether m stands for the absence of a cluster.
func (m *mergedRule) viaPassthrough() bool { return m != nil && m.noCluster != "" }

// clientRule is the rule the client view v uses for svc's port sp, dr being
// the DestinationRule it would use with a cluster: dr itself when it has a
// cluster, a no-cluster rule when the traffic leaves through the
// PassthroughCluster, and ok false when there is no row: the traffic is
// dropped (REGISTRY_ONLY), or the host's cluster belongs to another service
// of the same host.
func (e *env) clientRule(v ClientView, svc *service, sp servicePort, dr *mergedRule) (*mergedRule, bool) {
	st := e.st
	noSidecars := st.entryIdx == nil || len(st.entryIdx.sidecarNamespaces) == 0
	if svc.entry == nil && noSidecars && len(st.entryServicesOf(svc.host)) == 0 {
		return dr, true // nothing scopes anything
	}
	var sc *sidecar
	if !noSidecars {
		sc = st.sidecarOf(v)
	}
	visible := func(o *service) bool {
		return o.exportedTo(v.Namespace) && (sc == nil || sc.imports(v.Namespace, o, sp))
	}
	var missing *mergedRule
	switch {
	case visible(svc):
		if st.otherServiceWins(v.Namespace, sc != nil, svc, visible) {
			return nil, false
		}
		return dr, true
	case st.anotherVisible(svc, visible):
		return nil, false // the client has a cluster for the host after all
	case !svc.exportedTo(v.Namespace):
		missing = notExported
	default:
		missing = sc.noCluster
	}
	if st.otherServiceWins(v.Namespace, false, svc, func(*service) bool { return true }) {
		// Without a cluster the client has one route to the host, the
		// PassthroughCluster: one row, read from the service that would
		// have won.
		return nil, false
	}
	if sc != nil && sc.hasOutbound {
		if sc.outbound != networkingapi.OutboundTrafficPolicy_ALLOW_ANY || sc.egressProxy {
			return nil, false
		}
		return missing, true
	}
	if st.mesh.OutboundTrafficPolicy == "REGISTRY_ONLY" {
		return nil, false
	}
	return missing, true
}

// anotherVisible reports whether another service of svc's host is visible.
func (s *State) anotherVisible(svc *service, visible func(*service) bool) bool {
	if k := s.servicesByHost.get(svc.host); k != nil && k != svc && visible(k) {
		return true
	}
	return slices.ContainsFunc(s.entryServicesOf(svc.host), func(o *service) bool { return o != svc && visible(o) })
}

// otherServiceWins reports whether a client of namespace client that sees
// the services visible says it does uses another service of svc's host:
// one host has one cluster (sidecar.go appendSidecarServices and
// selectServices with UnifiedSidecarScoping): a Kubernetes Service wins over
// ServiceEntries; under a Sidecar, an entry of the client's own namespace
// wins over the others; else the oldest entry.
func (s *State) otherServiceWins(client string, scoped bool, svc *service, visible func(*service) bool) bool {
	if svc.entry == nil {
		return false
	}
	if k := s.servicesByHost.get(svc.host); k != nil && visible(k) {
		return true
	}
	for _, o := range s.entryServicesOf(svc.host) {
		if o == svc || !visible(o) {
			continue
		}
		if scoped && (o.namespace == client) != (svc.namespace == client) {
			if o.namespace == client {
				return true
			}
			continue
		}
		if olderThan(o.entry.created, o.name, o.namespace, svc.entry.created, svc.name, svc.namespace) {
			return true
		}
	}
	return false
}

// passthroughReason explains the verdict of an endpoint a client reaches
// through the PassthroughCluster.
func passthroughReason(dr *mergedRule, mode ServerMode, ok bool) string {
	if ok {
		return dr.noCluster + ": the PassthroughCluster sends plaintext, which a " + mode.String() + " server accepts"
	}
	return dr.noCluster + ": the PassthroughCluster sends plaintext, whatever the DestinationRule says, and a " +
		mode.String() + " server refuses it: add the host to the Sidecar's egress hosts (or export the service to the client's namespace), or relax the PeerAuthentication"
}

// hasSelectorSidecar reports whether a Sidecar of the namespace has a
// workloadSelector, which splits its client views.
func (e *entries) hasSelectorSidecar() bool {
	return e != nil && slices.ContainsFunc(e.sidecars, func(sc *sidecar) bool { return sc.hasSelector })
}

// scopingNamespaces adds to out the client namespaces that may see svc
// differently from a namespace the configuration does not name: those
// holding a Sidecar, and those of the ServiceEntries of svc's host and of
// its Kubernetes Service, and those the entries are exported to by name.
func (s *State) scopingNamespaces(svc *service, out map[string]bool) {
	if s.entryIdx != nil {
		for ns := range s.entryIdx.sidecarNamespaces {
			out[ns] = true
		}
	}
	// Which service of a host a client uses depends on the visibility of
	// every service of that host.
	for _, o := range s.entryServicesOf(svc.host) {
		out[o.namespace] = true
		for _, e := range o.entry.exportTo {
			if e != "." && e != "*" && e != "~" {
				out[e] = true
			}
		}
	}
	if svc.entry != nil {
		if k := s.servicesByHost.get(svc.host); k != nil {
			out[k.namespace] = true
		}
	}
}
