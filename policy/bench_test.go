package policy_test

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"syscall"
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

// Size of the generated cluster the benchmarks run on (issue #2), at scale
// 1; the 4× cluster of issue #8 multiplies every count by 4.
const (
	benchNamespaces = 2000
	benchServices   = 10000 // 5 per namespace
	benchPods       = 50000 // 5 per service
	benchDRs        = 5000
	benchPAs        = 2000
)

var benchScale = flag.Int("scale", 1, "size of the benchmark cluster: 1 is 50,000 pods, 4 is 200,000")

// bigCluster generates a deterministic mesh: a mesh STRICT policy and a
// `*.local` ISTIO_MUTUAL rule in istio-system; per namespace five services
// (two ports, one with a named targetPort) of five pods each, most with a
// sidecar; namespace and workload PeerAuthentications; and DestinationRules
// for single services (some with subsets, port-level TLS or exportTo ".")
// and for whole namespaces.
func bigCluster(scale int) policy.Snapshot {
	s := policy.Snapshot{Mesh: policy.DefaultMesh()}
	namespaces, pasMax, drsMax := benchNamespaces*scale, benchPAs*scale, benchDRs*scale
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
	for n := 0; n < namespaces; n++ {
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
		if pas < pasMax {
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
		for d := 0; d < 3 && drs < drsMax; d++ {
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
				dr.Spec.Host = fmt.Sprintf("svc-1.ns-%d.svc.cluster.local", (n+1)%namespaces)
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

// cpuTime is the process's user and system CPU time: on a machine shared
// with other work it measures the cost of an operation where wall time
// measures the queue for the CPU too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchState *policy.State

func bigState(b *testing.B) *policy.State {
	b.Helper()
	if benchState == nil {
		k := *benchScale
		snap := bigCluster(k)
		if len(snap.Pods) != benchPods*k || len(snap.Services) != benchServices*k || len(snap.DestinationRules) != benchDRs*k || len(snap.PeerAuthentications) != benchPAs*k {
			b.Fatalf("generated %d pods, %d services, %d rules, %d policies", len(snap.Pods), len(snap.Services), len(snap.DestinationRules), len(snap.PeerAuthentications))
		}
		st, err := policy.NewState(snap)
		if err != nil {
			b.Fatal(err)
		}
		benchState = st
	}
	return benchState
}

func decide(b *testing.B, st *policy.State, ch policy.Change, wantNew bool) policy.Decision {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var d policy.Decision
	for i := 0; i < b.N; i++ {
		var err error
		if d, err = st.DecideFirst(context.Background(), ch, 10); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	if got := len(d.New) > 0; got != wantNew {
		b.Fatalf("new conflicts = %d, want some: %v", len(d.New), wantNew)
	}
	return d
}

// BenchmarkDecisionServiceHost is one admission question: a DISABLE rule for
// one service, which breaks it for the rule's namespace.
func BenchmarkDecisionServiceHost(b *testing.B) {
	st := bigState(b)
	dr := &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns-17", Name: "bad-rule", CreationTimestamp: metav1.Now()},
		Spec:       networkingapi.DestinationRule{Host: "svc-3.ns-43.svc.cluster.local", TrafficPolicy: tlsPolicy(networkingapi.ClientTLSSettings_DISABLE)},
	}
	decide(b, st, policy.Change{New: dr}, true)
}

// BenchmarkDecisionNamespaceWide is the admission question for writes that
// reach a whole namespace and every client namespace: a DISABLE rule for
// *.ns-43.svc.cluster.local in ns-43 (exported everywhere), and a namespace
// DISABLE PeerAuthentication replacing ns-42's PERMISSIVE one, which every
// client reaches with ISTIO_MUTUAL.
func BenchmarkDecisionNamespaceWide(b *testing.B) {
	st := bigState(b)
	b.Run("DestinationRule", func(b *testing.B) {
		dr := &networkingv1.DestinationRule{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns-43", Name: "all-plaintext", CreationTimestamp: metav1.Now()},
			Spec:       networkingapi.DestinationRule{Host: "*.ns-43.svc.cluster.local", TrafficPolicy: tlsPolicy(networkingapi.ClientTLSSettings_DISABLE)},
		}
		decide(b, st, policy.Change{New: dr}, true)
	})
	b.Run("PeerAuthentication", func(b *testing.B) {
		old := &securityv1.PeerAuthentication{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns-42", Name: "default", CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
			Spec:       securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_PERMISSIVE}},
		}
		upd := old.DeepCopy()
		upd.Spec.Mtls.Mode = securityapi.PeerAuthentication_MutualTLS_DISABLE
		decide(b, st, policy.Change{Old: old, New: upd}, true)
	})
}

// BenchmarkFullTable computes the table for every client view. Views that
// share a row share one Group; rows/op counts the rows a per-view listing
// would print.
func BenchmarkFullTable(b *testing.B) {
	st := bigState(b)
	b.ReportAllocs()
	b.ResetTimer()
	var groups []policy.Group
	for i := 0; i < b.N; i++ {
		var err error
		if groups, err = st.Table(policy.Query{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	rows := 0
	for _, g := range groups {
		rows += g.Views.Len()
	}
	b.ReportMetric(float64(len(groups)), "groups/op")
	b.ReportMetric(float64(rows), "rows/op")
}

// BenchmarkNewState builds the indexed snapshot and reports the heap it
// keeps once the input objects are garbage.
func BenchmarkNewState(b *testing.B) {
	var before, after runtime.MemStats
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&before)
		snap := bigCluster(*benchScale)
		b.StartTimer()
		st, err := policy.NewState(snap)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		snap = policy.Snapshot{}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-retained")
		runtime.KeepAlive(st)
		b.StartTimer()
	}
}

// meshPA is the benchmark cluster's mesh-wide PeerAuthentication in mode m.
func meshPA(m securityapi.PeerAuthentication_MutualTLS_Mode) *securityv1.PeerAuthentication {
	return &securityv1.PeerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "default", CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
		Spec:       securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: m}},
	}
}

// meshDR is the benchmark cluster's `*.local` DestinationRule with TLS mode m.
func meshDR(name string, m networkingapi.ClientTLSSettings_TLSmode, created time.Time) *networkingv1.DestinationRule {
	return &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       networkingapi.DestinationRule{Host: "*.local", TrafficPolicy: tlsPolicy(m)},
	}
}

// BenchmarkDecisionMeshWide is the admission question for the writes with
// the largest blast radius (issue #8): they reach every service and every
// client namespace.
func BenchmarkDecisionMeshWide(b *testing.B) {
	st := bigState(b)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	strict, permissive, disable := securityapi.PeerAuthentication_MutualTLS_STRICT, securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, securityapi.PeerAuthentication_MutualTLS_DISABLE
	cases := []struct {
		name    string
		ch      policy.Change
		wantNew bool
	}{
		{"PeerAuthenticationStrictToDisable", policy.Change{Old: meshPA(strict), New: meshPA(disable)}, true},
		{"PeerAuthenticationStrictToPermissive", policy.Change{Old: meshPA(strict), New: meshPA(permissive)}, false},
		{"PeerAuthenticationPermissiveToStrict", policy.Change{Old: meshPA(permissive), New: meshPA(strict)}, false},
		{"DestinationRuleIstioMutualToDisable", policy.Change{
			Old: meshDR("default", networkingapi.ClientTLSSettings_ISTIO_MUTUAL, t0),
			New: meshDR("default", networkingapi.ClientTLSSettings_DISABLE, t0)}, true},
		{"DestinationRuleDelete", policy.Change{Old: meshDR("default", networkingapi.ClientTLSSettings_ISTIO_MUTUAL, t0)}, false},
		{"DestinationRuleNewerCreate", policy.Change{New: meshDR("newer", networkingapi.ClientTLSSettings_DISABLE, t0.Add(time.Hour))}, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := decide(b, st, c.ch, c.wantNew)
			b.ReportMetric(float64(d.NewTotal), "new/op")
			b.ReportMetric(float64(d.ResolvedTotal), "resolved/op")
		})
	}
}
