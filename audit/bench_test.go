package audit

import (
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtlsguard/mtlsguard/internal/bigcluster"
	"github.com/mtlsguard/mtlsguard/policy"
)

func bigAudit(b *testing.B) (*source, *Auditor) {
	b.Helper()
	snap := bigcluster.Snapshot(1)
	st, err := policy.NewState(snap)
	if err != nil {
		b.Fatal(err)
	}
	src := &source{st: st}
	a, err := New(src, Config{Options: Options{ReportAPI: NoReports}, ModeLabel: "mtlsguard.io/mode"})
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range snap.Namespaces {
		a.Observe(o, false)
	}
	for _, o := range snap.Services {
		a.Observe(o, false)
	}
	for _, o := range snap.Pods {
		a.Observe(o, false)
	}
	for _, o := range snap.PeerAuthentications {
		a.Observe(o, false)
	}
	for _, o := range snap.DestinationRules {
		a.Observe(o, false)
	}
	return src, a
}

// BenchmarkAuditFull is the full recomputation: after the first sync, and
// after a rule, policy or mesh event. The events outdate what decisions
// keep on the services, which the recomputation reads: the mesh policy
// outdates every service's servers, a wildcard rule every client plan.
func BenchmarkAuditFull(b *testing.B) {
	src, a := bigAudit(b)
	strict, permissive := securityapi.PeerAuthentication_MutualTLS_STRICT, securityapi.PeerAuthentication_MutualTLS_PERMISSIVE
	wildcard := func(m networkingapi.ClientTLSSettings_TLSmode) runtime.Object {
		return &networkingv1.DestinationRule{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns-17", Name: "event"},
			Spec:       networkingapi.DestinationRule{Host: "*.example.com", TrafficPolicy: bigcluster.TLSPolicy(m)},
		}
	}
	cases := []struct {
		name string
		// events are applied in turn before each recomputation, untimed.
		events []runtime.Object
	}{
		{"Unchanged", nil},
		{"AfterMeshPolicyEvent", []runtime.Object{meshPolicy(permissive), meshPolicy(strict)}},
		{"AfterWildcardRuleEvent", []runtime.Object{wildcard(networkingapi.ClientTLSSettings_DISABLE), wildcard(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			most := 0
			for i := 0; i < b.N; i++ {
				if len(c.events) > 0 {
					b.StopTimer()
					if err := src.st.Apply(c.events[i%len(c.events)]); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if err := a.recompute(dirtySet{full: true}); err != nil {
					b.Fatal(err)
				}
				n := 0
				for _, fs := range a.table {
					n += len(fs)
				}
				most = max(most, n)
			}
			if most == 0 {
				b.Fatal("no conflicts in the generated cluster")
			}
			b.ReportMetric(float64(most), "conflicts")
		})
	}
}

// meshPolicy is the benchmark cluster's mesh PeerAuthentication in mode m.
func meshPolicy(m securityapi.PeerAuthentication_MutualTLS_Mode) runtime.Object {
	return &securityv1.PeerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "default"},
		Spec:       securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: m}},
	}
}

// BenchmarkAuditPodEvent is one pod event: a pod of ns-42's svc-3 loses
// and regains its sidecar, which the cache applies, the Auditor observes,
// and the recomputation of ns-42's services turns into a conflict and back.
func BenchmarkAuditPodEvent(b *testing.B) {
	src, a := bigAudit(b)
	if err := a.recompute(dirtySet{full: true}); err != nil {
		b.Fatal(err)
	}
	a.take()
	pods := [2]*corev1.Pod{}
	for i := range pods {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns-42", Name: "svc-3-0", Labels: map[string]string{"app": "svc-3", "version": "v0"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080}, {Name: "grpc", ContainerPort: 9090},
			}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		if i == 1 {
			p.Labels[policy.TLSModeLabel] = "istio"
			p.Annotations = map[string]string{policy.SidecarStatusAnnotation: "{}"}
		}
		pods[i] = p
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pods[i%2]
		src.mu.Lock()
		err := src.st.Apply(p)
		src.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		a.Observe(p, false)
		d := a.take()
		if d.full || !d.namespaces["ns-42"] {
			b.Fatalf("pod event marked %+v, want namespace ns-42 only", d)
		}
		if err := a.recompute(d); err != nil {
			b.Fatal(err)
		}
		conflict := false
		for _, f := range a.table["ns-42"] {
			conflict = conflict || f.service == "svc-3" && len(f.pods) > 0 && f.pods[0] == "ns-42/svc-3-0"
		}
		if conflict != (i%2 == 0) {
			b.Fatalf("event %d: conflict on ns-42/svc-3-0 = %v", i, conflict)
		}
	}
}

// BenchmarkAuditPublish lays the whole table out as reports (no API
// calls) after a pod event: what every recomputation is followed by. Only
// the recomputed namespace is rendered again.
func BenchmarkAuditPublish(b *testing.B) {
	_, a := bigAudit(b)
	if err := a.recompute(dirtySet{full: true}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var reports reportSet
	buildReports(a.table, a.rendered, a.tracker.snapshot(), a.tracker.uid)
	for i := 0; i < b.N; i++ {
		delete(a.rendered, "ns-42")
		reports, _ = buildReports(a.table, a.rendered, a.tracker.snapshot(), a.tracker.uid)
	}
	b.StopTimer()
	b.ReportMetric(float64(len(reports)), "reports")
}
