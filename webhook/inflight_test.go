package webhook

import (
	"context"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// TestYieldWaitsForDecisionsInFlight proves the audit's Yield returns at
// once on an idle store, waits while a decision runs, returns when it
// ends, and never waits longer than maxYield for decisions that go on.
func TestYieldWaitsForDecisionsInFlight(t *testing.T) {
	store := deepDive(t)
	entered, release := make(chan struct{}, 4), make(chan struct{})
	v := testValidator(t, destinationRules, store, func(o *Options) {
		o.slow = &slowEngine{stall: func(context.Context) {
			entered <- struct{}{}
			<-release
		}}
	})
	timed := func(wait func()) <-chan time.Duration {
		took := make(chan time.Duration, 1)
		go func() {
			start := time.Now()
			wait()
			took <- time.Since(start)
		}()
		return took
	}
	yielded := func() <-chan time.Duration { return timed(store.Yield) }

	if took := <-yielded(); took > maxYield/2 {
		t.Fatalf("Yield on an idle store took %v", took)
	}

	answered := make(chan bool)
	go func() {
		answered <- v.Handle(context.Background(), request(t, admissionv1.Create, badRule(), nil)).Allowed
	}()
	<-entered
	// A decision that outlasts maxYield: Yield gives up waiting for it.
	if took := <-yielded(); took < maxYield || took > maxYield+time.Second {
		t.Errorf("Yield during a decision that went on took %v, want %v", took, maxYield)
	}
	// A decision that ends: the wait returns then, long before its bound
	// (a longer one than Yield's, so that a slow machine cannot pass it).
	const bound = 30 * time.Second
	waiting := timed(func() { store.decisions.wait(bound) })
	time.Sleep(maxYield / 2)
	select {
	case took := <-waiting:
		t.Fatalf("the wait returned after %v while a decision was in flight", took)
	default:
	}
	close(release)
	if <-answered {
		t.Error("bad-rule admitted")
	}
	if took := <-waiting; took >= bound {
		t.Errorf("the wait took %v, want it to return when the decision ended", took)
	}
	if took := <-yielded(); took > maxYield/2 {
		t.Errorf("Yield after the decision took %v", took)
	}
}
