package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	securityapi "istio.io/api/security/v1beta1"
	"k8s.io/client-go/tools/events"
)

// newAuditor builds an Auditor without reports that observes src, as
// webhook.Store is observed from before its informers start.
func newAuditor(t *testing.T, src *source, rec events.EventRecorder) *Auditor {
	t.Helper()
	a, err := New(src, Config{Options: Options{ReportAPI: NoReports}, ModeLabel: "mtlsguard.io/mode", Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	a.interval = 200 * time.Millisecond
	src.observe = a.Observe
	return a
}

// start runs a until the test ends.
func start(t *testing.T, a *Auditor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func nextEvent(t *testing.T, rec *events.FakeRecorder) string {
	t.Helper()
	select {
	case e := <-rec.Events:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return ""
	}
}

// TestPodEventsAnnounceConflicts proves the loop end to end: a pod without
// a sidecar joining httpbin is a new conflict, announced on the mesh rule
// that sends it ISTIO_MUTUAL; its deletion resolves it.
func TestPodEventsAnnounceConflicts(t *testing.T) {
	src := newSource(t)
	rec := events.NewFakeRecorder(10)
	a := newAuditor(t, src, rec)
	src.apply(t, deepDive()...)
	start(t, a)
	plain := pod("default", "httpbin-plain", "httpbin", false)
	src.apply(t, plain)
	if e := nextEvent(t, rec); !strings.HasPrefix(e, "Warning MTLSConflict httpbin.default.svc.cluster.local:8000: server has no sidecar") {
		t.Errorf("event %q", e)
	}
	src.remove(t, plain)
	if e := nextEvent(t, rec); e != "Normal MTLSConflictResolved httpbin.default.svc.cluster.local:8000: the mTLS conflict is resolved" {
		t.Errorf("event %q", e)
	}
}

// TestWholeTableRecomputationsArePacedByTheirCost proves that mesh-wide
// writes in a row do not keep a CPU busy recomputing the whole table: the
// next recomputation starts fullPace times the last one's duration after
// it, and still covers every write made meanwhile.
func TestWholeTableRecomputationsArePacedByTheirCost(t *testing.T) {
	src := newSource(t)
	src.slow = 100 * time.Millisecond
	a := newAuditor(t, src, nil)
	a.interval = 10 * time.Millisecond
	src.apply(t, deepDive()...)
	start(t, a)
	time.Sleep(300 * time.Millisecond) // the first, full recomputation
	modes := []securityapi.PeerAuthentication_MutualTLS_Mode{securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, securityapi.PeerAuthentication_MutualTLS_STRICT}
	for i := range 6 {
		src.apply(t, peerAuth("istio-system", "default", modes[i%2]))
		time.Sleep(50 * time.Millisecond)
	}
	const pace = 4 // New's
	time.Sleep((pace + 1) * src.slow)
	src.mu.Lock()
	viewed := slices.Clone(src.viewed)
	src.mu.Unlock()
	if len(viewed) < 2 {
		t.Fatalf("%d recomputations, want the first and at least one for the writes", len(viewed))
	}
	for i := 1; i < len(viewed); i++ {
		if gap := viewed[i].Sub(viewed[i-1]); gap < pace*src.slow {
			t.Errorf("recomputation %d started %v after the one before, which took %v: want at least %d times that", i, gap, src.slow, pace)
		}
	}
}

// TestRecomputationsAreDebounced proves a burst of events costs at most
// one recomputation per interval, not one per event.
func TestRecomputationsAreDebounced(t *testing.T) {
	src := newSource(t)
	a := newAuditor(t, src, nil)
	src.apply(t, deepDive()...)
	start(t, a)
	time.Sleep(3 * a.interval) // the first, full recomputation
	src.mu.Lock()
	before := src.views
	src.mu.Unlock()
	start := time.Now()
	for i := 0; i < 50; i++ {
		src.apply(t, pod("default", "httpbin-1", "httpbin", i%2 == 0))
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * a.interval)
	src.mu.Lock()
	n := src.views - before
	src.mu.Unlock()
	if limit := int(time.Since(start)/a.interval) + 1; n < 1 || n > limit {
		t.Errorf("%d recomputations for 50 events in %v, want 1 to %d", n, time.Since(start), limit)
	}
}

// TestWholeTableRecomputationsGiveWayToAdmissions proves a whole-table
// recomputation asks its Source for leave between services, every eight:
// webhook.Store waits there while admissions are decided.
func TestWholeTableRecomputationsGiveWayToAdmissions(t *testing.T) {
	src := newSource(t)
	a := newAuditor(t, src, nil)
	objs := deepDive()
	for i := range 30 {
		name := fmt.Sprintf("app%d", i)
		objs = append(objs, service("default", name, 80, 8080), pod("default", name+"-1", name, i%2 == 0))
	}
	src.apply(t, objs...)
	if err := a.recompute(dirtySet{full: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := src.yields.Load(), int64(32/8); got != want {
		t.Errorf("a whole table of 32 services yielded %d times, want %d", got, want)
	}
	if len(a.table["default"]) == 0 {
		t.Error("no conflicts found: pods without a sidecar behind STRICT")
	}
}
