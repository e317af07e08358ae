package policy

import (
	"context"
	"fmt"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
)

// Change is one proposed write of a DestinationRule, PeerAuthentication,
// ServiceEntry, WorkloadEntry or Sidecar: Old is nil for a create, New is
// nil for a delete. Both are of the same (networking v1 or security v1)
// type, with the same namespace and name.
type Change struct {
	Old, New runtime.Object
}

// Decision is the effect of a Change on the conflict table.
type Decision struct {
	// New are rows that conflict after the change for clients that could
	// reach every one of the rows' failing endpoints before it, sorted by
	// host, port, subset and first client view.
	New []Group
	// Resolved are rows whose conflicts the change removes, in the same
	// order.
	Resolved []Group
	// NewTotal and ResolvedTotal count the rows; they exceed len(New) and
	// len(Resolved) when DecideFirst kept only the first ones.
	NewTotal, ResolvedTotal int
}

// Decide evaluates a change against the state. The state's own copy of the
// object is ignored: "before" is the state with Old, "after" the state with
// New, so a cache that lags behind the write does not skew the answer. Only
// the services and client namespaces the change can reach are evaluated.
//
// A decision that ctx cancels before it ends returns ctx's error, wrapped.
func (s *State) Decide(ctx context.Context, ch Change) (Decision, error) {
	return s.DecideFirst(ctx, ch, -1)
}

// DecideFirst is Decide keeping only the first limit rows of New and of
// Resolved (all of them when limit < 0); NewTotal and ResolvedTotal still
// count every row. A mesh-wide write can break every service port of the
// cluster: an admission answer needs the count and a few rows, and building
// the others would cost as much as the rest of the decision.
func (s *State) DecideFirst(ctx context.Context, ch Change, limit int) (Decision, error) {
	if isEntryKind(ch.Old) || isEntryKind(ch.New) {
		return s.decideEntry(ctx, ch, limit) // serviceentry_decide.go
	}
	before, after, sc, err := s.envs(ch)
	if err != nil {
		return Decision{}, err
	}
	return s.decideIn(ctx, before, after, sc, limit)
}

// decideIn compares the services of sc in two envs.
func (s *State) decideIn(ctx context.Context, before, after *env, sc scope, limit int) (Decision, error) {
	// Services are independent: a wide write is split among the CPUs the
	// process may use, each worker with its own scratch space. Workers
	// yield every few services, so that the admissions and cache events that
	// arrive meanwhile run within microseconds instead of waiting for the
	// scheduler to preempt a worker.
	workers := 1
	if len(sc.services) >= parallelAbove {
		workers = max(1, min(goruntime.GOMAXPROCS(0), len(sc.services)/(parallelAbove/2)))
	}
	evs := make([]*serviceEval, workers)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range evs {
		ev := newServiceEval(s, before.forWorker(), after.forWorker(), sc, limit)
		evs[w] = ev
		wg.Go(func() {
			// Blocks of neighbours (services of one namespace, mostly) in
			// turn: a worker reads their namespace once.
			n := 0
			for start := w * serviceBlock; start < len(sc.services); start += workers * serviceBlock {
				for i := start; i < min(start+serviceBlock, len(sc.services)); i++ {
					if n++; n%8 == 0 {
						goruntime.Gosched()
					}
					if n%32 == 1 {
						if err := ctx.Err(); err != nil {
							failed.CompareAndSwap(nil, fmt.Errorf("policy: decision abandoned after %d of %d services: %w", i, len(sc.services), err))
							return
						}
					}
					ev.evaluate(sc.services[i])
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return Decision{}, err
	}
	newRows, resolvedRows := evs[0].newRows, evs[0].resolvedRows
	for _, ev := range evs[1:] {
		newRows.merge(ev.newRows)
		resolvedRows.merge(ev.resolvedRows)
	}
	return Decision{
		New: newRows.groups(), NewTotal: newRows.total,
		Resolved: resolvedRows.groups(), ResolvedTotal: resolvedRows.total,
	}, nil
}

// parallelAbove is the number of services from which a decision is worth
// splitting among CPUs; serviceBlock how many neighbouring services a
// worker takes at a time.
const (
	parallelAbove = 512
	serviceBlock  = 16
)

// evaluate compares svc's rows before and after the change, for every
// client view that may resolve its rule differently from the others and
// for the others as one, and collects the rows that newly fail or stop
// failing.
func (ev *serviceEval) evaluate(svc *service) {
	ev.reset(svc)
	before, after := ev.envs[0], ev.envs[1]
	var plan *clientPlan // nil when "before" is not the State's rules
	if before.st == ev.st {
		plan = before.clientPlan(svc)
	}
	var except map[string]bool
	if plan != nil && plan.covers(ev.scope.namespaces) {
		except = plan.special
	} else {
		except = ev.st.specialNamespaces(svc, ev.scope.namespaces, ev.special)
	}
	if ev.scope.clients != nil {
		ev.pairs = ev.st.viewPairs(ev.pairs[:0], ev.scope.clients, before, after) // these clients only
	} else {
		ev.pairs = append(ev.st.viewPairs(ev.pairs[:0], except, before, after), viewPair{genericView, genericView})
	}
	exceptCopy := func() map[string]bool { return ev.except(except) }
	ev.pendingNew.countOnly = !ev.newRows.mayKeep(svc.host)
	ev.pendingResolved.countOnly = !ev.resolvedRows.mayKeep(svc.host)
	if ev.pendingNew.countOnly || ev.pendingResolved.countOnly {
		reach := ev.othersReach(except)
		ev.pendingNew.othersReach, ev.pendingResolved.othersReach = reach, reach
	}
	for _, p := range ev.pairs {
		generic := p.after.Namespace == ""
		planned, fromPlan := before.viewRule(plan, p.before, svc)
		drB := planned.dr
		var drA *mergedRule
		switch ev.scope.kind {
		case kindPeerAuthentication:
			drA = drB // the write leaves rules and views alone
		case kindDestinationRule:
			// "After" replaces the rules of one namespace: a plain
			// client's lookup that did not read them finds what it did.
			if fromPlan && plain(p.after) && !planned.end.reads(after.ovNS, p.after.Namespace, svc, ev.st.mesh.RootNamespace) {
				continue
			}
			if drA = after.destinationRule(p.after, svc); drA == drB {
				continue // the same rule, untouched by the write
			}
		default: // a Sidecar: the same rule may reach the client differently
			drA = after.destinationRule(p.after, svc)
		}
		for pi, sp := range svc.ports {
			// A Sidecar that gives the client no cluster replaces the rule.
			rb, okB := before.clientRule(p.before, svc, sp, drB)
			ra, okA := after.clientRule(p.after, svc, sp, drA)
			for _, subset := range ev.targets(rb, ra) {
				var fb, fa bitset
				if okB && (subset == "" || rb.subset(subset) != nil) {
					fb = ev.failing(0, pi, subset, rb)
				}
				if okA && (subset == "" || ra.subset(subset) != nil) {
					fa = ev.failing(1, pi, subset, ra)
				}
				if fa.hasNew(fb) {
					ev.pendingNew.add(after, svc, sp, subset, ra, p.after, generic, exceptCopy)
				}
				if fb.hasNew(fa) {
					ev.pendingResolved.add(before, svc, sp, subset, rb, p.before, generic, exceptCopy)
				}
			}
		}
	}
	ev.evaluateZtunnel()
	ev.newRows.take(ev.pendingNew)
	ev.resolvedRows.take(ev.pendingResolved)
}

// othersReach reports whether the generic view stands for any client view:
// ViewSet.Len of the views outside except, through the worker's lookups.
func (ev *serviceEval) othersReach(except map[string]bool) bool {
	n := ev.st.totalViews
	for name := range except {
		if ns := ev.envs[0].ns(name); ns != nil {
			n -= len(ns.views)
		}
	}
	return n > 0
}

// viewPair is one set of client pods as the "before" and the "after"
// configuration name it. Both share the labels the rules are matched on.
type viewPair struct{ before, after ClientView }

// viewPairs appends to out the client views of the special namespaces, in
// no particular order (the views of a Group are sorted when listed). Where
// a write of a workloadSelector rule splits a namespace differently before
// and after, the views are the common refinement of both splits: a view is
// evaluated with one pod's labels, which must hold for every pod of it in
// both configurations.
func (s *State) viewPairs(out []viewPair, special map[string]bool, before, after *env) []viewPair {
	for ns := range special {
		vb, va := before.views(ns), after.views(ns)
		if sameSplit(vb, va) {
			for _, v := range vb {
				out = append(out, viewPair{v, v})
			}
			continue
		}
		out = append(out, s.refine(vb, va)...)
	}
	return out
}

func sameSplit(a, b []ClientView) bool {
	if len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) {
		return true // the namespace's own views, untouched by the write
	}
	return slices.EqualFunc(a, b, func(x, y ClientView) bool {
		return x.Key() == y.Key() && slices.Equal(x.Pods, y.Pods)
	})
}

// refine intersects two splits of the same sidecar pods.
func (s *State) refine(vb, va []ClientView) []viewPair {
	at := map[string]int{}
	for i, v := range va {
		for _, p := range v.Pods {
			at[p] = i
		}
	}
	type cell struct{ b, a int }
	cells := map[cell]*viewPair{}
	var order []cell
	for bi, v := range vb {
		for _, p := range v.Pods {
			ai, ok := at[p]
			if !ok {
				continue // both splits hold the same pods
			}
			c := cell{bi, ai}
			vp := cells[c]
			if vp == nil {
				var lbls map[string]string
				if pod := s.pod(p); pod != nil {
					lbls = pod.labels
				}
				vp = &viewPair{
					before: ClientView{Namespace: v.Namespace, Selectors: v.Selectors, labels: lbls},
					after:  ClientView{Namespace: va[ai].Namespace, Selectors: va[ai].Selectors, labels: lbls},
				}
				cells[c] = vp
				order = append(order, c)
			}
			vp.before.Pods = append(vp.before.Pods, p)
			vp.after.Pods = append(vp.after.Pods, p)
		}
	}
	out := make([]viewPair, 0, len(order))
	for _, c := range order {
		out = append(out, *cells[c])
	}
	return out
}
