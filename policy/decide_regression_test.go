package policy

import (
	"context"
	"fmt"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
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

// A rule with thousands of subsets: every subset was looked up by a linear
// search, several times per decision, and the decision's memo and groups
// were lists too, so that 10,000 subsets took over a minute of CPU (found
// by FuzzAdmission's seeds; the webhook's 2 s deadline answered, but the
// abandoned decision ran on). Each subset is one new row.
func TestDecideRuleWithManySubsets(t *testing.T) {
	const host = "httpbin.default.svc.cluster.local"
	const n = 5000
	var opts []drOpt
	for i := range n {
		opts = append(opts, drSubset(fmt.Sprintf("s%d", i), map[string]string{"app": "httpbin"},
			&networkingapi.TrafficPolicy{Tls: tlsOf(networkingapi.ClientTLSSettings_DISABLE)}))
	}
	// Two rules for the host in one namespace merge their subsets.
	first := dr("default", "a", host, opts[:n/2]...)
	second := dr("default", "b", host, append(opts[n/2:], drCreated(1))...)
	st := mustState(t, Snapshot{
		Services:            []*corev1.Service{svc("default", "httpbin", 8000, intstrInt(8080))},
		Pods:                []*corev1.Pod{podOf("default", "httpbin-1", "httpbin", true, nil), podOf("default", "sleep", "sleep", true, nil)},
		PeerAuthentications: []*securityv1.PeerAuthentication{pa("istio-system", "default", strict)},
		DestinationRules:    []*networkingv1.DestinationRule{first},
	})
	d, err := st.DecideFirst(context.Background(), Change{New: second}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.NewTotal != n/2 || len(d.New) != 10 {
		t.Fatalf("%d new rows (%d kept), want %d (10 kept): one per subset the second rule adds", d.NewTotal, len(d.New), n/2)
	}
}
