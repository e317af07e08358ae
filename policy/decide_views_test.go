package policy

import (
	"context"
	"slices"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
)

// A workloadSelector write can move clients between the views of a
// namespace. Widening legacy-plaintext from app: checkout to tier: legacy
// moves cart out of the plain view (whose first pod, api, stays unaffected)
// into the selector's view (whose first pod, checkout, was already broken).
// Each moved client must be evaluated with labels of its own, or cart's new
// conflict is missed.
func TestDecideSelectorWriteEvaluatesEveryMovedClient(t *testing.T) {
	const host = "inventory.store.svc.cluster.local"
	rule := func(sel map[string]string) *networkingv1.DestinationRule {
		return dr("shop", "legacy-plaintext", host, drSelector(sel), drTLS(networkingapi.ClientTLSSettings_DISABLE))
	}
	legacy := map[string]string{"tier": "legacy"}
	before := rule(map[string]string{"app": "checkout"})
	st := mustState(t, Snapshot{
		Services: []*corev1.Service{svc("store", "inventory", 8080, intstrInt(8080))},
		Pods: []*corev1.Pod{
			podOf("store", "inventory", "inventory", true, nil),
			podOf("shop", "api", "api", true, nil),
			podOf("shop", "cart", "cart", true, legacy),
			podOf("shop", "checkout", "checkout", true, legacy),
		},
		PeerAuthentications: []*securityv1.PeerAuthentication{pa("store", "default", strict)},
		DestinationRules:    []*networkingv1.DestinationRule{before},
	})
	d, err := st.Decide(context.Background(), Change{Old: before, New: rule(legacy)})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.New) != 1 || len(d.Resolved) != 0 {
		t.Fatalf("new %d, resolved %d; want 1, 0", len(d.New), len(d.Resolved))
	}
	views := d.New[0].Views.List()
	if len(views) != 1 || views[0].String() != "shop[legacy-plaintext/shop]" || !slices.Equal(views[0].Pods, []string{"shop/cart"}) {
		t.Errorf("new conflict for %v, want shop[legacy-plaintext/shop] with pod shop/cart only", views)
	}
}
