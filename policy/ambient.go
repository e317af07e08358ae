package policy

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Labels and annotations of Istio's ambient mode.
const (
	// DataplaneModeLabel enrols a namespace or a pod in ambient mode
	// ("ambient"); on a pod, "none" opts it out of its namespace's label.
	DataplaneModeLabel = "istio.io/dataplane-mode"
	// RedirectionAnnotation is what the istio-cni node agent writes on a pod
	// once ztunnel captures it, and all that istiod reads.
	RedirectionAnnotation = "ambient.istio.io/redirection"
	// TunnelLabel advertises that a pod terminates HBONE ("http"). Istio's
	// injector adds it to sidecars when proxy metadata ENABLE_HBONE is set,
	// as the ambient profile does.
	TunnelLabel = "networking.istio.io/tunnel"
	// UseWaypointLabel binds a Service (or every Service of a namespace) to
	// a waypoint proxy; "none" opts out.
	UseWaypointLabel = "istio.io/use-waypoint"
	// UseWaypointNamespaceLabel names the waypoint's namespace when it is
	// not the labelled object's.
	UseWaypointNamespaceLabel = "istio.io/use-waypoint-namespace"
)

// Dataplane is a pod's data-plane class. A byte, not a string: every
// endpoint of a table carries one.
type Dataplane uint8

const (
	DataplaneNone Dataplane = iota
	DataplaneSidecar
	DataplaneAmbient
)

// String is the name the JSON output reports: sidecar, ambient or none.
func (d Dataplane) String() string {
	switch d {
	case DataplaneSidecar:
		return "sidecar"
	case DataplaneAmbient:
		return "ambient"
	}
	return "none"
}

// podAmbient is the part of a pod that decides whether ztunnel captures it;
// the namespace's label is read at evaluation time, so that relabelling a
// namespace does not rewrite its pods.
type podAmbient struct {
	mode        string // the pod's own istio.io/dataplane-mode label
	redirected  bool   // ambient.istio.io/redirection=enabled
	hostNetwork bool
	tunnel      bool // networking.istio.io/tunnel lists "http"
}

func newPodAmbient(p *corev1.Pod) podAmbient {
	return podAmbient{
		mode:        p.Labels[DataplaneModeLabel],
		redirected:  p.Annotations[RedirectionAnnotation] == "enabled",
		hostNetwork: p.Spec.HostNetwork,
		tunnel:      supportsTunnel(p.Labels),
	}
}

// supportsTunnel is model.SupportsTunnel(labels, "http"): the tunnel label
// is a comma-separated list of protocols.
func supportsTunnel(lbls map[string]string) bool {
	for _, proto := range strings.Split(lbls[TunnelLabel], ",") {
		if strings.TrimSpace(proto) == "http" {
			return true
		}
	}
	return false
}

// ambientExcludedNamespace is the istio-cni chart's default excludeNamespaces.
const ambientExcludedNamespace = "kube-system"

// captured reports whether ztunnel captures pod p of a namespace whose
// istio.io/dataplane-mode label is ambient (nsAmbient). It is the istio-cni
// node agent's rule (cni/pkg/util/enablement_selector.go with the chart's
// default enablementSelectors): never a host-network pod nor one with a
// sidecar (sidecar wins), nor one in kube-system; a pod labelled ambient in
// any namespace; a pod of an ambient namespace unless it is labelled none.
// A pod that already carries the redirection annotation is captured: istiod
// trusts it.
func (p *pod) captured(nsAmbient bool) bool {
	if p.sidecar {
		return false
	}
	a := p.ambient
	if a.redirected {
		return true
	}
	if a.hostNetwork || p.namespace == ambientExcludedNamespace {
		return false
	}
	return a.mode == "ambient" || (nsAmbient && a.mode != "none")
}

// tunnelCapable is an endpoint whose ambient-index TunnelProtocol is HBONE
// (workloads.go setTunnelProtocol): captured, or advertising the tunnel.
func (p *pod) tunnelCapable(nsAmbient bool) bool {
	return p.ambient.tunnel || p.captured(nsAmbient)
}

// dataplane classifies p for reports.
func (p *pod) dataplane(nsAmbient bool) Dataplane {
	switch {
	case p.sidecar:
		return DataplaneSidecar
	case p.captured(nsAmbient):
		return DataplaneAmbient
	}
	return DataplaneNone
}

// namespaceAmbient reports whether namespace name carries
// istio.io/dataplane-mode=ambient.
func (s *State) namespaceAmbient(name string) bool {
	n := s.ns(name)
	return n != nil && n.ambient
}

// Captured reports whether ztunnel captures pod p, in a namespace whose
// istio.io/dataplane-mode label is ambient (namespaceAmbient); for callers
// that keep their own books of what changed, as the audit does.
func Captured(p *corev1.Pod, namespaceAmbient bool) bool {
	return newPod(p).captured(namespaceAmbient)
}
