package policy

import (
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
)

// portPolicy is GetPortLevelTrafficPolicy: a port-level entry replaces the
// destination-level policy as a whole; fields it omits are defaults.
func portPolicy(tp *networkingapi.TrafficPolicy, port int32) (*networkingapi.TrafficPolicy, bool) {
	if tp == nil {
		return nil, false
	}
	for _, p := range tp.GetPortLevelSettings() {
		if p.GetPort() != nil && p.GetPort().GetNumber() == uint32(port) {
			return &networkingapi.TrafficPolicy{
				ConnectionPool:   p.GetConnectionPool(),
				LoadBalancer:     p.GetLoadBalancer(),
				OutlierDetection: p.GetOutlierDetection(),
				Tls:              p.GetTls(),
			}, true
		}
	}
	return tp, false
}

// clusterTLS is the TLS settings and load-balancing algorithm of the
// cluster for (port, subset): GetPortLevelTrafficPolicy, then
// MergeSubsetTrafficPolicy for subsets, read without building the merged
// policy, since a decision asks this for every row.
func clusterTLS(dr *mergedRule, subset string, port int32) (*networkingapi.ClientTLSSettings, networkingapi.LoadBalancerSettings_SimpleLB) {
	if dr == nil {
		return nil, networkingapi.LoadBalancerSettings_UNSPECIFIED
	}
	tls, lb, _ := portTLS(dr.trafficPolicy, port)
	if subset == "" {
		return tls, lb.GetSimple()
	}
	stp := dr.subset(subset).GetTrafficPolicy()
	if stp == nil {
		return tls, lb.GetSimple()
	}
	sTLS, sLB, hasPortLevel := portTLS(stp, port)
	if dr.trafficPolicy == nil {
		return sTLS, sLB.GetSimple()
	}
	if sLB != nil || hasPortLevel {
		lb = sLB
	}
	if sTLS != nil || hasPortLevel {
		tls = sTLS
	}
	return tls, lb.GetSimple()
}

// portTLS is GetPortLevelTrafficPolicy reduced to TLS and load balancing: a
// port-level entry replaces the destination-level policy as a whole.
func portTLS(tp *networkingapi.TrafficPolicy, port int32) (*networkingapi.ClientTLSSettings, *networkingapi.LoadBalancerSettings, bool) {
	for _, p := range tp.GetPortLevelSettings() {
		if p.GetPort() != nil && p.GetPort().GetNumber() == uint32(port) {
			return p.GetTls(), p.GetLoadBalancer(), true
		}
	}
	return tp.GetTls(), tp.GetLoadBalancer(), false
}

// checkerMode is the DestinationRule TLS mode the endpoint builder's
// mtlsChecker sees (xds/endpoints/mtls_checker.go). It differs from the
// cluster's: a port-level entry without tls falls back to the level above,
// and a subset without TLS falls back to the rule's.
func checkerMode(dr *mergedRule, subset string, port int32) *networkingapi.ClientTLSSettings_TLSmode {
	if dr == nil {
		return nil
	}
	if subset == "" {
		return tlsModeForPort(dr.trafficPolicy, port)
	}
	s := dr.subset(subset)
	if s == nil {
		return nil
	}
	if m := tlsModeForPort(s.GetTrafficPolicy(), port); m != nil {
		return m
	}
	return tlsModeForPort(dr.trafficPolicy, port)
}

func tlsModeForPort(tp *networkingapi.TrafficPolicy, port int32) *networkingapi.ClientTLSSettings_TLSmode {
	if tp == nil {
		return nil
	}
	var mode *networkingapi.ClientTLSSettings_TLSmode
	if tp.GetTls() != nil {
		mode = &tp.Tls.Mode
	}
	for _, p := range tp.GetPortLevelSettings() {
		if p.GetPort().GetNumber() == uint32(port) && p.GetTls() != nil {
			mode = &p.Tls.Mode
			break
		}
	}
	return mode
}

// passthroughPolicy is the policy BestEffortInferServiceMTLSMode checks for
// PASSTHROUGH load balancing: the rule's (or subset's) own top level.
func passthroughPolicy(dr *mergedRule, subset string) *networkingapi.TrafficPolicy {
	if dr == nil {
		return nil
	}
	if subset == "" {
		return dr.trafficPolicy
	}
	return dr.subset(subset).GetTrafficPolicy()
}

func convertTLS(m networkingapi.ClientTLSSettings_TLSmode) ClientTLS {
	switch m {
	case networkingapi.ClientTLSSettings_DISABLE:
		return TLSDisable
	case networkingapi.ClientTLSSettings_SIMPLE:
		return TLSSimple
	case networkingapi.ClientTLSSettings_MUTUAL:
		return TLSMutual
	case networkingapi.ClientTLSSettings_ISTIO_MUTUAL:
		return TLSIstioMutual
	}
	return Auto
}

// explicitWire is what a cluster with user-supplied TLS sends.
// buildUpstreamClusterTLSContext drops SIMPLE and MUTUAL contexts that name
// a secret credential on a rule without workloadSelector: sidecars then send
// plaintext.
func explicitWire(tls *networkingapi.ClientTLSSettings, dr *mergedRule) Wire {
	switch tls.GetMode() {
	case networkingapi.ClientTLSSettings_ISTIO_MUTUAL:
		return IstioMutual
	case networkingapi.ClientTLSSettings_SIMPLE, networkingapi.ClientTLSSettings_MUTUAL:
		cred := tls.GetCredentialName()
		if cred != "" && !strings.HasPrefix(cred, "configmap://") && !dr.first.hasSelector {
			return Plaintext
		}
		if tls.GetMode() == networkingapi.ClientTLSSettings_SIMPLE {
			return SimpleTLS
		}
		return MutualTLS
	}
	return Plaintext
}
