package policy

import (
	networkingapi "istio.io/api/networking/v1alpha3"
)

// tunnelWire is what a sidecar's cluster sends to a tunnel-capable
// endpoint, and whether the endpoint is one. cluster_tls.go
// applyHBONETransportSocketMatches puts an `hbone` match first on every
// cluster but ORIGINAL_DST ones, whatever the rule's TLS mode (DISABLE and,
// since istio/istio#54914, ISTIO_MUTUAL included); SIMPLE and MUTUAL are
// wrapped inside the tunnel. endpoint_builder.go buildEnvoyLbEndpoint gives
// the endpoint the {tunnel: http} metadata that selects it unless the
// endpoint's tlsMode is istio (PILOT_PREFER_SENDING_HBONE off). Headless
// services and PASSTHROUGH load balancing are ORIGINAL_DST clusters: no
// tunnel (istio/istio#54921); so is the PassthroughCluster a client
// without a cluster for the host uses (sidecarscope.go).
func (c *cluster) tunnelWire(p *pod) (Wire, bool) {
	if c.passthrough || c.dr.viaPassthrough() || p.tlsIstio || !p.tunnelCapable(c.nsAmbient) {
		return 0, false
	}
	if c.tls != nil {
		switch explicitWire(c.tls, c.dr) {
		case SimpleTLS, MutualTLS:
			return HBONETLS, true
		}
	}
	return HBONE, true
}

// waypointFor is the waypoint a service is bound to, as waypoints.go
// fetchWaypointForTarget and GetUseWaypoint read it: the Service's own
// istio.io/use-waypoint label, else its namespace's; "none" opts out;
// istio.io/use-waypoint-namespace (read from the same object) names the
// waypoint's namespace. Only ztunnel clients that address the service's VIP
// go through it, so headless services have none.
func (e *env) waypointFor(svc *service) (name, namespace string, ok bool) {
	if svc.headless {
		return "", "", false
	}
	lbls := svc.labels
	if _, set := lbls[UseWaypointLabel]; !set {
		n := e.ns(svc.namespace)
		if n == nil {
			return "", "", false
		}
		lbls = n.labels
	}
	name, set := lbls[UseWaypointLabel]
	if !set || name == "none" {
		return "", "", false
	}
	namespace = svc.namespace
	if o, set := lbls[UseWaypointNamespaceLabel]; set {
		namespace = o
	}
	return name, namespace, true
}

// ztunnelPath is what every ztunnel client does for one service port:
// ztunnel reads no DestinationRule, so the client's namespace never
// matters.
type ztunnelPath struct {
	// waypoint names the waypoint (name/namespace), "" without one.
	waypoint string
	// dr is the waypoint's rule for the service, tls its TLS for the port.
	dr  *mergedRule
	tls *networkingapi.ClientTLSSettings
}

// ztunnelPath works out how ztunnel clients reach svc's port sp. With a
// waypoint, the rule is the one the waypoint sees: SidecarScope for a
// gateway in the waypoint's namespace (DefaultSidecarScopeForGateway), asked
// for the inbound direction, which skips workloadSelector rules; the port's
// TLS is GetPortLevelTrafficPolicy of it (cluster_waypoint.go
// buildWaypointInboundVIP).
func (e *env) ztunnelPath(svc *service, sp servicePort) ztunnelPath {
	name, ns, ok := e.waypointFor(svc)
	if !ok {
		return ztunnelPath{}
	}
	z := ztunnelPath{waypoint: name + "/" + ns}
	for _, r := range e.destinationRules(ns, svc) {
		if !r.first.hasSelector {
			z.dr = r
		}
	}
	if z.dr != nil {
		z.tls, _, _ = portTLS(z.dr.trafficPolicy, sp.port)
	}
	return z
}

// wire is what reaches endpoint pod p. ztunnel (src/proxy/outbound.rs
// build_request) sends HBONE to a workload whose TunnelProtocol is HBONE
// and plaintext to any other. A waypoint sets the tunnel for every
// tunnel-capable endpoint, tlsMode notwithstanding ("waypoints do not
// support legacy mTLS"), and otherwise sends the inner payload as is: raw
// for no TLS, DISABLE and ISTIO_MUTUAL ("not supported (?)"), TLS it
// originates for SIMPLE and MUTUAL (buildWaypointTLSContext).
func (z ztunnelPath) wire(p *pod, nsAmbient bool) Wire {
	tunnel := p.tunnelCapable(nsAmbient)
	if z.waypoint == "" {
		if tunnel {
			return HBONE
		}
		return Plaintext
	}
	inner := Plaintext
	switch z.tls.GetMode() {
	case networkingapi.ClientTLSSettings_SIMPLE:
		inner = SimpleTLS
	case networkingapi.ClientTLSSettings_MUTUAL:
		inner = MutualTLS
	}
	switch {
	case tunnel && inner == Plaintext:
		return HBONE
	case tunnel:
		return HBONETLS
	}
	return inner
}

// clientTLS is the CLIENT of a ztunnel row: ZTUNNEL, or WAYPOINT when a
// waypoint re-originates (WAYPOINT+TLS when it originates TLS).
func (z ztunnelPath) column() (ClientTLS, string) {
	switch {
	case z.waypoint == "":
		return Ztunnel, Ztunnel.Column()
	case z.tls.GetMode() == networkingapi.ClientTLSSettings_SIMPLE || z.tls.GetMode() == networkingapi.ClientTLSSettings_MUTUAL:
		return Waypoint, Waypoint.Column() + "+TLS"
	}
	return Waypoint, Waypoint.Column()
}

// accepts is Compatible with the HBONE listener of sidecars that advertise
// the tunnel. HBONE wrapping TLS the client proxy originates is a conflict,
// like SIMPLE and MUTUAL towards a sidecar: whether the application
// terminates TLS is not visible in configuration.
func accepts(sm serverPolicy, w Wire) bool {
	if w == HBONE && sm.hbone {
		return true
	}
	return Compatible(sm.mode, w)
}

// reasonFor is reason with the HBONE listener in view.
func reasonFor(sm serverPolicy, w Wire) string {
	if w == HBONE && sm.hbone && sm.mode != AmbientStrict && sm.mode != AmbientPermissive {
		return "server terminates HBONE on port 15008, where PeerAuthentication does not apply"
	}
	return reason(sm.mode, w)
}

// ambientReason explains the verdicts that involve ztunnel or HBONE.
func ambientReason(s ServerMode, w Wire) (string, bool) {
	switch {
	case Compatible(s, w):
		return "", false
	case s == AmbientStrict && w == Plaintext:
		return "ztunnel refuses plaintext under STRICT (istio_converted_static_strict): send from a sidecar or an ambient pod, or relax the PeerAuthentication", true
	case (s == AmbientStrict || s == AmbientPermissive) && w == IstioMutual:
		return "ztunnel does not terminate Istio mTLS sent to the application port: remove tls.mode ISTIO_MUTUAL for a headless or PASSTHROUGH service, or use an Istio release that sends HBONE", true
	case w == HBONETLS:
		return "client originates TLS inside HBONE, which only an application that terminates TLS accepts: remove tls.mode SIMPLE or MUTUAL", true
	case w == HBONE:
		return "client sends HBONE but the server has no HBONE listener: label the server's sidecar pods " + TunnelLabel + "=http (inject with ENABLE_HBONE) or enrol them in ambient", true
	}
	return "", false
}

// ztunnelReason is reasonFor from a ztunnel client's side, which no
// DestinationRule can change.
func ztunnelReason(sm serverPolicy, w Wire) string {
	if sm.mode == Strict && w == Plaintext {
		return "ztunnel sends plaintext to sidecar pods without the " + TunnelLabel + "=http label, which a STRICT sidecar refuses: re-inject them with ENABLE_HBONE, or relax the PeerAuthentication to PERMISSIVE"
	}
	return reasonFor(sm, w)
}
