package policy

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"
	"unique"

	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels and annotations Istio's injector puts on pods and namespaces.
const (
	TLSModeLabel            = "security.istio.io/tlsMode"
	SidecarStatusAnnotation = "sidecar.istio.io/status"
	ProxyContainerName      = "istio-proxy"
	InjectionLabel          = "istio-injection"
	RevisionLabel           = "istio.io/rev"
)

// pod is the part of a Pod the rules read.
type pod struct {
	namespace, name string
	labels          map[string]string
	sidecar         bool // runs an Istio proxy
	tlsIstio        bool // security.istio.io/tlsMode=istio: auto mTLS may send mTLS
	namedPorts      map[string]int32
	serviceAccount  string // the workload identity's account (identity.go)
	// ref, when set, names an endpoint that is not a Pod (a WorkloadEntry
	// or a ServiceEntry's inline endpoint); see serviceentry.go.
	ref     string
	ambient podAmbient // what ambient capture reads (ambient.go)
}

func (p *pod) key() string {
	if p.ref != "" {
		return p.ref
	}
	return p.namespace + "/" + p.name
}

// HasSidecar reports whether the pod runs an Istio proxy.
func HasSidecar(p *corev1.Pod) bool {
	if _, ok := p.Labels[TLSModeLabel]; ok {
		return true
	}
	if _, ok := p.Annotations[SidecarStatusAnnotation]; ok {
		return true
	}
	for _, c := range p.Spec.Containers {
		if c.Name == ProxyContainerName {
			return true
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == ProxyContainerName {
			return true
		}
	}
	return false
}

// terminated pods are never endpoints.
func terminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func newPod(p *corev1.Pod) *pod {
	out := &pod{
		namespace: intern(p.Namespace),
		name:      p.Name,
		labels:    p.Labels,
		sidecar:   HasSidecar(p),
		tlsIstio:  p.Labels[TLSModeLabel] == "istio",
		ambient:   newPodAmbient(p),
	}
	out.serviceAccount = serviceAccountOf(p)
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "" {
				continue
			}
			if out.namedPorts == nil {
				out.namedPorts = map[string]int32{}
			}
			if _, dup := out.namedPorts[cp.Name]; !dup {
				out.namedPorts[intern(cp.Name)] = cp.ContainerPort
			}
		}
	}
	return out
}

// service is the part of a Service the rules read.
type service struct {
	namespace, name, host string
	labels                map[string]string // istio.io/use-waypoint binds a waypoint
	selector              selector
	headless              bool
	ports                 []servicePort
	// members are the pods the selector picks, sorted by name: the
	// endpoints of every port, before target ports and subsets.
	members []*pod
	// entry is the ServiceEntry the service comes from; nil for a
	// Kubernetes Service.
	entry *serviceEntry
	// servers caches the members' server policies (servers.go); nil for
	// services that keep none. A changed copy of a service needs its own.
	servers *serverCache
	// clients caches how clients resolve the service's rules (clients.go);
	// nil for services that keep none. Copies that differ in their members
	// share it: a plan does not read them.
	clients *clientCache
}

type servicePort struct {
	name   string
	port   int32
	target intstr.IntOrString
	// entry marks a ServiceEntry port, whose target port resolves as
	// entryTargetPort does.
	entry bool
}

// targetPort resolves the port on pod p, as the endpoints controller does.
// A named port the pod does not declare makes the pod no endpoint.
func (sp servicePort) targetPort(p *pod) (int32, bool) {
	if sp.entry {
		return sp.entryTargetPort(p), true
	}
	switch {
	case sp.target.Type == intstr.String && sp.target.StrVal != "":
		n, ok := p.namedPorts[sp.target.StrVal]
		return n, ok
	case sp.target.Type == intstr.Int && sp.target.IntVal != 0:
		return sp.target.IntVal, true
	}
	return sp.port, true
}

func newService(s *corev1.Service, domain string) *service {
	out := &service{
		namespace: intern(s.Namespace),
		name:      s.Name,
		host:      s.Name + "." + s.Namespace + ".svc." + domain,
		labels:    s.Labels,
		selector:  newSelector(s.Spec.Selector),
		headless:  s.Spec.ClusterIP == corev1.ClusterIPNone,
		servers:   &serverCache{},
		clients:   &clientCache{},
	}
	for _, p := range s.Spec.Ports {
		if p.Protocol == corev1.ProtocolUDP || p.Protocol == corev1.ProtocolSCTP {
			continue
		}
		out.ports = append(out.ports, servicePort{name: p.Name, port: p.Port, target: p.TargetPort})
	}
	return out
}

// peerAuth is a PeerAuthentication reduced to what decides a server mode;
// equal compares it field by field, so a new field goes there too.
type peerAuth struct {
	namespace, name string
	created         time.Time
	selector        selector // empty: mesh or namespace level
	selectorSet     bool     // spec.selector present, even if empty: ambient tells the two apart
	mode            securityapi.PeerAuthentication_MutualTLS_Mode
	portModes       map[uint32]securityapi.PeerAuthentication_MutualTLS_Mode
}

func (p *peerAuth) ref() string { return p.name + "/" + p.namespace }

func (p *peerAuth) objectName() string { return p.name }

// equal reports whether p and q decide every server alike.
func (p *peerAuth) equal(q *peerAuth) bool {
	return p.namespace == q.namespace && p.name == q.name && p.created.Equal(q.created) &&
		slices.Equal(p.selector, q.selector) && p.selectorSet == q.selectorSet &&
		p.mode == q.mode && maps.Equal(p.portModes, q.portModes)
}

func newPeerAuth(pa *securityv1.PeerAuthentication) (*peerAuth, error) {
	out := &peerAuth{
		namespace:   pa.Namespace,
		name:        pa.Name,
		created:     pa.CreationTimestamp.Time,
		selector:    newSelector(pa.Spec.GetSelector().GetMatchLabels()),
		selectorSet: pa.Spec.GetSelector() != nil,
	}
	if m := pa.Spec.GetMtls(); m != nil {
		if _, ok := securityapi.PeerAuthentication_MutualTLS_Mode_name[int32(m.Mode)]; !ok {
			return nil, fmt.Errorf("PeerAuthentication %s/%s: spec.mtls.mode: unknown mode %d", pa.Namespace, pa.Name, m.Mode)
		}
		out.mode = m.Mode
	}
	for port, m := range pa.Spec.GetPortLevelMtls() {
		if out.portModes == nil {
			out.portModes = map[uint32]securityapi.PeerAuthentication_MutualTLS_Mode{}
		}
		var mode securityapi.PeerAuthentication_MutualTLS_Mode
		if m != nil {
			if _, ok := securityapi.PeerAuthentication_MutualTLS_Mode_name[int32(m.Mode)]; !ok {
				return nil, fmt.Errorf("PeerAuthentication %s/%s: spec.portLevelMtls[%d].mode: unknown mode %d", pa.Namespace, pa.Name, port, m.Mode)
			}
			mode = m.Mode
		}
		out.portModes[port] = mode
	}
	return out, nil
}

// destRule is a DestinationRule with its host resolved to a FQDN; equal
// compares it field by field, so a new field goes there too.
type destRule struct {
	namespace, name string
	created         time.Time
	host            string
	exportTo        []string
	hasSelector     bool
	selector        selector
	spec            *networkingapi.DestinationRule
}

func (d *destRule) objectName() string { return d.name }

// equal reports whether d and e are the same rule.
func (d *destRule) equal(e *destRule) bool {
	return d.namespace == e.namespace && d.name == e.name && d.created.Equal(e.created) &&
		d.host == e.host && slices.Equal(d.exportTo, e.exportTo) &&
		d.hasSelector == e.hasSelector && slices.Equal(d.selector, e.selector) &&
		proto.Equal(d.spec, e.spec)
}

func newDestRule(dr *networkingv1.DestinationRule, domain string) (*destRule, error) {
	spec := &dr.Spec
	if err := checkTLSModes(spec); err != nil {
		return nil, fmt.Errorf("DestinationRule %s/%s: %w", dr.Namespace, dr.Name, err)
	}
	out := &destRule{
		namespace: dr.Namespace,
		name:      dr.Name,
		created:   dr.CreationTimestamp.Time,
		host:      resolveHost(spec.GetHost(), dr.Namespace, domain),
		exportTo:  spec.GetExportTo(),
		spec:      spec,
	}
	if ws := spec.GetWorkloadSelector(); ws != nil {
		out.hasSelector = true
		out.selector = newSelector(ws.GetMatchLabels())
	}
	return out, nil
}

// checkTLSModes rejects TLS modes this version of Istio does not define,
// naming the field, so that a typo never turns into a silent verdict.
func checkTLSModes(spec *networkingapi.DestinationRule) error {
	check := func(path string, tp *networkingapi.TrafficPolicy) error {
		if tls := tp.GetTls(); tls != nil {
			if _, ok := networkingapi.ClientTLSSettings_TLSmode_name[int32(tls.Mode)]; !ok {
				return fmt.Errorf("%s.tls.mode: unknown mode %d", path, tls.Mode)
			}
		}
		for i, pl := range tp.GetPortLevelSettings() {
			if tls := pl.GetTls(); tls != nil {
				if _, ok := networkingapi.ClientTLSSettings_TLSmode_name[int32(tls.Mode)]; !ok {
					return fmt.Errorf("%s.portLevelSettings[%d].tls.mode: unknown mode %d", path, i, tls.Mode)
				}
			}
		}
		return nil
	}
	if err := check("spec.trafficPolicy", spec.GetTrafficPolicy()); err != nil {
		return err
	}
	for i, s := range spec.GetSubsets() {
		if err := check(fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), s.GetTrafficPolicy()); err != nil {
			return err
		}
	}
	return nil
}

// resolveHost is Istio's ResolveShortnameToFQDN: a host without a dot is
// relative to the rule's namespace; anything with a dot is taken as is.
func resolveHost(h, namespace, domain string) string {
	if h == "" || h == "*" || net.ParseIP(h) != nil || strings.Contains(h, ".") {
		return h
	}
	return h + "." + namespace + ".svc." + domain
}

func isWildcard(h string) bool { return strings.HasPrefix(h, "*") }

// hostMatches reports whether rule host h (possibly a wildcard) covers the
// service host s.
func hostMatches(h, s string) bool {
	if isWildcard(h) {
		return strings.HasSuffix(s, h[1:])
	}
	return h == s
}

// selector is a selector's matchLabels sorted by key. It is matched
// against every member, client view and workload a decision reads; ranging
// over a map costs more than the lookups themselves.
type selector []labelPair

type labelPair struct{ key, value string }

func newSelector(m map[string]string) selector {
	if len(m) == 0 {
		return nil
	}
	out := make(selector, 0, len(m))
	for k, v := range m {
		out = append(out, labelPair{intern(k), intern(v)})
	}
	slices.SortFunc(out, func(a, b labelPair) int { return cmp.Compare(a.key, b.key) })
	return out
}

// intern returns the canonical copy of s. Decisions compare a few distinct
// names (namespaces, selector labels) millions of times; when equal strings
// share their bytes, a comparison stops at the pointer and does not fetch
// the bytes of each object's own copy from memory.
func intern(s string) string { return unique.Make(s).Value() }

// matches reports whether every label of s is in lbls.
func (s selector) matches(lbls map[string]string) bool {
	for _, l := range s {
		if v, ok := lbls[l.key]; !ok || v != l.value {
			return false
		}
	}
	return true
}

// olderThan orders configs as Istio does: creationTimestamp, then name, then
// namespace.
func olderThan(at time.Time, aName, aNS string, bt time.Time, bName, bNS string) bool {
	if !at.Equal(bt) {
		return at.Before(bt)
	}
	if aName != bName {
		return aName < bName
	}
	return aNS < bNS
}
