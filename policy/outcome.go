package policy

import (
	"cmp"
	"maps"
	"slices"
)

// bitset marks the failing endpoints of a row by their index in the
// service's members. A nil bitset is "no such row" (a subset the rule does
// not define); an empty one is a row without failures.
type bitset []uint64

// hasNew reports whether b marks an endpoint that before does not: the
// row fails for somebody it did not fail for.
func (b bitset) hasNew(before bitset) bool {
	for i, w := range b {
		if i < len(before) {
			w &^= before[i]
		}
		if w != 0 {
			return true
		}
	}
	return false
}

// serviceEval evaluates the rows of one service in the envs before (0) and
// after (1) a change. Decisions read the same (port, subset, rule) from many
// client views, so verdicts are memoized per service; the scratch space is
// reused from one service to the next, which keeps a mesh-wide decision
// from allocating per service.
type serviceEval struct {
	st    *State
	scope scope
	envs  [2]*env
	svc   *service
	// memo holds the failing endpoints per (env, port, subset, rule): a
	// map, as a rule with thousands of subsets has thousands of entries.
	memo  map[memoKey]bitset
	words []uint64
	// modes[e][pi] are the server policies of the members on port pi in
	// env e; sameServers when the change leaves PeerAuthentications alone.
	modes       [2][][]serverPolicy
	sameServers bool
	// chains[e] resolves the service namespace's PeerAuthentications in
	// env e; workloads[e] are the members' own policies.
	chains                [2]*paChain
	workloads             [2][]*peerAuth
	subsets               []string
	pendingNew            *pendingGroups
	pendingResolved       *pendingGroups
	newRows, resolvedRows *collector
	// special is the scratch map of the service's special namespaces;
	// exceptCopy the copy of it the service's reported groups keep.
	special, exceptCopy map[string]bool
	pairs               []viewPair
}

// except returns a copy of the special namespaces that outlives the
// service, made once per service and only for services with a report.
func (ev *serviceEval) except(special map[string]bool) map[string]bool {
	if ev.exceptCopy == nil {
		ev.exceptCopy = maps.Clone(special)
	}
	return ev.exceptCopy
}

type memoKey struct {
	env, port int
	subset    string
	dr        *mergedRule
}

func newServiceEval(st *State, before, after *env, sc scope, max int) *serviceEval {
	return &serviceEval{st: st, scope: sc, envs: [2]*env{before, after}, sameServers: sc.kind != kindPeerAuthentication,
		pendingNew: &pendingGroups{}, pendingResolved: &pendingGroups{},
		newRows: &collector{max: max}, resolvedRows: &collector{max: max}, special: map[string]bool{}, memo: map[memoKey]bitset{}}
}

func (ev *serviceEval) reset(svc *service) {
	ev.svc = svc
	ev.exceptCopy = nil
	clear(ev.memo)
	ev.words = ev.words[:0]
	ev.pendingNew.reset()
	ev.pendingResolved.reset()
	for e := range ev.modes {
		ev.modes[e] = ev.modes[e][:0]
		ev.chains[e] = nil
		ev.workloads[e] = ev.workloads[e][:0]
	}
}

// chain returns the PeerAuthentications of the service's namespace in env e.
func (ev *serviceEval) chain(e int) paChain {
	if ev.sameServers {
		e = 0
	}
	if ev.chains[e] == nil {
		c := ev.envs[e].chain(ev.svc.namespace)
		ev.chains[e] = &c
	}
	return *ev.chains[e]
}

// serverModes returns the server policies of the members on port pi in
// env e, computing them on first use.
func (ev *serviceEval) serverModes(e, pi int) []serverPolicy {
	if ev.sameServers {
		e = 0
	}
	for len(ev.modes[e]) <= pi {
		ev.modes[e] = append(ev.modes[e], nil)
	}
	if m := ev.modes[e][pi]; m != nil {
		return m
	}
	sp := ev.svc.ports[pi]
	chain := ev.chain(e)
	if len(ev.workloads[e]) == 0 {
		for _, p := range ev.svc.members {
			ev.workloads[e] = append(ev.workloads[e], chain.workload(p.labels))
		}
	}
	m := make([]serverPolicy, len(ev.svc.members))
	for i, p := range ev.svc.members {
		m[i] = serverPolicy{mode: NoSidecar}
		if target, ok := sp.targetPort(p); ok && p.sidecar {
			m[i] = chain.serverModeOf(ev.workloads[e][i], target)
		}
	}
	ev.modes[e][pi] = m
	return m
}

// failing returns the failing endpoints of svc's port pi (or its subset)
// under rule dr in env e.
func (ev *serviceEval) failing(e, pi int, subset string, dr *mergedRule) bitset {
	key := memoKey{e, pi, subset, dr}
	if f, ok := ev.memo[key]; ok {
		return f
	}
	n := (len(ev.svc.members) + 63) / 64
	if cap(ev.words)-len(ev.words) < n {
		// A new array: earlier bitsets keep pointing into the old one.
		ev.words = make([]uint64, 0, max(2*cap(ev.words), n, 64))
	}
	out := bitset(ev.words[len(ev.words) : len(ev.words)+n])
	ev.words = ev.words[:len(ev.words)+n]
	clear(out)
	c := ev.envs[e].clusterWith(ev.chain(e), ev.svc, ev.svc.ports[pi], subset, dr)
	c.modes = ev.serverModes(e, pi)
	c.each(func(i int, _ endpoint, sm serverPolicy, w Wire) {
		if !Compatible(sm.mode, w) {
			out[i/64] |= 1 << (i % 64)
		}
	})
	ev.memo[key] = out
	return out
}

// targets lists the subsets to compare: "" (the service), the subsets of
// a, then those of b that a lacks. The slice is reused by the next call.
func (ev *serviceEval) targets(a, b *mergedRule) []string {
	out := append(ev.subsets[:0], "")
	if a != nil {
		for _, s := range a.subsets {
			out = append(out, s.GetName())
		}
	}
	if b != nil {
		for _, s := range b.subsets {
			if a.subset(s.GetName()) == nil {
				out = append(out, s.GetName())
			}
		}
	}
	ev.subsets = out
	return out
}

// pendingGroups are the rows of one service that a decision reports, each
// with the client views that share it; rows are built only for those kept.
type pendingGroups struct {
	list []*pendingGroup
	// at finds a group of list by (port, subset, rule).
	at map[groupKey]*pendingGroup
}

type groupKey struct {
	port   int32
	subset string
	dr     *mergedRule
}

type pendingGroup struct {
	env    *env
	svc    *service
	port   servicePort
	subset string
	dr     *mergedRule
	views  ViewSet
	// at finds a view in views.explicit by key: refined view pairs can name
	// the same view twice, with different pods.
	at  map[string]int
	row *Row
}

func (g *pendingGroups) reset() {
	g.list = g.list[:0]
	clear(g.at)
}

func (g *pendingGroups) add(e *env, svc *service, sp servicePort, subset string, dr *mergedRule, v ClientView, generic bool, except map[string]bool) {
	key := groupKey{sp.port, subset, dr}
	grp := g.at[key]
	if grp == nil {
		grp = &pendingGroup{env: e, svc: svc, port: sp, subset: subset, dr: dr, views: ViewSet{st: e.st}}
		g.list = append(g.list, grp)
		if g.at == nil {
			g.at = map[groupKey]*pendingGroup{}
		}
		g.at[key] = grp
	}
	if generic {
		grp.views.others, grp.views.except = true, except
		return
	}
	k := v.Key()
	if i, ok := grp.at[k]; ok {
		w := &grp.views.explicit[i]
		w.Pods = append(slices.Clone(w.Pods), v.Pods...)
		slices.Sort(w.Pods)
		return
	}
	if grp.at == nil {
		grp.at = map[string]int{}
	}
	grp.at[k] = len(grp.views.explicit)
	grp.views.explicit = append(grp.views.explicit, v)
}

func (p *pendingGroup) materialize() *Row {
	if p.row == nil {
		p.row = p.env.row(p.svc, p.port, p.subset, p.dr)
	}
	return p.row
}

// collector keeps the first max groups of a decision in report order, and
// counts them all.
type collector struct {
	max   int
	total int
	kept  []keptGroup
}

type keptGroup struct {
	*pendingGroup
	first, rule string
}

// merge adds the groups another collector kept.
func (c *collector) merge(o *collector) {
	c.total += o.total
	c.kept = append(c.kept, o.kept...)
	c.trim()
}

// take adds one service's groups. Groups of the same port and subset that
// read the same are merged: the same rule can reach a client through more
// than one index entry (its own namespace's and the exported one), which
// yields equal rows from different entries.
func (c *collector) take(g *pendingGroups) {
	type target struct {
		port   int32
		subset string
	}
	var merged []*pendingGroup
	var byTarget map[target][]*pendingGroup // made for the first group only
next:
	for _, grp := range g.list {
		if grp.views.Len() == 0 {
			continue
		}
		t := target{grp.port.port, grp.subset}
		for _, prev := range byTarget[t] {
			if prev.materialize().sameContent(grp.materialize()) {
				prev.views.explicit = append(prev.views.explicit, grp.views.explicit...)
				if grp.views.others {
					prev.views.others, prev.views.except = true, grp.views.except
				}
				continue next
			}
		}
		merged = append(merged, grp)
		if byTarget == nil {
			byTarget = map[target][]*pendingGroup{}
		}
		byTarget[t] = append(byTarget[t], grp)
	}
	for _, grp := range merged {
		c.total++
		c.kept = append(c.kept, keptGroup{pendingGroup: grp, first: firstKey(grp.views), rule: grp.dr.ref()})
		if c.max >= 0 && len(c.kept) > 2*c.max+16 {
			c.trim()
		}
	}
	if len(g.list) > 0 {
		g.list = nil // kept groups are owned by the collector now
		g.at = nil
	}
}

func (c *collector) trim() {
	slices.SortStableFunc(c.kept, compareKept)
	if c.max >= 0 && len(c.kept) > c.max {
		clear(c.kept[c.max:])
		c.kept = c.kept[:c.max]
	}
}

func compareKept(a, b keptGroup) int {
	return cmp.Or(
		cmp.Compare(a.svc.host, b.svc.host),
		cmp.Compare(a.port.port, b.port.port),
		cmp.Compare(a.subset, b.subset),
		cmp.Compare(a.first, b.first),
		cmp.Compare(a.rule, b.rule),
	)
}

// groups returns the kept groups in report order, with their rows.
func (c *collector) groups() []Group {
	c.trim()
	out := make([]Group, len(c.kept))
	for i, k := range c.kept {
		out[i] = Group{Row: k.materialize(), Views: k.views}
	}
	return out
}
