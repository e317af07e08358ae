package policy

import (
	"slices"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRejectedIdentitiesNameOnlyTheSANCheckFailures(t *testing.T) {
	const (
		httpbin = "spiffe://cluster.local/ns/foo/sa/httpbin"
		other   = "spiffe://cluster.local/ns/foo/sa/other"
	)
	istioMutual := func(sans ...string) *networkingv1.DestinationRule {
		return dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_ISTIO_MUTUAL, sans...))
	}
	tests := map[string]struct {
		rule    *networkingv1.DestinationRule
		sidecar bool
		want    []string
	}{
		"a SAN naming the pod rejects nothing": {
			rule: istioMutual(httpbin), sidecar: true,
		},
		"a wrong SAN rejects the pod's identity": {
			rule: istioMutual(other), sidecar: true, want: []string{httpbin},
		},
		"a wrong MUTUAL SAN rejects the pod's identity": {
			rule:    dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_MUTUAL, other)),
			sidecar: true, want: []string{httpbin},
		},
		"DISABLE to a STRICT server is a conflict of modes, not of identity": {
			rule:    dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_DISABLE, other)),
			sidecar: true,
		},
		"a pod without a sidecar presents no certificate to reject": {
			rule: istioMutual(other), sidecar: false,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := mustState(t, Snapshot{
				Namespaces: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "foo"}}},
				Services:   []*corev1.Service{svc("foo", "httpbin", 8000, intstrInt(8080))},
				Pods: []*corev1.Pod{withAccount(podOf("foo", "httpbin-1", "httpbin", tc.sidecar, nil), "httpbin"),
					podOf("foo", "sleep", "sleep", true, nil)},
				PeerAuthentications: []*securityv1.PeerAuthentication{pa("istio-system", "default", strict)},
				DestinationRules:    []*networkingv1.DestinationRule{tc.rule},
			})
			r := httpbinRow(t, st)
			if got := r.RejectedIdentities(); !slices.Equal(got, tc.want) {
				t.Errorf("RejectedIdentities() = %q, want %q (status %v, reason %q)", got, tc.want, r.Status, r.Endpoints[0].Reason)
			}
			if len(tc.want) > 0 && r.Status != Conflict {
				t.Errorf("status %v with rejected identities, want CONFLICT", r.Status)
			}
		})
	}
}
