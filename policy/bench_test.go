package policy_test

import (
	"context"
	"flag"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtlsguard/mtlsguard/internal/bigcluster"
	"github.com/mtlsguard/mtlsguard/policy"
)

var benchScale = flag.Int("scale", 1, "size of the benchmark cluster: 1 is 50,000 pods, 4 is 200,000")

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

var benchState, mixedState *policy.State

func bigState(b *testing.B) *policy.State {
	b.Helper()
	if benchState == nil {
		k := *benchScale
		snap := bigcluster.Snapshot(k)
		if len(snap.Pods) != bigcluster.Pods*k || len(snap.Services) != bigcluster.Services*k || len(snap.DestinationRules) != bigcluster.DestinationRules*k || len(snap.PeerAuthentications) != bigcluster.PeerAuthentications*k {
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
	return decideOn(b, func() *policy.State { return st }, ch, wantNew)
}

// decideOn is decide on the State that state returns before each decision.
func decideOn(b *testing.B, state func() *policy.State, ch policy.Change, wantNew bool) policy.Decision {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var d policy.Decision
	for i := 0; i < b.N; i++ {
		var err error
		if d, err = state().DecideFirst(context.Background(), ch, 10); err != nil {
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
		Spec:       networkingapi.DestinationRule{Host: "svc-3.ns-43.svc.cluster.local", TrafficPolicy: bigcluster.TLSPolicy(networkingapi.ClientTLSSettings_DISABLE)},
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
			Spec:       networkingapi.DestinationRule{Host: "*.ns-43.svc.cluster.local", TrafficPolicy: bigcluster.TLSPolicy(networkingapi.ClientTLSSettings_DISABLE)},
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
	var before, after goruntime.MemStats
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		goruntime.GC()
		goruntime.ReadMemStats(&before)
		snap := bigcluster.Snapshot(*benchScale)
		b.StartTimer()
		st, err := policy.NewState(snap)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		snap = policy.Snapshot{}
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-retained")
		goruntime.KeepAlive(st)
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
		Spec:       networkingapi.DestinationRule{Host: "*.local", TrafficPolicy: bigcluster.TLSPolicy(m)},
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

// BenchmarkDecisionMeshWideAfterRuleEvent is the `*.local` write decided
// right after another DestinationRule event: a service's client plan
// (clients.go) is outdated by a rule whose host matches the service, and
// every plan by a wildcard rule other than a namespace-wide one, so this
// is the cost of the first mesh-wide decision after such an event, which
// makes the plans again. Each decision includes applying the event to a
// Clone (about 0.1 ms).
func BenchmarkDecisionMeshWideAfterRuleEvent(b *testing.B) {
	st := bigState(b)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ch := policy.Change{
		Old: meshDR("default", networkingapi.ClientTLSSettings_ISTIO_MUTUAL, t0),
		New: meshDR("default", networkingapi.ClientTLSSettings_DISABLE, t0)}
	for _, c := range []struct{ name, host string }{
		{"ServiceHost", "svc-3.ns-17.svc.cluster.local"}, // one service's plan
		{"Wildcard", "*.example.com"},                    // every plan
	} {
		event := &networkingv1.DestinationRule{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns-17", Name: "event", CreationTimestamp: metav1.NewTime(t0)},
			Spec:       networkingapi.DestinationRule{Host: c.host, TrafficPolicy: bigcluster.TLSPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)},
		}
		b.Run(c.name, func(b *testing.B) {
			after := func() *policy.State {
				next := st.Clone()
				if err := next.Apply(event); err != nil {
					b.Fatal(err)
				}
				return next
			}
			d := decideOn(b, after, ch, true)
			b.ReportMetric(float64(d.NewTotal), "new/op")
		})
	}
}

// BenchmarkDecisionMeshWideMixed is BenchmarkDecisionMeshWide on the same
// cluster with a quarter of its namespaces in ambient mode: ztunnel clients
// and captured servers are evaluated beside the sidecar ones.
func BenchmarkDecisionMeshWideMixed(b *testing.B) {
	if mixedState == nil {
		st, err := policy.NewState(bigcluster.Mixed(*benchScale))
		if err != nil {
			b.Fatal(err)
		}
		mixedState = st
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	strict, disable := securityapi.PeerAuthentication_MutualTLS_STRICT, securityapi.PeerAuthentication_MutualTLS_DISABLE
	cases := []struct {
		name    string
		ch      policy.Change
		wantNew bool
	}{
		{"PeerAuthenticationStrictToDisable", policy.Change{Old: meshPA(strict), New: meshPA(disable)}, true},
		{"DestinationRuleIstioMutualToDisable", policy.Change{
			Old: meshDR("default", networkingapi.ClientTLSSettings_ISTIO_MUTUAL, t0),
			New: meshDR("default", networkingapi.ClientTLSSettings_DISABLE, t0)}, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := decide(b, mixedState, c.ch, c.wantNew)
			b.ReportMetric(float64(d.NewTotal), "new/op")
			b.ReportMetric(float64(d.ResolvedTotal), "resolved/op")
		})
	}
}

// BenchmarkDecisionEntries is the admission question for the new kinds: a
// namespace's Sidecar that imports only its own namespace (every service of
// the cluster, for that namespace's clients), and a ServiceEntry that
// selects pods of one namespace (its own host, for every client).
func BenchmarkDecisionEntries(b *testing.B) {
	st := bigState(b)
	sc := &networkingv1.Sidecar{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-7", Name: "default"}}
	sc.Spec.Egress = []*networkingapi.IstioEgressListener{{Hosts: []string{"./*", "istio-system/*"}}}
	se := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-7", Name: "alias"}}
	se.Spec.Hosts = []string{"alias.internal"}
	se.Spec.Location = networkingapi.ServiceEntry_MESH_INTERNAL
	se.Spec.Resolution = networkingapi.ServiceEntry_STATIC
	se.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": "svc-1"}}
	se.Spec.Ports = []*networkingapi.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}}
	b.Run("SidecarNamespaceCreate", func(b *testing.B) {
		d := decide(b, st, policy.Change{New: sc}, true)
		b.ReportMetric(float64(d.NewTotal), "new/op")
	})
	b.Run("ServiceEntryCreate", func(b *testing.B) {
		d := decide(b, st, policy.Change{New: se}, false)
		b.ReportMetric(float64(d.NewTotal), "new/op")
	})
}

// BenchmarkApply is the cache's side of admission: one event applied to a
// Clone of the 50,000-pod state, as webhook.Store applies every informer
// event. A DestinationRule event must change its host's counts, not copy
// every host's (the webhook spent a quarter of its CPU doing that while
// rules were written).
func BenchmarkApply(b *testing.B) {
	st := bigState(b)
	dr := &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns-17", Name: "applied", CreationTimestamp: metav1.Now()},
		Spec:       networkingapi.DestinationRule{Host: "svc-3.ns-43.svc.cluster.local", ExportTo: []string{".", "ns-44"}, TrafficPolicy: bigcluster.TLSPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)},
	}
	pod := bigcluster.Snapshot(1).Pods[123].DeepCopy()
	pod.Labels["version"] = "v9"
	for _, c := range []struct {
		name string
		obj  runtime.Object
	}{{"DestinationRule", dr}, {"Pod", pod}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				next := st.Clone()
				if err := next.Apply(c.obj); err != nil {
					b.Fatal(err)
				}
				if err := next.Remove(c.obj); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecisionMeshWideAfterPolicyEvent is the restore of the mesh
// PeerAuthentication right after the write it undoes was stored: that
// event outdates every service's servers (servers.go), so this is the cost
// of the first mesh-wide decision after a mesh policy changed, the one that
// makes them again.
func BenchmarkDecisionMeshWideAfterPolicyEvent(b *testing.B) {
	st := bigState(b)
	strict, permissive := securityapi.PeerAuthentication_MutualTLS_STRICT, securityapi.PeerAuthentication_MutualTLS_PERMISSIVE
	after := func() *policy.State {
		next := st.Clone()
		if err := next.Apply(meshPA(permissive)); err != nil {
			b.Fatal(err)
		}
		return next
	}
	decideOn(b, after, policy.Change{Old: meshPA(permissive), New: meshPA(strict)}, false)
}
