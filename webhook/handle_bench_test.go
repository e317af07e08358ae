package webhook

import (
	"context"
	"sync"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
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

// BenchmarkMeshWideBesideAudit is a whole admission of the mesh
// PeerAuthentication STRICT → DISABLE on the 50,000-pod cluster while the
// audit recomputes the whole table over and over, as it does after every
// mesh-wide write it admitted: with the audit giving way to admissions
// (Store.Yield, what mtlsguard runs), with an audit that does not, and
// with no audit. The arms take turns within each iteration, so that the
// noise of a shared machine falls on all three.
func BenchmarkMeshWideBesideAudit(b *testing.B) {
	s := bigStore(b)
	v := testValidator(b, peerAuthentications, s)
	strict := peerAuth("istio-system", "default", securityapi.PeerAuthentication_MutualTLS_STRICT)
	disable := peerAuth("istio-system", "default", securityapi.PeerAuthentication_MutualTLS_DISABLE)
	req := request(b, admissionv1.Update, disable, strict)
	ctx := context.Background()

	type arm struct {
		name  string
		audit bool
		yield func()
		took  []time.Duration
	}
	arms := []*arm{{name: "audit-yields", audit: true, yield: s.Yield}, {name: "audit-ignores-admissions", audit: true}, {name: "no-audit"}}
	const perArm = 4
	b.ResetTimer()
	for i := range b.N {
		for j := range arms {
			a := arms[(i+j)%len(arms)]
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if a.audit {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := s.state.Load().Table(policy.Query{Conflicts: true, Yield: a.yield}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				time.Sleep(50 * time.Millisecond) // into the middle of a table
			}
			for range perArm {
				t0 := time.Now()
				if resp := v.Handle(ctx, req); resp.Allowed {
					b.Fatal("the mesh-wide STRICT → DISABLE was admitted")
				}
				a.took = append(a.took, time.Since(t0))
			}
			close(stop)
			wg.Wait()
		}
	}
	b.StopTimer()
	for _, a := range arms {
		b.ReportMetric(float64(percentile(a.took, 0.5).Microseconds())/1e3, a.name+"-p50-ms")
		b.ReportMetric(float64(percentile(a.took, 0.9).Microseconds())/1e3, a.name+"-p90-ms")
	}
}
