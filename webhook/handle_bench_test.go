package webhook

import (
	"context"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtlsguard/mtlsguard/internal/bigcluster"
	"github.com/mtlsguard/mtlsguard/policy"
)

// BenchmarkHandleServiceHost is a whole admission of a service-host
// DestinationRule create on the 50,000-pod cluster: decoding the objects,
// the engine's question and the answer, what mtlsguard adds to every write
// of a rule beside the HTTP exchange.
func BenchmarkHandleServiceHost(b *testing.B) {
	v := testValidator(b, destinationRules, bigStore(b))
	dr := &networkingv1.DestinationRule{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "DestinationRule"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns-17", Name: "svc-3", CreationTimestamp: metav1.Now()},
		Spec:       networkingapi.DestinationRule{Host: "svc-3.ns-17.svc.cluster.local", TrafficPolicy: bigcluster.TLSPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)},
	}
	req := request(b, admissionv1.Create, dr, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if resp := v.Handle(ctx, req); !resp.Allowed {
			b.Fatalf("denied: %v", resp.Result)
		}
	}
}

// bigStore is a synced Store holding the 50,000-pod benchmark cluster.
func bigStore(b *testing.B) *Store {
	b.Helper()
	st, err := policy.NewState(bigcluster.Snapshot(1))
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewStore(st.Mesh())
	if err != nil {
		b.Fatal(err)
	}
	s.state.Store(st)
	s.markSynced()
	return s
}
