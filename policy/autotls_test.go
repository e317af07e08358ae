package policy

import (
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"

	networkingapi "istio.io/api/networking/v1alpha3"
)

// endpointWires returns, for the rows of host (subset "" for the service),
// what the client sends to each endpoint pod and whether it works.
func endpointWires(t *testing.T, st *State, host, subset string) map[string]Endpoint {
	t.Helper()
	groups, err := st.Table(Query{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Endpoint{}
	for _, g := range groups {
		if g.Row.Subset != subset {
			continue
		}
		for _, ep := range g.Row.Endpoints {
			out[ep.Pod] = ep
		}
	}
	return out
}

// A port-level entry without tls replaces the top-level policy, so the
// cluster has no TLS and auto mTLS builds transport socket matches
// (util.GetPortLevelTrafficPolicy, cluster_tls.go). The endpoint checker falls
// back to the top-level ISTIO_MUTUAL (mtls_checker.go
// trafficPolicyTLSModeForPort) and skips PeerAuthentication, but each endpoint
// keeps its own tlsMode label (endpoint_builder.go buildEnvoyLbEndpoint): a
// pod without a sidecar still gets plaintext.
func TestPortLevelEntryWithoutTLSKeepsEndpointTLSMode(t *testing.T) {
	st := mustState(t, Snapshot{
		Services: []*corev1.Service{svc("foo", "migration", 8000, intstrInt(8080))},
		Pods: []*corev1.Pod{
			podOf("foo", "vistio", "migration", true, nil),
			podOf("foo", "vlegacy", "migration", false, nil),
			podOf("foo", "vdisable", "migration", true, map[string]string{"plain": "yes"}),
		},
		PeerAuthentications: []*securityv1.PeerAuthentication{
			pa("foo", "default", strict),
			pa("foo", "plain", disable, paSelector(map[string]string{"plain": "yes"})),
		},
		DestinationRules: []*networkingv1.DestinationRule{
			dr("foo", "migration", "migration.foo.svc.cluster.local",
				drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL), drPort(8000, nil)),
		},
	})
	got := endpointWires(t, st, "migration.foo.svc.cluster.local", "")
	want := map[string]struct {
		sends Wire
		ok    bool
	}{
		"foo/vistio":   {IstioMutual, true},
		"foo/vlegacy":  {Plaintext, true},    // tlsMode label missing: default transport socket
		"foo/vdisable": {IstioMutual, false}, // the rule's mode wins over the workload DISABLE
	}
	for pod, w := range want {
		if ep := got[pod]; ep.ClientSends != w.sends || ep.OK != w.ok {
			t.Errorf("%s: sends %v ok %v, want %v %v", pod, ep.ClientSends, ep.OK, w.sends, w.ok)
		}
	}
}

// For a headless service (or PASSTHROUGH load balancing) auto mTLS is all or
// nothing, and the subset clusters decide it on the whole service port:
// buildSubsetCluster calls BestEffortInferServiceMTLSMode, which checks
// ServiceEndpointsByPort(service, port, nil). One endpoint without a sidecar
// makes the vistio subset plaintext too, which its STRICT pod rejects.
func TestHeadlessSubsetChecksEveryEndpointOfThePort(t *testing.T) {
	headless := svc("foo", "migration", 9000, intstrInt(8080))
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	st := mustState(t, Snapshot{
		Services: []*corev1.Service{headless},
		Pods: []*corev1.Pod{
			podOf("foo", "vistio", "migration", true, map[string]string{"version": "vistio"}),
			podOf("foo", "vlegacy", "migration", false, map[string]string{"version": "vlegacy"}),
		},
		PeerAuthentications: []*securityv1.PeerAuthentication{pa("foo", "default", strict)},
		DestinationRules: []*networkingv1.DestinationRule{
			dr("foo", "migration", "migration.foo.svc.cluster.local",
				drSubset("vistio", map[string]string{"version": "vistio"}, nil),
				drSubset("vlegacy", map[string]string{"version": "vlegacy"}, nil)),
		},
	})
	for subset, want := range map[string]map[string]bool{
		"vistio":  {"foo/vistio": false},
		"vlegacy": {"foo/vlegacy": true},
	} {
		got := endpointWires(t, st, "migration.foo.svc.cluster.local", subset)
		for pod, ok := range want {
			if ep := got[pod]; ep.ClientSends != Plaintext || ep.OK != ok {
				t.Errorf("subset %s, %s: sends %v ok %v, want plaintext ok %v", subset, pod, ep.ClientSends, ep.OK, ok)
			}
		}
	}
}
