package webhook

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtlsguard/mtlsguard/internal/bigcluster"
	"github.com/mtlsguard/mtlsguard/policy"
)

// BenchmarkContendedDecisions measures what a service-host admission waits
// for while mesh-wide decisions run and the cache takes 1,000 pod events a
// second, against the same admissions alone (issue #8). The two arms run in
// alternating blocks, so that the noise of a shared machine falls on both.
func BenchmarkContendedDecisions(b *testing.B) {
	s := bigStore(b)
	host := policy.Change{New: &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns-17", Name: "bad-rule", CreationTimestamp: metav1.Now()},
		Spec:       networkingapi.DestinationRule{Host: "svc-3.ns-43.svc.cluster.local", TrafficPolicy: bigcluster.TLSPolicy(networkingapi.ClientTLSSettings_DISABLE)},
	}}
	meshPA := func(m securityapi.PeerAuthentication_MutualTLS_Mode) *securityv1.PeerAuthentication {
		return &securityv1.PeerAuthentication{
			ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "default", CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
			Spec:       securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: m}},
		}
	}
	mesh := policy.Change{Old: meshPA(securityapi.PeerAuthentication_MutualTLS_STRICT), New: meshPA(securityapi.PeerAuthentication_MutualTLS_DISABLE)}

	const perBlock = 300
	measure := func(out []time.Duration) []time.Duration {
		for range perBlock {
			t0 := time.Now()
			v, err := s.decide(context.Background(), host)
			out = append(out, time.Since(t0))
			if err != nil || v.total == 0 {
				b.Fatalf("service-host decision: %d new conflicts, %v; want a denial", v.total, err)
			}
			time.Sleep(200 * time.Microsecond) // admissions arrive, they do not queue
		}
		return out
	}
	var alone, contended []time.Duration
	meshDecisions, podEvents := 0, 0
	b.ResetTimer()
	for range b.N {
		alone = measure(alone)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { // mesh-wide writes, one after the other
			for {
				select {
				case <-stop:
					return
				default:
				}
				if v, err := s.decide(context.Background(), mesh); err != nil || v.total == 0 {
					b.Errorf("mesh-wide decision: %d new conflicts, %v; want a denial", v.total, err)
					return
				}
				meshDecisions++
			}
		})
		wg.Go(func() { // 1,000 pod events a second
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				p := churnPod(i % 50)
				var err error
				if (i/50)%2 == 0 {
					err = s.Apply(p)
				} else {
					err = s.Remove(p)
				}
				if err != nil {
					b.Errorf("pod event: %v", err)
					return
				}
				podEvents++
			}
		})
		contended = measure(contended)
		close(stop)
		wg.Wait()
	}
	b.StopTimer()
	pa, pc := percentile(alone, 0.99), percentile(contended, 0.99)
	b.ReportMetric(float64(percentile(alone, 0.5).Microseconds()), "alone-p50-µs")
	b.ReportMetric(float64(pa.Microseconds()), "alone-p99-µs")
	b.ReportMetric(float64(percentile(contended, 0.5).Microseconds()), "contended-p50-µs")
	b.ReportMetric(float64(pc.Microseconds()), "contended-p99-µs")
	b.ReportMetric(float64(pc)/float64(pa), "p99-ratio")
	b.ReportMetric(float64(meshDecisions)/float64(b.N), "mesh-decisions/block")
	b.ReportMetric(float64(podEvents)/float64(b.N), "pod-events/block")
}

// churnPod is a pod with a sidecar behind ns-5's svc-1.
func churnPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns-5", Name: fmt.Sprintf("churn-%d", i),
			Labels:      map[string]string{"app": "svc-1", policy.TLSModeLabel: "istio"},
			Annotations: map[string]string{policy.SidecarStatusAnnotation: "{}"}},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: 9090}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
