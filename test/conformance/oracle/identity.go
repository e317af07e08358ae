package oracle

import (
	"fmt"
	"slices"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	corev1 "k8s.io/api/core/v1"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/util"
	"istio.io/istio/pilot/pkg/serviceregistry/kube"
	"istio.io/istio/pkg/config/host"
	"istio.io/istio/pkg/spiffe"
)

// The identity check (semantics doc part 2, §4): the client Envoy accepts
// the server's certificate only if one of its URI SANs equals one of the
// exact strings of the client's match_subject_alt_names, when that list is
// not empty. Istio's CA signs, for a pod, the identity
// kube.SecureNamingSAN(pod, meshConfig.trustDomain). The oracle reads the
// list from the transport socket Istio built for the endpoint, so the
// service accounts, trustDomainAliases and DestinationRule subjectAltNames
// are all Istio's.

// checkIdentity records the server's identity and the SANs the client
// checks on pair, and fails a pair the server accepts whose certificate the
// client rejects. Only a sidecar server presents a mesh certificate, and
// only istio_mutual and mutual_tls reach its TLS termination.
func (e *evaluator) checkIdentity(pair *Pair, cs *proxyState, ep endpointRef, ts *core.TransportSocket) {
	if !ep.sidecar() {
		return
	}
	pair.ServerIdentity = e.serverIdentity(ep)
	if pair.ClientSends != IstioMutual && pair.ClientSends != MutualTLS {
		return
	}
	sans, other := subjectAltNames(ts)
	pair.SubjectAltNames = sans
	if len(sans) == 0 && other == 0 {
		return
	}
	if pair.ServerIdentity == "" {
		// A VM's workload that names no serviceAccount: the identity its
		// istio-agent bootstraps with is not in the configuration. As the
		// engine takes it: the service's own accounts stand for every
		// endpoint, and a rule's subjectAltNames name none of its.
		if rule := ruleSubjectAltNames(cs, pair.Host, pair.Port, pair.Subset); len(rule) == 0 || !slices.Equal(rule, sans) {
			pair.Detail += "; server identity unknown (no serviceAccount): the service's accounts not checked"
			return
		}
	}
	pair.IdentityChecked = true
	pair.IdentityOK = slices.Contains(sans, pair.ServerIdentity)
	if other > 0 {
		pair.Detail += fmt.Sprintf("; %d non-exact SAN matchers not evaluated", other)
	}
	if !pair.IdentityOK && pair.OK {
		pair.OK = false
		pair.Detail += fmt.Sprintf("; client SAN check %q rejects the server certificate %s", sans, pair.ServerIdentity)
	}
}

// serverIdentity is the URI SAN of the endpoint's certificate: a pod's
// (ServerIdentity), or, for a workload outside Kubernetes, the identity its
// istio-agent bootstraps with, the WorkloadEntry's serviceAccount in its
// namespace ("" when it names none).
func (e *evaluator) serverIdentity(ep endpointRef) string {
	if ep.vm != nil {
		if ep.vm.serviceAccount == "" {
			return ""
		}
		return spiffe.MustGenSpiffeURI(e.sc.Mesh, ep.vm.namespace, ep.vm.serviceAccount)
	}
	return ServerIdentity(e.sc, ep.pod)
}

// ServerIdentity is the URI SAN of pod's certificate (normalize has given
// the pod its default service account).
func ServerIdentity(sc *Scenario, pod *corev1.Pod) string {
	return kube.SecureNamingSAN(pod, sc.Mesh.GetTrustDomain())
}

// subjectAltNames returns the exact SAN strings the upstream TLS context
// of ts checks, and how many matchers of another kind it has.
func subjectAltNames(ts *core.TransportSocket) (exact []string, other int) {
	if ts.GetTypedConfig() == nil {
		return nil, 0
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		return nil, 0
	}
	common := ctx.GetCommonTlsContext()
	vc := common.GetValidationContext()
	if c := common.GetCombinedValidationContext(); c != nil {
		vc = c.GetDefaultValidationContext()
	}
	for _, m := range vc.GetMatchSubjectAltNames() {
		if s := m.GetExact(); s != "" {
			exact = append(exact, s)
		} else {
			other++
		}
	}
	for _, m := range vc.GetMatchTypedSubjectAltNames() {
		if s := m.GetMatcher().GetExact(); s != "" && m.GetSanType() == tlsv3.SubjectAltNameMatcher_URI {
			exact = append(exact, s)
		} else {
			other++
		}
	}
	return exact, other
}

// ruleSubjectAltNames are the subjectAltNames of the TLS settings the
// DestinationRule the client resolves for host gives the cluster of port
// and subset, merged as the cluster builder merges them
// (util.MergeSubsetTrafficPolicy).
func ruleSubjectAltNames(cs *proxyState, hostname string, port int, subset string) []string {
	cdr := cs.proxy.SidecarScope.DestinationRule(model.TrafficDirectionOutbound, cs.proxy, host.Name(hostname))
	if cdr == nil || cdr.GetRule() == nil {
		return nil
	}
	dr, ok := cdr.GetRule().Spec.(*networking.DestinationRule)
	if !ok {
		return nil
	}
	var subsetPolicy *networking.TrafficPolicy
	for _, s := range dr.GetSubsets() {
		if subset != "" && s.GetName() == subset {
			subsetPolicy = s.GetTrafficPolicy()
			break
		}
	}
	return util.MergeSubsetTrafficPolicy(dr.GetTrafficPolicy(), subsetPolicy, &model.Port{Port: port}).GetTls().GetSubjectAltNames()
}
