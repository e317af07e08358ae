package oracle

import (
	"fmt"
	"slices"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	internalupstream "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	securityapi "istio.io/api/security/v1beta1"
	securityclient "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"
)

// Ambient mode, judged by istiod's own ambient index (pilot/pkg/serviceregistry/ambient)
// and config generators. The oracle must run with PILOT_ENABLE_AMBIENT=true in its
// environment (cmd/oracle -ambient re-executes itself so), since istiod's ambient
// flags are read once at start.

// Client kinds ambient adds to Pair.ClientSends.
const (
	HBONE    = "hbone"
	HBONETLS = "hbone_tls"
)

const (
	dataplaneModeLabel    = "istio.io/dataplane-mode"
	redirectionAnnotation = "ambient.istio.io/redirection"
	tunnelLabel           = "networking.istio.io/tunnel"
	sidecarStatus         = "sidecar.istio.io/status"
)

// Captured is the istio-cni node agent's decision, which istiod never makes: the
// chart's default enablement selectors (cni/pkg/util/enablement_selector.go and
// manifests/charts/istio-cni/values.yaml), no injected pod, no host-network pod,
// nothing in kube-system. The oracle then writes the annotation the node agent
// would, which is all istiod reads.
func Captured(p *corev1.Pod, ns *corev1.Namespace) bool {
	if _, injected := p.Annotations[sidecarStatus]; injected || HasSidecar(p) {
		return false
	}
	if p.Annotations[redirectionAnnotation] == "enabled" {
		return true
	}
	if p.Spec.HostNetwork || p.Namespace == "kube-system" {
		return false
	}
	mode := p.Labels[dataplaneModeLabel]
	nsAmbient := ns != nil && ns.Labels[dataplaneModeLabel] == "ambient"
	return mode == "ambient" || (nsAmbient && mode != "none")
}

// markCaptured annotates the captured pods.
func (sc *Scenario) markCaptured() {
	for _, p := range sc.Pods {
		if Captured(p, sc.Namespaces[p.Namespace]) {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[redirectionAnnotation] = "enabled"
		}
	}
}

func isCaptured(p *corev1.Pod) bool { return p.Annotations[redirectionAnnotation] == "enabled" }

// classifyTunnel recognises the hbone transport socket of cluster_tls.go
// hboneTransportSocket: an internal upstream wrapping raw buffer or TLS.
func classifyTunnel(ts *core.TransportSocket) (string, string, bool) {
	tc := ts.GetTypedConfig()
	iu := &internalupstream.InternalUpstreamTransport{}
	if tc == nil || !tc.MessageIs(iu) {
		return "", "", false
	}
	if err := tc.UnmarshalTo(iu); err != nil {
		return Plaintext, fmt.Sprintf("bad InternalUpstreamTransport: %v", err), true
	}
	inner, desc := classifyTransportSocket(iu.GetTransportSocket())
	if inner == Plaintext {
		return HBONE, "HBONE wrapping " + desc, true
	}
	return HBONETLS, "HBONE wrapping " + desc, true
}

// workload returns the ambient index's workload for pod p.
func (e *evaluator) workload(p *corev1.Pod) *workloadapi.Workload {
	if e.workloads == nil {
		e.workloads = map[string]*workloadapi.Workload{}
		all, _ := e.fds.Env().AmbientIndexes.AddressInformation(nil)
		for _, a := range all {
			if w := a.GetWorkload(); w != nil {
				e.workloads[w.GetNamespace()+"/"+w.GetName()] = w
			}
		}
	}
	return e.workloads[PodKey(p)]
}

// ztunnelAccepts is what the destination ztunnel does with a connection to a
// captured pod: HBONE carries an identity and the PeerAuthentication-derived
// DENY policies never match it; plaintext has none, and is refused when a
// policy the workload references matches (ztunnel src/state.rs assert_rbac,
// src/rbac.rs Authorization::matches). TLS inside the tunnel reaches the
// application, which is counted as not accepted, as for sidecars.
func (e *evaluator) ztunnelAccepts(ep endpointRef, kind string) (bool, string) {
	switch kind {
	case HBONE:
		return true, "captured server: ztunnel terminates HBONE"
	case HBONETLS:
		return false, "captured server: TLS inside HBONE reaches the application"
	case IstioMutual, SimpleTLS, MutualTLS:
		return false, "captured server: " + kind + " to the application port is not terminated by ztunnel"
	}
	w := e.workload(ep.pod)
	if w == nil {
		return false, "captured server missing from the ambient index"
	}
	refs := w.GetAuthorizationPolicies()
	byName := map[string]*security.Authorization{}
	for _, wa := range e.fds.Env().AmbientIndexes.Policies(nil) {
		if a := wa.Authorization; a != nil {
			byName[a.GetNamespace()+"/"+a.GetName()] = a
		}
	}
	for _, ref := range refs {
		a := byName[ref]
		if a == nil || a.GetAction() != security.Action_DENY {
			continue // ztunnel skips unknown policies
		}
		if denies(a, uint32(ep.targetPort)) {
			return false, fmt.Sprintf("captured server: DENY %s refuses plaintext on %d (policies %v)", ref, ep.targetPort, refs)
		}
	}
	return true, fmt.Sprintf("captured server: no DENY matches plaintext on %d (policies %v)", ep.targetPort, refs)
}

// denies evaluates a DENY policy for a connection without identity to port.
func denies(a *security.Authorization, port uint32) bool {
	for _, g := range a.GetGroups() {
		all := true
		for _, r := range g.GetRules() {
			if !slices.ContainsFunc(r.GetMatches(), func(m *security.Match) bool { return matchesPlaintext(m, port) }) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// matchesPlaintext is one Match for a connection without identity: principals
// need one, notPrincipals presence holds; ports as stated. The PeerAuthentication
// conversion sets no other field.
func matchesPlaintext(m *security.Match, port uint32) bool {
	if len(m.GetPrincipals()) > 0 || len(m.GetServiceAccounts()) > 0 || len(m.GetNamespaces()) > 0 {
		return false
	}
	if len(m.GetDestinationPorts()) > 0 && !slices.Contains(m.GetDestinationPorts(), port) {
		return false
	}
	return !slices.Contains(m.GetNotDestinationPorts(), port)
}

// ztunnelPairs are the pairs of captured clients: ztunnel reads no
// DestinationRule and sends HBONE to a workload whose TunnelProtocol is HBONE,
// plaintext to any other (src/proxy/outbound.rs build_request). Service
// waypoints are not modelled by the oracle.
func (e *evaluator) ztunnelPairs(hostname string, sp svcPort, eps []endpointRef) []Pair {
	var out []Pair
	for _, client := range e.sc.Pods {
		if !isCaptured(client) || Terminated(client) {
			continue
		}
		for _, ep := range eps {
			pair := Pair{ClientPod: PodKey(client), Host: hostname, Port: int(sp.port), ServerPod: ep.key(), TargetPort: int(ep.targetPort)}
			w := e.workload(ep.pod)
			pair.ClientSends = Plaintext
			proto := "not in the ambient index"
			if w != nil {
				proto = w.GetTunnelProtocol().String()
				if w.GetTunnelProtocol() == workloadapi.TunnelProtocol_HBONE {
					pair.ClientSends = HBONE
				}
			}
			accepts, sdesc := e.serverAcceptsAny(ep, hostname, sp, pair.ClientSends, nil)
			pair.ServerAccepts, pair.OK = accepts, accepts
			pair.Detail = fmt.Sprintf("ztunnel client: destination TunnelProtocol %s; %s", proto, sdesc)
			out = append(out, pair)
		}
	}
	return out
}

// serverAcceptsAny dispatches on the server's data plane.
func (e *evaluator) serverAcceptsAny(ep endpointRef, hostname string, sp svcPort, kind string, clientTS *core.TransportSocket) (bool, string) {
	switch {
	case ep.pod != nil && isCaptured(ep.pod):
		return e.ztunnelAccepts(ep, kind)
	case kind == HBONE && ep.sidecar():
		// A sidecar terminates HBONE on 15008 when its proxy has ENABLE_HBONE
		// (the injector's tunnel label stands for it); PeerAuthentication does
		// not apply there (listener_inbound.go buildInboundHBONEListeners).
		ss := e.serverState(ep)
		for _, l := range e.fds.Listeners(ss.proxy) {
			if l.GetAddress().GetSocketAddress().GetPortValue() == model.HBoneInboundListenPort ||
				strings.Contains(l.GetName(), "connect_terminate") {
				return true, "sidecar server listens for HBONE (" + l.GetName() + ")"
			}
		}
		return false, "sidecar server has no HBONE listener"
	case kind == HBONE || kind == HBONETLS:
		return false, "server has no HBONE listener"
	}
	return e.serverAccepts(ep, hostname, sp, kind, clientTS)
}

// ambientOn reports whether the oracle runs with ambient enabled.
func ambientOn() bool { return features.EnableAmbient }

// ambientKubeObjects are the PeerAuthentications as Kubernetes objects: the
// ambient index reads them from the cluster's informers
// (ambientindex.go), not from the config store the sidecar generators read.
func (sc *Scenario) ambientKubeObjects() []runtime.Object {
	var out []runtime.Object
	for _, c := range sc.Configs {
		spec, ok := c.Spec.(*securityapi.PeerAuthentication)
		if !ok || c.GroupVersionKind != gvk.PeerAuthentication {
			continue
		}
		out = append(out, &securityclient.PeerAuthentication{
			ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace, CreationTimestamp: metav1.NewTime(c.CreationTimestamp)},
			Spec:       *spec.DeepCopy(),
		})
	}
	return out
}
