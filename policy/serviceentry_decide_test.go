package policy

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

// sortedObjects lists objects in key order, so that NewState sees them
// in the same order every run.
func sortedObjects(objs map[string]runtime.Object) []runtime.Object {
	var out []runtime.Object
	for _, k := range slices.Sorted(maps.Keys(objs)) {
		out = append(out, objs[k])
	}
	return out
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
		checkDecision(t, sortedObjects(live), ch.Old, ch.New)
	}
}
