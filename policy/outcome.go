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

// any reports whether b marks an endpoint.
func (b bitset) any() bool { return b.hasNew(nil) }

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
	memo  []memoEntry
	// memoAt indexes memo once it is long (manyEntries, memoIndexed); the
	// map is kept for the next service unless it grew large.
	memoAt      map[memoKey]int
	memoIndexed bool
	words       []uint64
	// modes[e][pi] are the server policies of the members on port pi in
	// env e; sameServers when the change leaves PeerAuthentications alone.
	modes       [2][][]serverPolicy
	sameServers bool
	// summaries[e] are the servers of env e from the service's cache, once
	// summaryTried[e]; nil when env e's servers are not the State's.
	summaries    [2]*serverSummary
	summaryTried [2]bool
	// portTargets[pi] are the members' target ports on port pi (noTarget for
	// none): every verdict of the port reads them.
	portTargets [][]int32
	targetBuf   []int32
	modeBuf     []serverPolicy
	// chains[e] resolves the service namespace's PeerAuthentications in
	// env e; workloads[e] are the members' own policies.
	chains                [2]paChain
	chainSet              [2]bool
	workloads             [2][]*peerAuth
	subsets               []string
	nsAmbient             bool // the service's namespace is labelled ambient
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

type memoEntry struct {
	memoKey
	failing bitset
}

// manyEntries is the size from which the memo and the pending groups of a
// service are indexed by a map: a short list is searched faster than a map
// is hashed, but a rule of 10,000 subsets made the search quadratic.
const manyEntries = 64

func (ev *serviceEval) memoized(k memoKey) (bitset, bool) {
	if ev.memoIndexed {
		i, ok := ev.memoAt[k]
		if ok {
			return ev.memo[i].failing, true
		}
		return nil, false
	}
	for _, m := range ev.memo {
		if m.memoKey == k {
			return m.failing, true
		}
	}
	return nil, false
}

func (ev *serviceEval) memoize(k memoKey, f bitset) {
	ev.memo = append(ev.memo, memoEntry{k, f})
	switch {
	case ev.memoIndexed:
		ev.memoAt[k] = len(ev.memo) - 1
	case len(ev.memo) >= manyEntries:
		if ev.memoAt == nil {
			ev.memoAt = make(map[memoKey]int, 2*len(ev.memo))
		}
		ev.memoIndexed = true
		for i, m := range ev.memo {
			ev.memoAt[m.memoKey] = i
		}
	}
}

func newServiceEval(st *State, before, after *env, sc scope, max int) *serviceEval {
	return &serviceEval{st: st, scope: sc, envs: [2]*env{before, after}, sameServers: sc.kind != kindPeerAuthentication,
		pendingNew: &pendingGroups{}, pendingResolved: &pendingGroups{},
		newRows: &collector{max: max}, resolvedRows: &collector{max: max}, special: map[string]bool{}}
}

func (ev *serviceEval) reset(svc *service) {
	ev.svc = svc
	ev.nsAmbient = ev.envs[0].namespaceAmbient(svc.namespace)
	ev.summaries, ev.summaryTried = [2]*serverSummary{}, [2]bool{}
	ev.exceptCopy = nil
	ev.memo = ev.memo[:0]
	if ev.memoIndexed {
		ev.memoIndexed = false
		if len(ev.memoAt) > 4*manyEntries {
			ev.memoAt = nil // clearing a large map costs its size
		} else {
			clear(ev.memoAt)
		}
	}
	ev.words = ev.words[:0]
	ev.portTargets = ev.portTargets[:0]
	ev.targetBuf = ev.targetBuf[:0]
	clear(ev.modeBuf) // drop the policies' pointers
	ev.modeBuf = ev.modeBuf[:0]
	ev.pendingNew.reset()
	ev.pendingResolved.reset()
	for e := range ev.modes {
		ev.modes[e] = ev.modes[e][:0]
		ev.chainSet[e] = false
		ev.workloads[e] = ev.workloads[e][:0]
	}
}

// chain returns the PeerAuthentications of the service's namespace in env e.
func (ev *serviceEval) chain(e int) paChain {
	if ev.sameServers {
		e = 0
	}
	if !ev.chainSet[e] {
		ev.chains[e], ev.chainSet[e] = ev.envs[e].chain(ev.svc.namespace), true
	}
	return ev.chains[e]
}

// serverModes returns the server policies of the members on port pi in
// env e.
func (ev *serviceEval) serverModes(e, pi int) []serverPolicy {
	if s := ev.summary(e); s != nil {
		return s.modes[pi]
	}
	return ev.computeServerModes(e, pi)
}

// computeServerModes is serverModes without the service's cache, computed
// on first use in the decision's scratch space.
func (ev *serviceEval) computeServerModes(e, pi int) []serverPolicy {
	if ev.sameServers {
		e = 0
	}
	for len(ev.modes[e]) <= pi {
		ev.modes[e] = append(ev.modes[e], nil)
	}
	if m := ev.modes[e][pi]; m != nil {
		return m
	}
	chain := ev.chain(e)
	if len(ev.workloads[e]) == 0 {
		other := ev.workloads[1-e]
		if s := ev.summaries[1-e]; len(other) == 0 && s != nil {
			other = s.workloads
		}
		if len(other) > 0 && samePeerAuths(chain.pas, ev.chain(1-e).pas) {
			// A write elsewhere (the mesh policy) leaves the workloads'
			// own policies as they were.
			ev.workloads[e] = append(ev.workloads[e], other...)
		} else {
			for _, p := range ev.svc.members {
				ev.workloads[e] = append(ev.workloads[e], chain.workload(p.labels))
			}
		}
	}
	targets := ev.targetPorts(pi)
	n := len(ev.svc.members)
	if cap(ev.modeBuf)-len(ev.modeBuf) < n {
		ev.modeBuf = make([]serverPolicy, 0, max(2*cap(ev.modeBuf), n, 64))
	}
	m := ev.modeBuf[len(ev.modeBuf) : len(ev.modeBuf)+n]
	ev.modeBuf = ev.modeBuf[:len(ev.modeBuf)+n]
	for i, p := range ev.svc.members {
		m[i] = serverPolicy{mode: NoSidecar}
		if targets[i] != noTarget {
			m[i] = ev.envs[e].endpointServer(chain, p, ev.workloads[e][i], targets[i], ev.nsAmbient)
		}
	}
	ev.modes[e][pi] = m
	return m
}

// targetPorts returns the members' target ports on port pi.
func (ev *serviceEval) targetPorts(pi int) []int32 {
	for _, s := range ev.summaries {
		if s != nil {
			return s.targets[pi]
		}
	}
	return ev.computeTargetPorts(pi)
}

// computeTargetPorts is targetPorts computed in the decision's scratch
// space.
func (ev *serviceEval) computeTargetPorts(pi int) []int32 {
	for len(ev.portTargets) <= pi {
		ev.portTargets = append(ev.portTargets, nil)
	}
	if t := ev.portTargets[pi]; t != nil {
		return t
	}
	sp := ev.svc.ports[pi]
	n := len(ev.svc.members)
	if cap(ev.targetBuf)-len(ev.targetBuf) < n {
		// A new array: earlier slices keep pointing into the old one.
		ev.targetBuf = make([]int32, 0, max(2*cap(ev.targetBuf), n, 64))
	}
	t := ev.targetBuf[len(ev.targetBuf) : len(ev.targetBuf)+n]
	ev.targetBuf = ev.targetBuf[:len(ev.targetBuf)+n]
	for i, p := range ev.svc.members {
		t[i] = noTarget
		if target, ok := sp.targetPort(p); ok {
			t[i] = target
		}
	}
	ev.portTargets[pi] = t
	return t
}

// samePeerAuths reports whether two lists are one: the namespace's own,
// read by both envs.
func samePeerAuths(a, b []*peerAuth) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// failing returns the failing endpoints of svc's port pi (or its subset)
// under rule dr in env e.
func (ev *serviceEval) failing(e, pi int, subset string, dr *mergedRule) bitset {
	if f, ok := ev.memoized(memoKey{e, pi, subset, dr}); ok {
		return f
	}
	s := ev.summary(e)
	if s != nil && ev.envs[e].lasting(dr) {
		if f, ok := s.verdict(pi, subset, dr); ok {
			ev.memoize(memoKey{e, pi, subset, dr}, f)
			return f
		}
	} else {
		s = nil
	}
	out := ev.newBitset()
	c := ev.envs[e].clusterWith(ev.chain(e), ev.svc, ev.svc.ports[pi], subset, dr)
	c.modes, c.targets = ev.serverModes(e, pi), ev.targetPorts(pi)
	mesh := ev.envs[e].st.mesh
	c.each(func(i int, ep endpoint, sm serverPolicy, w Wire) {
		if !accepts(sm, w) || (c.id.sans != nil && !c.id.accepts(mesh, ep.pod, w)) {
			out[i/64] |= 1 << (i % 64)
		}
	})
	ev.memoize(memoKey{e, pi, subset, dr}, out)
	if s != nil {
		s.remember(pi, subset, dr, out)
	}
	return out
}

// newBitset returns a cleared bitset for the service's members, from
// scratch space reused by the next service.
func (ev *serviceEval) newBitset() bitset {
	n := (len(ev.svc.members) + 63) / 64
	if cap(ev.words)-len(ev.words) < n {
		// A new array: earlier bitsets keep pointing into the old one.
		ev.words = make([]uint64, 0, max(2*cap(ev.words), n, 64))
	}
	out := bitset(ev.words[len(ev.words) : len(ev.words)+n])
	ev.words = ev.words[:len(ev.words)+n]
	clear(out)
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
//
// When the collector cannot keep any row of the service (countOnly), the
// groups only count: they record whether any client reaches them and not
// which, and their structs are reused by the next service. That is the
// fate of nearly every row of a mesh-wide decision, which keeps ten.
type pendingGroups struct {
	list      []*pendingGroup
	countOnly bool
	// othersReach: the generic view stands for at least one client view
	// (some namespace is not special). Set per service with countOnly.
	othersReach bool
	free        []*pendingGroup
	// at indexes list once it is long (manyEntries).
	at map[groupKey]*pendingGroup
}

type pendingGroup struct {
	env    *env
	svc    *service
	port   servicePort
	subset string
	dr     *mergedRule
	views  ViewSet
	// reached: some client view shares the row (countOnly groups only).
	reached bool
	// at finds a view in views.explicit by key: refined view pairs can name
	// the same view twice, with different pods.
	at  map[string]int
	row *Row
	// ztunnel, when set, makes this the row of ztunnel clients.
	ztunnel *ztunnelPath
}

func (g *pendingGroups) reset() {
	g.list = g.list[:0]
	g.at = nil
}

type groupKey struct {
	port   int32
	subset string
	dr     *mergedRule
}

func (g *pendingGroups) find(k groupKey) *pendingGroup {
	if g.at != nil {
		return g.at[k]
	}
	for _, p := range g.list {
		if p.port.port == k.port && p.subset == k.subset && p.dr == k.dr {
			return p
		}
	}
	return nil
}

// index records the group just added to list, indexing the list once it
// is long.
func (g *pendingGroups) index(k groupKey, grp *pendingGroup) {
	switch {
	case g.at != nil:
		g.at[k] = grp
	case len(g.list) >= manyEntries:
		g.at = make(map[groupKey]*pendingGroup, 2*len(g.list))
		for _, p := range g.list {
			g.at[groupKey{p.port.port, p.subset, p.dr}] = p
		}
	}
}

func (g *pendingGroups) add(e *env, svc *service, sp servicePort, subset string, dr *mergedRule, v ClientView, generic bool, except func() map[string]bool) {
	key := groupKey{sp.port, subset, dr}
	grp := g.find(key)
	if grp == nil {
		if g.countOnly && len(g.free) > 0 {
			grp = g.free[len(g.free)-1]
			g.free = g.free[:len(g.free)-1]
			*grp = pendingGroup{env: e, svc: svc, port: sp, subset: subset, dr: dr}
		} else {
			grp = &pendingGroup{env: e, svc: svc, port: sp, subset: subset, dr: dr, views: ViewSet{st: e.st}}
		}
		g.list = append(g.list, grp)
		g.index(key, grp)
	}
	if g.countOnly {
		grp.reached = grp.reached || !generic || g.othersReach
		return
	}
	if generic {
		grp.views.others, grp.views.except = true, except()
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

// release hands the groups of a countOnly service back for reuse.
func (g *pendingGroups) release() {
	g.free = append(g.free, g.list...)
	clear(g.list)
	g.list = g.list[:0]
	g.at = nil
}

func (p *pendingGroup) materialize() *Row {
	if p.row == nil && p.ztunnel != nil {
		p.row = p.env.ztunnelRow(p.svc, p.port, *p.ztunnel)
	}
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
	// full: a trim left max groups, the last of them for host bound.
	// Hosts after bound cannot be kept any more.
	full  bool
	bound string
}

type keptGroup struct {
	*pendingGroup
	// first is the smallest view key, worked out only when two groups of
	// the same row position are ordered (see compareKept).
	first *string
}

func (k keptGroup) firstKey() string {
	if *k.first == "" {
		*k.first = firstKey(k.views)
	}
	return *k.first
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
	// byTarget replaces the search of merged when there are many groups.
	var byTarget map[target][]*pendingGroup
	if len(g.list) >= manyEntries {
		byTarget = map[target][]*pendingGroup{}
	}
next:
	for _, grp := range g.list {
		if g.countOnly && !grp.reached || !g.countOnly && grp.views.Len() == 0 {
			continue
		}
		candidates := merged
		if byTarget != nil {
			candidates = byTarget[target{grp.port.port, grp.subset}]
		}
		for _, prev := range candidates {
			if prev.port.port == grp.port.port && prev.subset == grp.subset && sameRow(prev, grp) {
				if !g.countOnly {
					prev.views.explicit = append(prev.views.explicit, grp.views.explicit...)
					if grp.views.others {
						prev.views.others, prev.views.except = true, grp.views.except
					}
				}
				prev.views.ztunnel = prev.views.ztunnel || grp.views.ztunnel
				continue next
			}
		}
		merged = append(merged, grp)
		if byTarget != nil {
			t := target{grp.port.port, grp.subset}
			byTarget[t] = append(byTarget[t], grp)
		}
	}
	c.total += len(merged)
	if g.countOnly {
		g.release()
		return
	}
	for _, grp := range merged {
		c.kept = append(c.kept, keptGroup{pendingGroup: grp, first: new(string)})
		if c.max >= 0 && len(c.kept) > 2*c.max+16 {
			c.trim()
		}
	}
	g.list = nil // kept groups are owned by the collector now
}

// mayKeep reports whether a row of host could be among the first max: the
// collector has fewer, or the last it keeps does not sort before host.
func (c *collector) mayKeep(host string) bool {
	switch {
	case c.max < 0:
		return true
	case c.max == 0:
		return false
	}
	return !c.full || host <= c.bound
}

func (c *collector) trim() {
	slices.SortStableFunc(c.kept, compareKept)
	if c.max >= 0 && len(c.kept) > c.max {
		clear(c.kept[c.max:])
		c.kept = c.kept[:c.max]
	}
	if c.max > 0 && len(c.kept) == c.max {
		c.full, c.bound = true, c.kept[c.max-1].svc.host
	}
}

// compareKept orders groups by host, port, subset, first view and rule.
// Most comparisons are settled by the host: the view keys and rule names,
// which cost allocations, are read only for groups of the same position.
func compareKept(a, b keptGroup) int {
	if c := cmp.Or(
		cmp.Compare(a.svc.host, b.svc.host),
		cmp.Compare(a.port.port, b.port.port),
		cmp.Compare(a.subset, b.subset),
	); c != 0 {
		return c
	}
	if c := cmp.Compare(a.firstKey(), b.firstKey()); c != 0 {
		return c
	}
	return cmp.Compare(a.dr.ref(), b.dr.ref())
}

// sameRow reports whether two groups of one position of one collector
// (and so one env) read the same. Rows name their rule, so only rules of
// the same name can; two index entries that merged the same objects into
// the same policy and subsets do without building the rows, which a
// mesh-wide decision would otherwise do for every service.
func sameRow(a, b *pendingGroup) bool {
	x, y := a.dr, b.dr
	switch {
	case a.ztunnel != nil || b.ztunnel != nil:
		return a.materialize().sameContent(b.materialize())
	case x == y:
		return true
	case x == nil || y == nil:
		return false
	case x.first == nil || y.first == nil:
		// Rows through the PassthroughCluster, or of ztunnel clients.
		return a.materialize().sameContent(b.materialize())
	case x.first.name != y.first.name || x.first.namespace != y.first.namespace:
		return false
	case x.first == y.first && x.trafficPolicy == y.trafficPolicy && slices.Equal(x.subsets, y.subsets):
		return true
	}
	return a.materialize().sameContent(b.materialize())
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
