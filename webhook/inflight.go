package webhook

import (
	"sync"
	"time"
)

// maxYield bounds one wait of the audit for admissions (Store.Yield): under
// a stream of decisions that never leaves the store idle, the audit still
// moves on, a few services per maxYield.
const maxYield = 100 * time.Millisecond

// inflight counts the decisions being made, so that background work can
// give way to them. Its lock is held for a counter's update, never while
// anyone decides or waits.
type inflight struct {
	mu sync.Mutex
	n  int
	// idle is closed when n drops to zero; nil while n is zero.
	idle chan struct{}
}

func (f *inflight) begin() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
}

func (f *inflight) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 {
		close(f.idle)
		f.idle = nil
	}
}

// wait returns once no decision is in flight, or after limit.
func (f *inflight) wait(limit time.Duration) {
	f.mu.Lock()
	idle := f.idle
	f.mu.Unlock()
	if idle == nil {
		return
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// Yield returns when no admission is being decided, or after a short
// bound: the audit calls it between services of a whole-table
// recomputation (policy.Query.Yield). A mesh-wide decision uses every CPU
// the process has for tens of milliseconds; a recomputation beside it took
// one of them, and made the decision, and the API server request waiting
// for it, slower.
func (s *Store) Yield() { s.decisions.wait(maxYield) }
