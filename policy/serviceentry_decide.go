package policy

import (
	"context"
	"fmt"
	"maps"
	"slices"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Decisions on ServiceEntry, WorkloadEntry and Sidecar writes. "before" and
// "after" are two copies of the state (Clone, then the old or the new
// object).
//
// A ServiceEntry or WorkloadEntry write changes services themselves (their
// endpoints), so rows are compared by endpoint name rather than by
// position: a write is flagged when some (client view, host:port, endpoint)
// fails after it and did not fail before, a new endpoint or a new service
// included. Its scope is the services the entry makes (a WorkloadEntry: the
// ServiceEntry services of its namespace), before and after, and the other
// services of those hosts (a client uses one service per host).
//
// A Sidecar write changes no service, only which clusters clients have: the
// engine's own comparison (decideIn) runs over every service, for the
// clients of the Sidecar's namespace (of every namespace for the root
// namespace's Sidecar without selector).

func isEntryKind(o runtime.Object) bool {
	switch o.(type) {
	case *networkingv1.ServiceEntry, *networkingv1.WorkloadEntry, *networkingv1.Sidecar:
		return true
	}
	return false
}

// entryChange checks that a change names one object of one kind.
func entryChange(ch Change) (ns, name string, err error) {
	var metas []metav1.Object
	var kinds []string
	for _, o := range []runtime.Object{ch.Old, ch.New} {
		if o == nil {
			continue
		}
		m, ok := o.(metav1.Object)
		if !ok || !isEntryKind(o) {
			return "", "", fmt.Errorf("policy: a change needs a ServiceEntry, WorkloadEntry or Sidecar, got %T", o)
		}
		metas = append(metas, m)
		kinds = append(kinds, fmt.Sprintf("%T", o))
	}
	switch {
	case len(metas) == 0:
		return "", "", fmt.Errorf("policy: a change needs an old or a new object")
	case len(metas) == 2 && kinds[0] != kinds[1]:
		return "", "", fmt.Errorf("policy: change mixes %s with %s", kinds[0], kinds[1])
	case len(metas) == 2 && (metas[0].GetNamespace() != metas[1].GetNamespace() || metas[0].GetName() != metas[1].GetName()):
		return "", "", fmt.Errorf("policy: change renames %s/%s to %s/%s", metas[0].GetNamespace(), metas[0].GetName(), metas[1].GetNamespace(), metas[1].GetName())
	}
	return metas[0].GetNamespace(), metas[0].GetName(), nil
}

// decideEntry is DecideFirst for the entry kinds.
func (s *State) decideEntry(ctx context.Context, ch Change, limit int) (Decision, error) {
	ns, name, err := entryChange(ch)
	if err != nil {
		return Decision{}, err
	}
	before, after := s.Clone(), s.Clone()
	if ch.New != nil {
		_ = before.Remove(ch.New) // the state's own copy
	}
	if ch.Old != nil {
		if err := before.Apply(ch.Old); err != nil {
			_ = before.Remove(ch.Old) // as the state left it out
		}
		_ = after.Remove(ch.Old)
	}
	if ch.New != nil {
		if err := after.Apply(ch.New); err != nil {
			return Decision{}, err
		}
	}

	var svcs [2][]*service
	switch firstNonNil(ch.Old, ch.New).(type) {
	case *networkingv1.ServiceEntry, *networkingv1.WorkloadEntry:
		// The entry's services, and every other service of their hosts: a
		// client uses one service per host.
		_, isSE := firstNonNil(ch.Old, ch.New).(*networkingv1.ServiceEntry)
		hosts := map[string]bool{}
		for _, st := range []*State{before, after} {
			for _, svc := range st.entryServicesIn(ns, func(svc *service) bool { return !isSE || svc.name == name }) {
				hosts[svc.host] = true
			}
		}
		for i, st := range []*State{before, after} {
			for _, h := range slices.Sorted(maps.Keys(hosts)) {
				if k := st.servicesByHost.get(h); k != nil {
					svcs[i] = append(svcs[i], k)
				}
				svcs[i] = append(svcs[i], st.entryServicesOf(h)...)
			}
		}
	case *networkingv1.Sidecar:
		// A Sidecar changes no service, only which clients have clusters
		// for them: the engine's positional comparison applies, over every
		// service, for the clients of the namespace (every namespace for
		// the root namespace's default).
		sc := scope{kind: kindSidecar, services: s.services(), namespaces: []string{ns}}
		rootDefault := func(o runtime.Object) bool {
			sc, ok := o.(*networkingv1.Sidecar)
			return ok && sc != nil && sc.Spec.GetWorkloadSelector() == nil
		}
		if ns != s.mesh.RootNamespace || !(rootDefault(ch.Old) || rootDefault(ch.New)) {
			sc.clients = map[string]bool{ns: true}
		}
		return s.decideIn(ctx, &env{st: before}, &env{st: after}, sc, limit)
	}
	d := &entryDiff{
		st: [2]*State{before, after}, ev: [2]*evaluator{newEvaluator(&env{st: before}), newEvaluator(&env{st: after})},
		newG: newGrouper(after), resolvedG: newGrouper(before),
	}
	pairs := pairServices(svcs[0], svcs[1])
	for i, p := range pairs {
		if i%32 == 0 {
			if err := ctx.Err(); err != nil {
				return Decision{}, fmt.Errorf("policy: decision abandoned after %d of %d services: %w", i, len(pairs), err)
			}
		}
		d.compare(p[0], p[1])
	}
	out := Decision{New: d.newG.sorted(), Resolved: d.resolvedG.sorted()}
	out.NewTotal, out.ResolvedTotal = len(out.New), len(out.Resolved)
	if limit >= 0 {
		out.New = out.New[:min(limit, len(out.New))]
		out.Resolved = out.Resolved[:min(limit, len(out.Resolved))]
	}
	return out, nil
}

func firstNonNil(a, b runtime.Object) runtime.Object {
	if a != nil {
		return a
	}
	return b
}

// entryServicesIn lists the ServiceEntry services of namespace ns that keep
// says to.
func (s *State) entryServicesIn(ns string, keep func(*service) bool) []*service {
	n := s.ns(ns)
	if n == nil || n.entries == nil {
		return nil
	}
	var out []*service
	for _, svc := range n.entries.services {
		if keep(svc) {
			out = append(out, svc)
		}
	}
	return out
}

// pairServices matches the services of two states by identity: the host of
// a Kubernetes Service, or the namespace, entry and host of a ServiceEntry
// service. Either side of a pair may be nil.
func pairServices(before, after []*service) [][2]*service {
	id := func(svc *service) string {
		if svc.entry == nil {
			return "svc|" + svc.host
		}
		return "se|" + svc.host + "|" + svc.namespace + "/" + svc.name
	}
	at := map[string]int{}
	var out [][2]*service
	for _, svc := range before {
		at[id(svc)] = len(out)
		out = append(out, [2]*service{svc, nil})
	}
	for _, svc := range after {
		if i, ok := at[id(svc)]; ok {
			out[i][1] = svc
			continue
		}
		out = append(out, [2]*service{nil, svc})
	}
	return out
}

// entryDiff compares the rows of services in two states.
type entryDiff struct {
	st              [2]*State
	ev              [2]*evaluator
	newG, resolvedG *grouper
}

type rowTarget struct {
	port   int32
	subset string
}

// compare adds the rows of one service that newly fail, or stop failing,
// for some client view.
func (d *entryDiff) compare(svcB, svcA *service) {
	special := map[string]bool{}
	for i, svc := range []*service{svcB, svcA} {
		if svc != nil {
			for ns := range d.st[i].specialNamespaces(svc, nil, nil) {
				special[ns] = true
			}
		}
	}
	pairs := append(d.st[1].viewPairs(nil, special, d.ev[0].env, d.ev[1].env), viewPair{genericView, genericView})
	for _, p := range pairs {
		generic := p.after.Namespace == ""
		rb := d.rows(0, p.before, svcB)
		ra := d.rows(1, p.after, svcA)
		for t, r := range ra {
			if newFailures(r, rb[t]) {
				d.newG.add(r, p.after, generic, special)
			}
		}
		for t, r := range rb {
			if newFailures(r, ra[t]) {
				d.resolvedG.add(r, p.before, generic, special)
			}
		}
	}
	d.compareZtunnel(svcB, svcA)
}

// compareZtunnel is compare for ztunnel clients, which no Sidecar scopes:
// one symbolic view of them all.
func (d *entryDiff) compareZtunnel(svcB, svcA *service) {
	rb, ra := d.ztunnelRows(0, svcB), d.ztunnelRows(1, svcA)
	for port, r := range ra {
		if newFailures(r, rb[port]) {
			d.newG.addZtunnel(r)
		}
	}
	for port, r := range rb {
		if newFailures(r, ra[port]) {
			d.resolvedG.addZtunnel(r)
		}
	}
}

// ztunnelRows are the rows ztunnel clients have for svc in state i, by port.
func (d *entryDiff) ztunnelRows(i int, svc *service) map[int32]*Row {
	st := d.st[i]
	if svc == nil || st.totalZtunnelViews == 0 || !st.ztunnelUses(svc) {
		return nil
	}
	out := map[int32]*Row{}
	for _, sp := range svc.ports {
		out[sp.port] = d.ev[i].ztunnelRowFor(svc, sp)
	}
	return out
}

// rows are the rows view v has for svc in state i, by port and subset.
func (d *entryDiff) rows(i int, v ClientView, svc *service) map[rowTarget]*Row {
	if svc == nil {
		return nil
	}
	ev := d.ev[i]
	out := map[rowTarget]*Row{}
	dr := ev.destinationRule(v, svc)
	for _, sp := range svc.ports {
		rule, ok := ev.clientRule(v, svc, sp, dr)
		if !ok {
			continue
		}
		for _, subset := range targets(rule) {
			out[rowTarget{sp.port, subset}] = ev.rowFor(svc, sp, subset, rule)
		}
	}
	return out
}

// newFailures reports whether r has a failing endpoint that other (nil: no
// such row) does not fail.
func newFailures(r, other *Row) bool {
	for _, ep := range r.Endpoints {
		if ep.OK {
			continue
		}
		if other == nil || !slices.ContainsFunc(other.Endpoints, func(o Endpoint) bool { return o.Pod == ep.Pod && !o.OK }) {
			return true
		}
	}
	return false
}
