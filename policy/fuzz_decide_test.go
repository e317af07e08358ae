package policy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtlsguard/mtlsguard/internal/meshgen"
)

// FuzzDecide checks Decide against the definition it shortcuts: diff the
// full Table before and after the change, client pod by client pod. The
// fuzz input drives a generated mesh (internal/meshgen) and one create,
// update or delete of a DestinationRule or PeerAuthentication. Properties:
//   - every (client pod, host, port, subset) Decide reports as new fails
//     after the change for an endpoint it did not fail for before, and
//     every such cell is reported; the same for resolved;
//   - each reported row reads as the after (new) or before (resolved)
//     table's row for those clients;
//   - the decision does not depend on whether the state already holds the
//     old or the new object;
//   - deciding the inverse change swaps new and resolved.
func FuzzDecide(f *testing.F) {
	for _, seed := range []string{"", "a", "mesh", "0123456789abcdef", strings.Repeat("\x00", 64), strings.Repeat("\xff", 64)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := meshgen.New(meshgen.Rand(data))
		objs := g.Mesh()
		objs = append(objs, g.Extras()...)
		old, upd := g.Change()
		checkDecision(t, objs, old, upd)
	})
}

// checkDecision checks Decide on one change of objs (which hold old, when
// it is not nil) against the tables before and after it.
func checkDecision(t *testing.T, objs []runtime.Object, old, upd runtime.Object) {
	t.Helper()
	after := slices.DeleteFunc(slices.Clone(objs), func(o runtime.Object) bool { return old != nil && o == old })
	if upd != nil {
		after = append(after, upd)
	}
	stBefore, stAfter := mustState(t, snapshotOf(t, objs)), mustState(t, snapshotOf(t, after))
	cellsBefore, cellsAfter := tableCells(t, stBefore), tableCells(t, stAfter)

	ctx := context.Background()
	d, err := stBefore.Decide(ctx, Change{Old: old, New: upd})
	if err != nil {
		t.Fatalf("decide %s: %v", describeChange(old, upd), err)
	}
	gotNew, gotResolved := decisionCells(t, d.New), decisionCells(t, d.Resolved)
	wantNew, wantResolved := newlyFailing(cellsBefore, cellsAfter), newlyFailing(cellsAfter, cellsBefore)
	compareCells(t, "new", describeChange(old, upd), gotNew, wantNew, cellsAfter)
	compareCells(t, "resolved", describeChange(old, upd), gotResolved, wantResolved, cellsBefore)
	if d.NewTotal != len(d.New) || d.ResolvedTotal != len(d.Resolved) {
		t.Errorf("%s: totals %d/%d for %d/%d groups", describeChange(old, upd), d.NewTotal, d.ResolvedTotal, len(d.New), len(d.Resolved))
	}

	// A cache that already holds the write decides the same.
	lagging, err := stAfter.Decide(ctx, Change{Old: old, New: upd})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(keysOf(decisionCells(t, lagging.New)), keysOf(gotNew)) || !maps.Equal(keysOf(decisionCells(t, lagging.Resolved)), keysOf(gotResolved)) {
		t.Errorf("%s: decided on the state after the write, the answer differs", describeChange(old, upd))
	}

	checkConflictsQuery(t, stBefore, describeChange(old, upd)+", before it")
	checkConflictsQuery(t, stAfter, describeChange(old, upd)+", after it")

	// The inverse change swaps the two lists.
	inv, err := stAfter.Decide(ctx, Change{Old: upd, New: old})
	if err != nil {
		t.Fatalf("decide inverse of %s: %v", describeChange(old, upd), err)
	}
	if !maps.Equal(keysOf(decisionCells(t, inv.New)), keysOf(gotResolved)) || !maps.Equal(keysOf(decisionCells(t, inv.Resolved)), keysOf(gotNew)) {
		t.Errorf("%s: the inverse change's new and resolved rows are not this change's resolved and new", describeChange(old, upd))
	}
}

// cell is one client pod's view of one service port or subset. A namespace
// labelled for injection without pods is the client "<ns>/".
type cell struct {
	client, host string
	port         int32
	subset       string
}

func (c cell) String() string {
	h := c.host
	if c.subset != "" {
		h += "|" + c.subset
	}
	return fmt.Sprintf("%s -> %s:%d", c.client, h, c.port)
}

// clientsOf names the clients of a view one by one (a view's pods can move
// to another view when a workloadSelector rule changes), or the namespace
// for a view without pods; ztunnel clients apart from sidecar ones.
func clientsOf(v ClientView) []string {
	kind := ""
	if v.Ztunnel {
		kind = "ztunnel "
	}
	if len(v.Pods) == 0 {
		return []string{kind + v.Namespace + "/"}
	}
	out := make([]string, len(v.Pods))
	for i, p := range v.Pods {
		out[i] = kind + p
	}
	return out
}

// tableCells lists the rows of the full table by client pod.
func tableCells(t *testing.T, st *State) map[cell]*Row {
	t.Helper()
	groups, err := st.Table(Query{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[cell]*Row{}
	for _, g := range groups {
		for _, v := range g.Views.List() {
			for _, c := range clientsOf(v) {
				k := cell{c, g.Row.Host, g.Row.Port, g.Row.Subset}
				if prev, dup := out[k]; dup {
					t.Fatalf("table lists %s twice: %v and %v", k, prev.Columns(), g.Row.Columns())
				}
				out[k] = g.Row
			}
		}
	}
	return out
}

// decisionCells lists the rows of a decision by client pod.
func decisionCells(t *testing.T, groups []Group) map[cell]*Row {
	t.Helper()
	out := map[cell]*Row{}
	for _, g := range groups {
		for _, v := range g.Views.List() {
			for _, c := range clientsOf(v) {
				k := cell{c, g.Row.Host, g.Row.Port, g.Row.Subset}
				if _, dup := out[k]; dup {
					t.Fatalf("decision lists %s twice", k)
				}
				out[k] = g.Row
			}
		}
	}
	return out
}

// failing is the set of endpoints (pod:target port) a row fails for.
func failing(r *Row) map[string]bool {
	out := map[string]bool{}
	if r == nil {
		return out
	}
	for _, ep := range r.Endpoints {
		if !ep.OK {
			out[fmt.Sprintf("%s:%d", ep.Pod, ep.TargetPort)] = true
		}
	}
	return out
}

// newlyFailing lists the cells of to that fail for an endpoint they do not
// fail for in from (a cell missing from a table fails for nobody).
func newlyFailing(from, to map[cell]*Row) map[cell]bool {
	out := map[cell]bool{}
	for k, r := range to {
		was := failing(from[k])
		for ep := range failing(r) {
			if !was[ep] {
				out[k] = true
				break
			}
		}
	}
	return out
}

func keysOf(m map[cell]*Row) map[cell]bool {
	out := make(map[cell]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func compareCells(t *testing.T, what, change string, got map[cell]*Row, want map[cell]bool, table map[cell]*Row) {
	t.Helper()
	var missing, extra, differ []string
	for k := range want {
		if got[k] == nil {
			missing = append(missing, k.String())
		}
	}
	for k, r := range got {
		switch {
		case !want[k]:
			extra = append(extra, k.String())
		case !r.sameContent(table[k]):
			differ = append(differ, fmt.Sprintf("%s: decision %v, table %v", k, r.Columns(), table[k].Columns()))
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(differ)
	if len(missing)+len(extra)+len(differ) > 0 {
		t.Errorf("%s: %s rows disagree with the tables' diff\nmissing: %v\nnot newly failing: %v\nrow differs: %v", change, what, missing, extra, differ)
	}
}

func describeChange(old, upd runtime.Object) string {
	name := func(o runtime.Object) string {
		m := o.(metav1.Object)
		return fmt.Sprintf("%T %s/%s", o, m.GetNamespace(), m.GetName())
	}
	switch {
	case old == nil:
		return "create " + name(upd)
	case upd == nil:
		return "delete " + name(old)
	}
	return "update " + name(upd)
}

// snapshotOf sorts objects into a Snapshot; the mesh ConfigMap of the root
// namespace sets the mesh.
func snapshotOf(t testing.TB, objs []runtime.Object) Snapshot {
	t.Helper()
	snap := Snapshot{Mesh: DefaultMesh()}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			snap.Namespaces = append(snap.Namespaces, o)
		case *corev1.Service:
			snap.Services = append(snap.Services, o)
		case *corev1.Pod:
			snap.Pods = append(snap.Pods, o)
		case *securityv1.PeerAuthentication:
			snap.PeerAuthentications = append(snap.PeerAuthentications, o)
		case *networkingv1.DestinationRule:
			snap.DestinationRules = append(snap.DestinationRules, o)
		case *networkingv1.ServiceEntry:
			snap.ServiceEntries = append(snap.ServiceEntries, o)
		case *networkingv1.WorkloadEntry:
			snap.WorkloadEntries = append(snap.WorkloadEntries, o)
		case *networkingv1.Sidecar:
			snap.Sidecars = append(snap.Sidecars, o)
		case *corev1.ConfigMap:
			if o.Name == MeshConfigMapName && o.Namespace == snap.Mesh.RootNamespace {
				m, err := snap.Mesh.WithConfigMap(o)
				if err != nil {
					t.Fatal(err)
				}
				snap.Mesh = m
			}
		default:
			t.Fatalf("unexpected %T", o)
		}
	}
	return snap
}

// TestMeshgenNamesAreTheEngines keeps the generator's copies of Istio's
// names equal to the engine's.
func TestMeshgenNamesAreTheEngines(t *testing.T) {
	for _, c := range [][2]string{
		{meshgen.TLSModeLabel, TLSModeLabel},
		{meshgen.SidecarStatusAnnotation, SidecarStatusAnnotation},
		{meshgen.InjectionLabel, InjectionLabel},
		{meshgen.MeshConfigMapName, MeshConfigMapName},
		{meshgen.RootNamespace, DefaultMesh().RootNamespace},
		{meshgen.DataplaneModeLabel, DataplaneModeLabel},
		{meshgen.TunnelLabel, TunnelLabel},
		{meshgen.SpiffeID("td.example", "ns", "sa"), SpiffeID("td.example", "ns", "sa")},
	} {
		if c[0] != c[1] {
			t.Errorf("meshgen says %q, the engine %q", c[0], c[1])
		}
	}
}
