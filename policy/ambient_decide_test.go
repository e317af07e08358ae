package policy

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// failingByView maps (client, host:port|subset) to the endpoints that
// fail, from a full table.
func failingByView(t *testing.T, st *State) map[string]map[string]bool {
	t.Helper()
	groups, err := st.Table(Query{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, r := range Expand(groups) {
		for _, c := range clientsOf(r.View) {
			k := c + " " + r.HostPort()
			if out[k] == nil {
				out[k] = map[string]bool{}
			}
			for _, ep := range r.Endpoints {
				if !ep.OK {
					out[k][ep.Pod] = true
				}
			}
		}
	}
	return out
}

// TestDecideFindsEveryNewFailureInAMixedMesh applies random
// PeerAuthentication and DestinationRule writes to random meshes that mix
// sidecar, ambient and plain pods, and checks that every (client view,
// row) pair whose failing endpoints grow between the full tables before
// and after the write is in the decision's NEW rows: the scope of a write
// must reach ztunnel clients and captured servers too.
func TestDecideFindsEveryNewFailureInAMixedMesh(t *testing.T) {
	zt, all := 0, 0
	for seed := uint64(1); seed <= 100; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		st := mustState(t, Snapshot{})
		live := map[string]runtime.Object{}
		for range 40 {
			o := randomObject(r)
			live[key(o)] = o
			if err := st.Apply(o); err != nil {
				t.Fatal(err)
			}
		}
		for range 10 {
			var write runtime.Object
			for write == nil {
				switch o := randomObject(r).(type) {
				case *securityv1.PeerAuthentication, *networkingv1.DestinationRule:
					write = o
				}
			}
			ch := Change{Old: live[key(write)], New: write}
			if ch.Old != nil && r.IntN(3) == 0 {
				ch.New = nil
			}
			after := st.Clone()
			var err error
			if ch.New != nil {
				err = after.Apply(ch.New)
			} else {
				err = after.Remove(ch.Old)
			}
			if err != nil {
				t.Fatal(err)
			}
			before, now := failingByView(t, st), failingByView(t, after)
			dec, err := st.Decide(context.Background(), ch)
			if err != nil {
				t.Fatal(err)
			}
			reported := map[string]bool{}
			for _, g := range dec.New {
				for _, v := range g.Views.List() {
					for _, c := range clientsOf(v) {
						reported[c+" "+g.Row.HostPort()] = true
					}
				}
			}
			for k, failing := range now {
				for pod := range failing {
					if !before[k][pod] {
						all++
						if strings.HasPrefix(k, "ztunnel") {
							zt++
						}
					}
					if !before[k][pod] && !reported[k] {
						t.Errorf("seed %d: write %s: %s newly fails for %s but the decision does not report it", seed, key(write), k, pod)
					}
				}
			}
			if ch.New != nil {
				live[key(write)] = ch.New
			} else {
				delete(live, key(write))
			}
			st = after
		}
	}
	t.Logf("%d new failures, %d of them for ztunnel clients", all, zt)
	if zt == 0 {
		t.Fatal("no write made a ztunnel client fail: the generator does not exercise ambient clients")
	}
}
