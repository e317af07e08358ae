package audit

import (
	"fmt"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mtlsguard/mtlsguard/policy"
)

// Size of the generated cluster, that of policy/bench_test.go (issue #2).
const (
	benchNamespaces = 2000
	benchServices   = 10000 // 5 per namespace
	benchPods       = 50000 // 5 per service
	benchDRs        = 5000
	benchPAs        = 2000
)

// bigCluster is policy/bench_test.go's generator, copied (test files
// cannot be imported): a deterministic mesh, a mesh STRICT policy and a
// `*.local` ISTIO_MUTUAL rule in istio-system; per namespace five services
// (two ports, one with a named targetPort) of five pods each, most with a
// sidecar; namespace and workload PeerAuthentications; and DestinationRules
// for single services (some with subsets, port-level TLS or exportTo ".")
// and for whole namespaces.
func bigCluster() policy.Snapshot {
	s := policy.Snapshot{Mesh: policy.DefaultMesh()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	meta := func(ns, name string, i int) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(i) * time.Second))}
	}
	s.Namespaces = append(s.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}})
	s.PeerAuthentications = append(s.PeerAuthentications, &securityv1.PeerAuthentication{
		ObjectMeta: meta("istio-system", "default", 0),
		Spec:       securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}},
	})
	s.DestinationRules = append(s.DestinationRules, &networkingv1.DestinationRule{
		ObjectMeta: meta("istio-system", "default", 0),
		Spec:       networkingapi.DestinationRule{Host: "*.local", TrafficPolicy: tlsPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)},
	})
	pas, drs := 1, 1
	for n := 0; n < benchNamespaces; n++ {
		ns := fmt.Sprintf("ns-%d", n)
		s.Namespaces = append(s.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"istio-injection": "enabled"}}})
		for v := 0; v < benchServices/benchNamespaces; v++ {
			app := fmt.Sprintf("svc-%d", v)
			s.Services = append(s.Services, &corev1.Service{
				ObjectMeta: meta(ns, app, 0),
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
					{Name: "grpc", Port: 9090, TargetPort: intstr.FromString("grpc")},
				}},
			})
			for p := 0; p < benchPods/benchServices; p++ {
				pod := &corev1.Pod{
					ObjectMeta: meta(ns, fmt.Sprintf("%s-%d", app, p), 0),
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
						{Name: "http", ContainerPort: 8080}, {Name: "grpc", ContainerPort: 9090},
					}}}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning},
				}
				pod.Labels = map[string]string{"app": app, "version": fmt.Sprintf("v%d", p%2)}
				if (n+v+p)%17 != 0 { // about 6% of pods run without a sidecar
					pod.Labels[policy.TLSModeLabel] = "istio"
					pod.Annotations = map[string]string{policy.SidecarStatusAnnotation: "{}"}
				}
				s.Pods = append(s.Pods, pod)
			}
		}
		// One PeerAuthentication per namespace: alternately namespace-wide
		// PERMISSIVE and a workload STRICT policy with a port-level DISABLE.
		if pas < benchPAs {
			pa := &securityv1.PeerAuthentication{ObjectMeta: meta(ns, "default", pas)}
			if n%2 == 0 {
				pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_PERMISSIVE}
			} else {
				pa.Name = "svc-0"
				pa.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "svc-0"}}
				pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
				pa.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{9090: {Mode: securityapi.PeerAuthentication_MutualTLS_DISABLE}}
			}
			s.PeerAuthentications = append(s.PeerAuthentications, pa)
			pas++
		}
		// Two or three DestinationRules per namespace.
		for d := 0; d < 3 && drs < benchDRs; d++ {
			if d == 2 && n%2 == 1 {
				break
			}
			dr := &networkingv1.DestinationRule{ObjectMeta: meta(ns, fmt.Sprintf("dr-%d", d), drs)}
			switch d {
			case 0: // a service rule with subsets and mTLS on the http port only
				dr.Spec.Host = fmt.Sprintf("svc-%d", n%5)
				dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{PortLevelSettings: []*networkingapi.TrafficPolicy_PortTrafficPolicy{{
					Port: &networkingapi.PortSelector{Number: 80}, Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL},
				}}}
				dr.Spec.Subsets = []*networkingapi.Subset{{Name: "v0", Labels: map[string]string{"version": "v0"}}, {Name: "v1", Labels: map[string]string{"version": "v1"}}}
			case 1: // a private rule for another namespace's service
				dr.Spec.Host = fmt.Sprintf("svc-1.ns-%d.svc.cluster.local", (n+1)%benchNamespaces)
				dr.Spec.ExportTo = []string{"."}
				dr.Spec.TrafficPolicy = tlsPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
			case 2: // the namespace's own services, connection pool only
				dr.Spec.Host = fmt.Sprintf("*.%s.svc.cluster.local", ns)
				dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}}
			}
			s.DestinationRules = append(s.DestinationRules, dr)
			drs++
		}
	}
	return s
}

func tlsPolicy(m networkingapi.ClientTLSSettings_TLSmode) *networkingapi.TrafficPolicy {
	return &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: m}}
}

// bigAudit is the generated cluster applied to a source that an Auditor
// observes, as webhook.Store feeds it from the informers' initial lists.
func bigAudit(b *testing.B) (*source, *Auditor) {
	b.Helper()
	snap := bigCluster()
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
// after a rule, policy or mesh event.
func BenchmarkAuditFull(b *testing.B) {
	src, a := bigAudit(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.recompute(dirtySet{full: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n := 0
	for _, fs := range a.table {
		n += len(fs)
	}
	if n == 0 {
		b.Fatal("no conflicts in the generated cluster")
	}
	b.ReportMetric(float64(n), "conflicts")
	_ = src
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
