package policy

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// snapshotOf files objects into a Snapshot.
func snapshotOf(objs map[string]runtime.Object) Snapshot {
	var snap Snapshot
	for _, k := range slices.Sorted(maps.Keys(objs)) {
		switch o := objs[k].(type) {
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
		}
	}
	return snap
}

// failingPairs lists, per client pod and host:port (of a row), the
// endpoints that fail, from the full table.
func failingPairs(t *testing.T, st *State) map[string]map[string]bool {
	t.Helper()
	groups, err := st.Table(Query{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, r := range Expand(groups) {
		for _, p := range r.View.Pods {
			for _, ep := range r.Endpoints {
				if !ep.OK {
					k := p + " -> " + r.HostPort()
					if out[k] == nil {
						out[k] = map[string]bool{}
					}
					out[k][ep.Pod] = true
				}
			}
		}
	}
	return out
}

// newlyFailing lists the (pod, host:port) pairs of after with a failing
// endpoint that before does not fail.
func newlyFailing(before, after map[string]map[string]bool) []string {
	var out []string
	for k, eps := range after {
		for ep := range eps {
			if !before[k][ep] {
				out = append(out, k)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func reported(groups []Group) []string {
	seen := map[string]bool{}
	for _, g := range groups {
		for _, v := range g.Views.List() {
			for _, p := range v.Pods {
				seen[p+" -> "+g.Row.HostPort()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// TestEntryDecisionsMatchTheTablesBeforeAndAfter writes random
// ServiceEntries, WorkloadEntries, Sidecars, DestinationRules and
// PeerAuthentications into random clusters that hold all of them, and
// checks each decision against the full tables of the cluster before and
// after the write: NEW names exactly the (client pod, host:port) pairs with
// an endpoint that fails after and not before, RESOLVED the reverse.
func TestEntryDecisionsMatchTheTablesBeforeAndAfter(t *testing.T) {
	for seed := uint64(1); seed <= 600; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		live := map[string]runtime.Object{}
		for range 30 {
			o := randomObject(r)
			live[key(o)] = o
		}
		var write runtime.Object
		for write == nil || !(isEntryKind(write) || isDR(write) || isPA(write)) {
			write = randomObject(r)
		}
		var ch Change
		if old, ok := live[key(write)]; ok {
			ch.Old = old
			if r.IntN(3) != 0 {
				ch.New = write
			}
		} else {
			ch.New = write
		}
		after := maps.Clone(live)
		delete(after, key(write))
		if ch.New != nil {
			after[key(write)] = ch.New
		}
		stB, stA := mustState(t, snapshotOf(live)), mustState(t, snapshotOf(after))
		fb, fa := failingPairs(t, stB), failingPairs(t, stA)
		d, err := stB.Decide(context.Background(), ch)
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("seed %d: %T %s (old %v, new %v)", seed, write, key(write), ch.Old != nil, ch.New != nil)
		if got, want := reported(d.New), newlyFailing(fb, fa); !slices.Equal(got, want) {
			t.Fatalf("%s: NEW %v, want %v", what, got, want)
		}
		if got, want := reported(d.Resolved), newlyFailing(fa, fb); !slices.Equal(got, want) {
			t.Fatalf("%s: RESOLVED %v, want %v", what, got, want)
		}
	}
}
