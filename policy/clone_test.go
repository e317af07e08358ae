package policy

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtlsguard/mtlsguard/internal/meshgen"
)

// render prints the full table with every endpoint verdict, the form the
// golden scenarios compare.
func render(t *testing.T, st *State) string {
	t.Helper()
	return strings.Join(renderRows(t, st, Query{}, false), "")
}

// renderRows renders the rows of the table q selects, each with its
// endpoint verdicts; with conflicts, only the CONFLICT rows.
func renderRows(t *testing.T, st *State, q Query, conflicts bool) []string {
	t.Helper()
	groups, err := st.Table(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range Expand(groups) {
		if conflicts && r.Status != Conflict {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", r.View, strings.Join(r.Columns(), " "))
		for _, ep := range r.Endpoints {
			fmt.Fprintf(&b, "  %+v\n", ep)
		}
		out = append(out, b.String())
	}
	return out
}

// checkConflictsQuery checks that Query.Conflicts, which picks rows by the
// decisions' cached verdicts, lists the full table's CONFLICT rows and no
// other.
func checkConflictsQuery(t *testing.T, st *State, after string) {
	t.Helper()
	got := strings.Join(renderRows(t, st, Query{Conflicts: true}, false), "")
	want := strings.Join(renderRows(t, st, Query{}, true), "")
	if got != want {
		t.Fatalf("after %s: Query.Conflicts lists other rows than the table's conflicts\n--- Query.Conflicts\n%s--- the table's conflicts\n%s", after, got, want)
	}
}

// randomObject is one object of a small universe in which every kind of
// event collides often: three namespaces, three apps, pods with and
// without sidecars (some finished), policies and rules at every level, the
// mesh ConfigMap.
func randomObject(r *rand.Rand) runtime.Object {
	ns := fmt.Sprintf("ns%d", r.IntN(3))
	app := fmt.Sprintf("app%d", r.IntN(3))
	modes := []securityapi.PeerAuthentication_MutualTLS_Mode{securityapi.PeerAuthentication_MutualTLS_UNSET, securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, securityapi.PeerAuthentication_MutualTLS_STRICT, securityapi.PeerAuthentication_MutualTLS_DISABLE}
	switch r.IntN(10) {
	case 6:
		return randomServiceEntry(r, ns, app)
	case 7:
		we := &networkingv1.WorkloadEntry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("we-%d", r.IntN(3))}}
		we.Spec.Address = fmt.Sprintf("10.0.0.%d", r.IntN(9))
		we.Spec.Labels = map[string]string{"app": app}
		if r.IntN(2) == 0 {
			we.Spec.ServiceAccount = "vm"
		}
		if r.IntN(3) == 0 {
			we.Labels = map[string]string{TLSModeLabel: "disabled"}
		}
		return we
	case 8:
		return randomSidecar(r, ns, app)
	case 0:
		labels := map[string]string{InjectionLabel: []string{"enabled", "disabled"}[r.IntN(2)]}
		if r.IntN(2) == 0 {
			labels[DataplaneModeLabel] = "ambient"
		}
		if r.IntN(4) == 0 {
			labels[UseWaypointLabel] = "waypoint"
		}
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}
	case 1:
		s := svc(ns, app, 80, intstrInt(8080))
		if r.IntN(3) == 0 {
			s.Spec.Selector = map[string]string{"app": fmt.Sprintf("app%d", r.IntN(3))}
		}
		return s
	case 2:
		extra := map[string]string{}
		if r.IntN(2) == 0 {
			extra["version"] = "v1"
		}
		switch r.IntN(6) {
		case 0:
			extra[DataplaneModeLabel] = "ambient"
		case 1:
			extra[DataplaneModeLabel] = "none"
		case 2:
			extra[TunnelLabel] = "http"
		}
		p := podOf(ns, fmt.Sprintf("%s-%d", app, r.IntN(4)), app, r.IntN(4) != 0, extra)
		if r.IntN(8) == 0 {
			p.Status.Phase = corev1.PodSucceeded
		}
		return p
	case 3:
		switch r.IntN(4) {
		case 0:
			return pa("istio-system", "default", modes[r.IntN(4)]) // the mesh's
		case 1, 2:
			return pa(ns, "default", modes[r.IntN(4)])
		}
		return pa(ns, app, modes[r.IntN(4)], paSelector(map[string]string{"app": app}), paPort(8080, modes[r.IntN(4)]))
	case 9:
		if r.IntN(3) != 0 {
			return randomDR(r, ns, app)
		}
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: MeshConfigMapName, Namespace: "istio-system"},
			Data: map[string]string{"mesh": []string{"", "enableAutoMtls: false", "defaultDestinationRuleExportTo: [.]"}[r.IntN(3)]}}
	default:
		return randomDR(r, ns, app)
	}
}

func randomDR(r *rand.Rand, ns, app string) *networkingv1.DestinationRule {
	tls := []networkingapi.ClientTLSSettings_TLSmode{networkingapi.ClientTLSSettings_DISABLE, networkingapi.ClientTLSSettings_ISTIO_MUTUAL}
	// Hosts of the rule's namespace, of every namespace, and of another
	// namespace's service or services.
	other := fmt.Sprintf("ns%d", r.IntN(3))
	host := []string{app, "*.local", "*." + ns + ".svc.cluster.local", app + "." + other + ".svc.cluster.local", "*." + other + ".svc.cluster.local"}[r.IntN(5)]
	opts := []drOpt{drTLS(tls[r.IntN(2)])}
	if r.IntN(4) == 0 {
		opts = append(opts, drExport(".", other))
	}
	if r.IntN(3) == 0 {
		opts = append(opts, drSelector(map[string]string{"app": app}))
	}
	if r.IntN(3) == 0 {
		opts = append(opts, drSubset("v1", map[string]string{"version": "v1"}, nil))
	}
	return dr(ns, "r-"+app, host, opts...)
}

func key(o runtime.Object) string {
	m := o.(metav1.Object)
	return fmt.Sprintf("%T/%s/%s", o, m.GetNamespace(), m.GetName())
}

// TestClonedStatesStayIndependent applies random events one by one, each
// to a Clone of the previous state, and checks that every state reads and
// decides exactly like a state built from scratch from its objects, and
// that no later event changes an earlier state: what lets decisions read a
// state while the cache moves on, and services keep their servers from one
// decision to the next (servers.go).
func TestClonedStatesStayIndependent(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		checkIncremental(t, rand.New(rand.NewPCG(seed, 7)), 60)
	}
}

// FuzzApplyRemove is TestClonedStatesStayIndependent with the events drawn
// from the fuzzer's bytes.
func FuzzApplyRemove(f *testing.F) {
	for _, seed := range []string{"", "events", "0123456789abcdef0123456789abcdef", strings.Repeat("\x00", 80), strings.Repeat("\xff", 80)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkIncremental(t, meshgen.Rand(data), 40)
	})
}

// checkIncremental applies steps random events (randomObject), each to a
// Clone of the previous state, and checks every state against NewState of
// the objects live at that point, and every earlier state against its own
// table once all events ran.
func checkIncremental(t *testing.T, r *rand.Rand, steps int) {
	t.Helper()
	live := map[string]runtime.Object{}
	st := mustState(t, Snapshot{})
	type version struct {
		st      *State
		table   string
		change  Change
		decided string
	}
	var versions []version
	var events []string
	for step := 0; step < steps; step++ {
		next := st.Clone()
		o := randomObject(r)
		if old, ok := live[key(o)]; ok && r.IntN(3) == 0 {
			delete(live, key(o))
			events = append(events, "remove "+key(old))
			if err := next.Remove(old); err != nil {
				t.Fatal(err)
			}
		} else {
			live[key(o)] = o
			if p, ok := o.(*corev1.Pod); ok && terminated(p) {
				delete(live, key(o)) // a finished pod is no endpoint: NewState leaves it out too
			}
			events = append(events, "apply "+key(o))
			if err := next.Apply(o); err != nil {
				t.Fatal(err)
			}
		}
		snap := snapshotOf(t, slices.Collect(maps.Values(live)))
		fresh := mustState(t, snap)
		got, want := render(t, next), render(t, fresh)
		if got != want {
			t.Fatalf("after %v: incremental state differs from a fresh one\n--- incremental\n%s--- fresh\n%s", events, got, want)
		}
		if next.totalViews != fresh.totalViews {
			t.Fatalf("after %v: %d views counted, want %d", events, next.totalViews, fresh.totalViews)
		}
		if next.totalZtunnelViews != fresh.totalZtunnelViews {
			t.Fatalf("after %v: %d ztunnel views counted, want %d", events, next.totalZtunnelViews, fresh.totalZtunnelViews)
		}
		// Decided twice: the second reads the servers the first kept.
		ch := randomChange(r, live)
		gotDecided, wantDecided := decided(t, next, ch), decided(t, fresh, ch)
		if again := decided(t, next, ch); gotDecided != wantDecided || again != wantDecided {
			t.Fatalf("after %v: %s decides differently on the incremental state\n--- incremental\n%s\n--- again\n%s\n--- fresh\n%s", events, describeChange(ch.Old, ch.New), gotDecided, again, wantDecided)
		}
		// After the decisions, whose verdicts it reads.
		checkConflictsQuery(t, next, fmt.Sprint(events))
		versions = append(versions, version{st: next, table: got, change: ch, decided: gotDecided})
		st = next
	}
	for i, v := range versions {
		if got := render(t, v.st); got != v.table {
			t.Fatalf("after %v: version %d changed after later events", events, i)
		}
		if got := decided(t, v.st, v.change); got != v.decided {
			t.Fatalf("after %v: version %d decides %s differently after later events and decisions\n--- now\n%s\n--- then\n%s", events, i, describeChange(v.change.Old, v.change.New), got, v.decided)
		}
	}
}

// randomChange is a write of a PeerAuthentication or DestinationRule of the
// small universe: a create, an update of the live object or its delete.
func randomChange(r *rand.Rand, live map[string]runtime.Object) Change {
	for {
		o := randomObject(r)
		switch o.(type) {
		case *securityv1.PeerAuthentication, *networkingv1.DestinationRule:
		default:
			continue
		}
		old := live[key(o)]
		if old != nil && r.IntN(4) == 0 {
			return Change{Old: old}
		}
		return Change{Old: old, New: o}
	}
}

// decided renders a decision cell by cell, to compare two decisions.
func decided(t *testing.T, st *State, ch Change) string {
	t.Helper()
	d, err := st.Decide(context.Background(), ch)
	if err != nil {
		return "error: " + err.Error()
	}
	var lines []string
	for name, groups := range map[string][]Group{"new": d.New, "resolved": d.Resolved} {
		for c, row := range decisionCells(t, groups) {
			lines = append(lines, fmt.Sprintf("%s %s %s", name, c, strings.Join(row.Columns(), " ")))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// randomServiceEntry is a ServiceEntry of the small universe: internal or
// external, selecting pods and WorkloadEntries or with an inline endpoint,
// exported everywhere or to its own namespace.
func randomServiceEntry(r *rand.Rand, ns, app string) *networkingv1.ServiceEntry {
	se := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "se-" + app}}
	se.Spec.Hosts = []string{app + ".internal"}
	if r.IntN(4) != 0 {
		se.Spec.Location = networkingapi.ServiceEntry_MESH_INTERNAL
	}
	se.Spec.Resolution = []networkingapi.ServiceEntry_Resolution{networkingapi.ServiceEntry_STATIC, networkingapi.ServiceEntry_DNS, networkingapi.ServiceEntry_NONE}[r.IntN(3)]
	se.Spec.Ports = []*networkingapi.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP", TargetPort: 8080}}
	if r.IntN(3) == 0 {
		se.Spec.Endpoints = []*networkingapi.WorkloadEntry{{Address: "10.1.0.1", ServiceAccount: "vm", Labels: map[string]string{"app": app}}}
	} else {
		se.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": app}}
	}
	if r.IntN(3) == 0 {
		se.Spec.ExportTo = []string{"."}
	}
	return se
}

// randomSidecar is a namespace or selector Sidecar importing a random set
// of namespaces, with or without its own outbound traffic policy.
func randomSidecar(r *rand.Rand, ns, app string) *networkingv1.Sidecar {
	sc := &networkingv1.Sidecar{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	if r.IntN(3) == 0 {
		sc.Name = "sc-" + app
		sc.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": app}}
	}
	hosts := []string{"./*", "*/*", "ns0/*", "~ns1/*", "*/app1.internal"}
	l := &networkingapi.IstioEgressListener{Hosts: []string{hosts[r.IntN(len(hosts))], hosts[r.IntN(len(hosts))]}}
	if r.IntN(4) == 0 {
		l.Port = &networkingapi.SidecarPort{Number: 80, Protocol: "HTTP", Name: "http"}
	}
	sc.Spec.Egress = []*networkingapi.IstioEgressListener{l}
	if r.IntN(2) == 0 {
		sc.Spec.OutboundTrafficPolicy = &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_Mode(r.IntN(2))}
	}
	return sc
}
