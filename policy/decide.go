package policy

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Change is one proposed write of a DestinationRule or PeerAuthentication:
// Old is nil for a create, New is nil for a delete. Both are
// *networkingv1.DestinationRule or both *securityv1.PeerAuthentication, with
// the same namespace and name.
type Change struct {
	Old, New runtime.Object
}

// Decision is the effect of a Change on the conflict table.
type Decision struct {
	// New are rows that conflict after the change for clients that could
	// reach every one of the rows' failing endpoints before it.
	New []Group
	// Resolved are rows whose conflicts the change removes.
	Resolved []Group
}

// Decide evaluates a change against the state. The state's own copy of the
// object is ignored: "before" is the state with Old, "after" the state with
// New, so a cache that lags behind the write does not skew the answer. Only
// the services and client namespaces the change can reach are evaluated.
//
// A decision that ctx cancels before it ends returns ctx's error, wrapped.
func (s *State) Decide(ctx context.Context, ch Change) (Decision, error) {
	before, after, scope, err := s.envs(ch)
	if err != nil {
		return Decision{}, err
	}
	eb, ea := newEvaluator(before), newEvaluator(after)
	gNew, gResolved := newViewGrouper(s), newViewGrouper(s)
	for _, svc := range scope.services {
		if err := ctx.Err(); err != nil {
			return Decision{}, fmt.Errorf("policy: decision abandoned: %w", err)
		}
		except := s.specialNamespaces(svc, scope.namespaces)
		for _, p := range append(s.viewPairs(except, before, after), viewPair{genericView, genericView}) {
			generic := p.after.Namespace == ""
			drB, drA := eb.destinationRule(p.before, svc), ea.destinationRule(p.after, svc)
			if drB == drA && scope.kind == kindDestinationRule {
				continue // the same rule, untouched by the write
			}
			for _, sp := range svc.ports {
				for _, subset := range unionTargets(drB, drA) {
					var rb, ra *Row
					if subset == "" || drB.subset(subset) != nil {
						rb = eb.rowFor(svc, sp, subset, drB)
					}
					if subset == "" || drA.subset(subset) != nil {
						ra = ea.rowFor(svc, sp, subset, drA)
					}
					if newlyFailing(rb, ra) {
						gNew.add(ra, p.after, generic, except)
					}
					if newlyFailing(ra, rb) {
						gResolved.add(rb, p.before, generic, except)
					}
				}
			}
		}
	}
	return Decision{New: gNew.sorted(), Resolved: gResolved.sorted()}, nil
}

// viewPair is one set of client pods as the "before" and the "after"
// configuration name it. Both share the labels the rules are matched on.
type viewPair struct{ before, after ClientView }

// viewPairs lists the client views of the special namespaces. Where a write
// of a workloadSelector rule splits a namespace differently before and
// after, the views are the common refinement of both splits: a view is
// evaluated with one pod's labels, which must hold for every pod of it in
// both configurations.
func (s *State) viewPairs(special map[string]bool, before, after *env) []viewPair {
	var out []viewPair
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
	slices.SortFunc(out, func(a, b viewPair) int {
		return cmp.Or(cmp.Compare(a.after.Key(), b.after.Key()), cmp.Compare(a.before.Key(), b.before.Key()))
	})
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

// viewGrouper is a grouper that merges the views of a row that share a
// key: refined pairs can name the same before or after view twice.
type viewGrouper struct {
	*grouper
	at map[rowView]int
}

type rowView struct {
	row *Row
	key string
}

func newViewGrouper(st *State) *viewGrouper {
	return &viewGrouper{grouper: newGrouper(st), at: map[rowView]int{}}
}

func (g *viewGrouper) add(r *Row, v ClientView, generic bool, except map[string]bool) {
	if generic {
		g.grouper.add(r, v, true, except)
		return
	}
	k := rowView{r, v.Key()}
	if i, ok := g.at[k]; ok {
		w := &g.groups[r].Views.explicit[i]
		w.Pods = append(slices.Clone(w.Pods), v.Pods...)
		slices.Sort(w.Pods)
		return
	}
	g.grouper.add(r, v, false, except)
	g.at[k] = len(g.groups[r].Views.explicit) - 1
}

func unionTargets(a, b *mergedRule) []string {
	out := targets(a)
	for _, s := range targets(b)[1:] {
		if a.subset(s) == nil {
			out = append(out, s)
		}
	}
	return out
}

// newlyFailing reports whether after has a failing endpoint that was not
// failing in before.
func newlyFailing(before, after *Row) bool {
	if after == nil || after.Status != Conflict {
		return false
	}
	failed := map[string]bool{}
	if before != nil {
		for _, ep := range before.Endpoints {
			if !ep.OK {
				failed[ep.Pod] = true
			}
		}
	}
	for _, ep := range after.Endpoints {
		if !ep.OK && !failed[ep.Pod] {
			return true
		}
	}
	return false
}

// scope is what a change can reach.
type scope struct {
	kind       kind
	services   []*service
	namespaces []string // client namespaces to evaluate one by one
}

// envs builds the before and after configurations and the scope of a change.
func (s *State) envs(ch Change) (before, after *env, sc scope, err error) {
	switch {
	case isDR(ch.Old) || isDR(ch.New):
		var old, upd *destRule
		if old, err = s.asDestRule(ch.Old); err == nil {
			upd, err = s.asDestRule(ch.New)
		}
		if err != nil {
			return nil, nil, sc, err
		}
		ns, name, err := sameObject(old, upd, func(d *destRule) (string, string) { return d.namespace, d.name })
		if err != nil {
			return nil, nil, sc, err
		}
		var base []*destRule
		if n := s.ns(ns); n != nil {
			base = n.drs
		}
		before = s.withDestRules(ns, appendDR(withoutDestRule(base, name), old))
		after = s.withDestRules(ns, appendDR(withoutDestRule(base, name), upd))
		sc = scope{kind: kindDestinationRule, namespaces: []string{ns}}
		hosts := map[string]bool{}
		for _, d := range []*destRule{old, upd} {
			if d == nil {
				continue
			}
			hosts[d.host] = true
			for _, e := range d.exportTo {
				if e != "." && e != "*" {
					sc.namespaces = append(sc.namespaces, e)
				}
			}
		}
		sc.services = s.servicesMatching(hosts)
		return before, after, sc, nil
	case isPA(ch.Old) || isPA(ch.New):
		var old, upd *peerAuth
		if old, err = asPeerAuth(ch.Old); err == nil {
			upd, err = asPeerAuth(ch.New)
		}
		if err != nil {
			return nil, nil, sc, err
		}
		ns, name, err := sameObject(old, upd, func(p *peerAuth) (string, string) { return p.namespace, p.name })
		if err != nil {
			return nil, nil, sc, err
		}
		var base []*peerAuth
		if n := s.ns(ns); n != nil {
			base = n.pas
		}
		before = s.withPeerAuths(ns, appendPA(withoutPeerAuth(base, name), old))
		after = s.withPeerAuths(ns, appendPA(withoutPeerAuth(base, name), upd))
		sc = scope{kind: kindPeerAuthentication}
		meshWide := false
		for _, p := range []*peerAuth{old, upd} {
			if p != nil && ns == s.mesh.RootNamespace && len(p.selector) == 0 {
				meshWide = true
			}
		}
		switch {
		case meshWide:
			sc.services = s.services()
		case ns == s.mesh.RootNamespace:
			// Selectors in the root namespace are ignored: nothing changes.
		default:
			if n := s.ns(ns); n != nil {
				for _, svc := range n.services {
					sc.services = append(sc.services, svc)
				}
			}
		}
		return before, after, sc, nil
	}
	return nil, nil, sc, fmt.Errorf("policy: a change needs a DestinationRule or PeerAuthentication, got %T and %T", ch.Old, ch.New)
}

func isDR(o runtime.Object) bool { _, ok := o.(*networkingv1.DestinationRule); return ok }
func isPA(o runtime.Object) bool { _, ok := o.(*securityv1.PeerAuthentication); return ok }

func (s *State) asDestRule(o runtime.Object) (*destRule, error) {
	switch d := o.(type) {
	case nil:
		return nil, nil
	case *networkingv1.DestinationRule:
		if d == nil {
			return nil, nil
		}
		return newDestRule(d, s.mesh.ClusterDomain)
	}
	return nil, fmt.Errorf("policy: change mixes a DestinationRule with %T", o)
}

func asPeerAuth(o runtime.Object) (*peerAuth, error) {
	switch p := o.(type) {
	case nil:
		return nil, nil
	case *securityv1.PeerAuthentication:
		if p == nil {
			return nil, nil
		}
		return newPeerAuth(p)
	}
	return nil, fmt.Errorf("policy: change mixes a PeerAuthentication with %T", o)
}

func sameObject[T any](old, upd *T, id func(*T) (string, string)) (ns, name string, err error) {
	switch {
	case old == nil && upd == nil:
		return "", "", fmt.Errorf("policy: a change needs an old or a new object")
	case old == nil:
		ns, name = id(upd)
	case upd == nil:
		ns, name = id(old)
	default:
		ns, name = id(old)
		if n2, m2 := id(upd); n2 != ns || m2 != name {
			return "", "", fmt.Errorf("policy: change renames %s/%s to %s/%s", ns, name, n2, m2)
		}
	}
	return ns, name, nil
}

func appendDR(l []*destRule, d *destRule) []*destRule {
	if d == nil {
		return l
	}
	return append(l, d)
}

func appendPA(l []*peerAuth, p *peerAuth) []*peerAuth {
	if p == nil {
		return l
	}
	return append(l, p)
}

// servicesMatching lists the services a set of rule hosts covers. A
// namespace-wide wildcard reads one namespace; other wildcards scan.
func (s *State) servicesMatching(hosts map[string]bool) []*service {
	seen := map[*service]bool{}
	var out []*service
	add := func(svc *service) {
		if !seen[svc] {
			seen[svc] = true
			out = append(out, svc)
		}
	}
	suffix := ".svc." + s.mesh.ClusterDomain
	for h := range hosts {
		if !isWildcard(h) {
			if svc := s.servicesByHost.get(h); svc != nil {
				add(svc)
			}
			continue
		}
		if ns, ok := namespaceWildcard(h, suffix); ok {
			if n := s.ns(ns); n != nil {
				for _, svc := range n.services {
					add(svc)
				}
			}
			continue
		}
		s.servicesByHost.each(func(_ string, svc *service) bool {
			if hostMatches(h, svc.host) {
				add(svc)
			}
			return true
		})
	}
	return out
}

// namespaceWildcard recognises "*.<ns>.svc.<domain>".
func namespaceWildcard(h, suffix string) (string, bool) {
	if len(h) <= 2+len(suffix) || h[:2] != "*." || h[len(h)-len(suffix):] != suffix {
		return "", false
	}
	ns := h[2 : len(h)-len(suffix)]
	for i := 0; i < len(ns); i++ {
		if ns[i] == '.' {
			return "", false
		}
	}
	return ns, true
}
