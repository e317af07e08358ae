package policy

import (
	"context"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
)

// Crashers FuzzDecide found, each kept as the smallest write that shows it
// (the fuzz inputs are under testdata/fuzz/FuzzDecide too).

// A rule with subsets created for a service no rule covered before: the
// "before" side has no rule at all, and asking it for the new subsets
// dereferenced nil (the webhook answered "engine panic").
func TestDecideCreatesSubsetRuleWhereNoRuleWas(t *testing.T) {
	const host = "httpbin.default.svc.cluster.local"
	st := mustState(t, Snapshot{
		Services: []*corev1.Service{svc("default", "httpbin", 8000, intstrInt(8080))},
		Pods: []*corev1.Pod{
			podOf("default", "httpbin-1", "httpbin", true, map[string]string{"version": "v1"}),
			podOf("default", "sleep", "sleep", true, nil),
		},
		PeerAuthentications: []*securityv1.PeerAuthentication{pa("istio-system", "default", strict)},
	})
	rule := dr("default", "subsets", host, drSubset("v1", map[string]string{"version": "v1"},
		&networkingapi.TrafficPolicy{Tls: tlsOf(networkingapi.ClientTLSSettings_DISABLE)}))
	d, err := st.Decide(context.Background(), Change{New: rule})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.New) != 1 || d.New[0].Row.HostPort() != host+"|v1:8000" {
		t.Fatalf("new rows %v, want the v1 subset of %s:8000 only", rows(d.New), host)
	}
	// Deleting it resolves the same row.
	d, err = st.Decide(context.Background(), Change{Old: rule})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.New) != 0 || len(d.Resolved) != 1 || d.Resolved[0].Row.HostPort() != host+"|v1:8000" {
		t.Fatalf("delete: new %v, resolved %v; want the v1 subset resolved", rows(d.New), rows(d.Resolved))
	}
}

func rows(groups []Group) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g.Row.HostPort())
	}
	return out
}
