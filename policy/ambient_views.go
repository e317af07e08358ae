package policy

import "slices"

// Ambient client views: the captured pods of a namespace, whose client is
// the node's ztunnel. ztunnel reads no DestinationRule and no Sidecar, so
// every ztunnel view sees the same row for a service port; rows are built
// once per (service port, waypoint rule) and shared by the symbolic set
// "every ztunnel view" (ViewSet.ztunnel).

// ztunnelSubset marks, in the subset slot of memo and row keys, the row
// ztunnel clients see. No DestinationRule subset can be named so.
const ztunnelSubset = "\x00ztunnel"

// computeZtunnelView is namespace n's ambient client view: its captured
// pods, or none; a namespace labelled for ambient has a view even without
// pods, as one labelled for injection does.
func computeZtunnelView(n *namespace) []ClientView {
	var pods []string
	n.pods.each(func(_ string, p *pod) bool {
		if p.captured(n.ambient) {
			pods = append(pods, p.key())
		}
		return true
	})
	if len(pods) == 0 && !n.ambient {
		return nil
	}
	slices.Sort(pods)
	return []ClientView{{Namespace: n.name, Ztunnel: true, Pods: pods}}
}

func (s *State) setZtunnelView(n *namespace, views []ClientView) {
	s.totalZtunnelViews += len(views) - len(n.ztunnel)
	n.ztunnel = views
}

// updateZtunnelView keeps n's ambient view current after a pod event,
// without the O(pods) recomputation.
func (s *State) updateZtunnelView(n *namespace, old, upd *pod) {
	was, is := old != nil && old.captured(n.ambient), upd != nil && upd.captured(n.ambient)
	if was == is {
		return
	}
	var pods []string
	if len(n.ztunnel) == 1 {
		pods = n.ztunnel[0].Pods
	}
	pods = withPodKey(pods, n, old, upd, is)
	if len(pods) == 0 && !n.ambient {
		s.setZtunnelView(n, nil)
		return
	}
	s.setZtunnelView(n, []ClientView{{Namespace: n.name, Ztunnel: true, Pods: pods}})
}

// hasCaptured reports whether namespace n has a captured pod.
func (n *namespace) hasCaptured() bool {
	return len(n.ztunnel) == 1 && len(n.ztunnel[0].Pods) > 0
}

// ztunnelRow evaluates one service port as ztunnel clients see it.
func (e *env) ztunnelRow(svc *service, sp servicePort, z ztunnelPath) *Row {
	r := &Row{Host: svc.host, Port: sp.port, DestinationRule: "-"}
	r.Client, r.ClientColumn = z.column()
	if z.waypoint != "" {
		r.DestinationRule = z.dr.ref()
	}
	nsAmbient := e.namespaceAmbient(svc.namespace)
	chain := e.chain(svc.namespace)
	var servers, policies []string
	r.Endpoints = []Endpoint{}
	for _, p := range svc.members {
		target, ok := sp.targetPort(p)
		if !ok {
			continue
		}
		sm := e.endpointServer(chain, p, chain.workload(p.labels), target, nsAmbient)
		w := z.wire(p, nsAmbient)
		out := Endpoint{Pod: p.key(), TargetPort: target, Sidecar: p.sidecar, Dataplane: p.dataplane(nsAmbient),
			ServerMode: sm.mode, AuthnPolicy: "-", ClientSends: w, OK: accepts(sm, w), Reason: ztunnelReason(sm, w)}
		if sm.source != nil {
			out.AuthnPolicy = sm.source.ref()
		}
		if !out.OK {
			r.Status = Conflict
		}
		servers = appendUnique(servers, out.ServerMode.Column())
		policies = appendUnique(policies, out.AuthnPolicy)
		r.Endpoints = append(r.Endpoints, out)
	}
	r.Server = single(servers, "-", "mixed")
	r.AuthnPolicy = single(policies, "-", "")
	return r
}

// ztunnelRowFor is rowFor for ztunnel clients.
func (ev *evaluator) ztunnelRowFor(svc *service, sp servicePort) *Row {
	z := ev.ztunnelPath(svc, sp)
	k := rowKey{svc, sp.port, ztunnelSubset, z.dr}
	if r, ok := ev.rows[k]; ok {
		return r
	}
	r := ev.ztunnelRow(svc, sp, z)
	ev.rows[k] = r
	return r
}

// ztunnelViews lists the ambient client views a Table query selects: those
// of namespace ns, narrowed to the view holding pod when pod is set.
func (s *State) ztunnelViews(ns, pod string) []ClientView {
	n := s.ns(ns)
	if n == nil {
		return nil
	}
	var out []ClientView
	for _, v := range n.ztunnel {
		if pod == "" || slices.Contains(v.Pods, pod) {
			out = append(out, v)
		}
	}
	return out
}

// addZtunnelRows adds svc's rows for ztunnel clients to a Table: for the
// explicit views when the query names a namespace or pod, else for the
// symbolic set of every ztunnel view.
func (g *grouper) addZtunnelRows(ev *evaluator, svc *service, perView bool, views []ClientView) {
	if !g.st.ztunnelUses(svc) {
		return
	}
	if perView {
		if len(views) == 0 {
			return
		}
		for _, sp := range svc.ports {
			r := ev.ztunnelRowFor(svc, sp)
			for _, v := range views {
				g.add(r, v, false, nil)
			}
		}
		return
	}
	if g.st.totalZtunnelViews == 0 {
		return
	}
	for _, sp := range svc.ports {
		g.addZtunnel(ev.ztunnelRowFor(svc, sp))
	}
}

// addZtunnel adds row r for every ztunnel client.
func (g *grouper) addZtunnel(r *Row) {
	if grp := g.group(r); grp != nil {
		grp.Views.ztunnel = true
	}
}

// failingZtunnel is failing for ztunnel clients reaching port pi through
// path z in env e.
func (ev *serviceEval) failingZtunnel(e, pi int, z ztunnelPath) bitset {
	key := memoKey{e, pi, ztunnelSubset, z.dr}
	if f, ok := ev.memoized(key); ok {
		return f
	}
	out := ev.newBitset()
	modes, targets := ev.serverModes(e, pi), ev.targetPorts(pi)
	for i, p := range ev.svc.members {
		if targets[i] == noTarget {
			continue
		}
		if !accepts(modes[i], z.wire(p, ev.nsAmbient)) {
			out[i/64] |= 1 << (i % 64)
		}
	}
	ev.memoize(key, out)
	return out
}

// evaluateZtunnel is evaluate for ztunnel clients: one symbolic view, whose
// row changes with the server policies and, through a waypoint, with the
// waypoint's DestinationRule.
func (ev *serviceEval) evaluateZtunnel() {
	if ev.st.totalZtunnelViews == 0 || ev.scope.kind == kindSidecar || !ev.st.ztunnelUses(ev.svc) {
		return // no Sidecar scopes ztunnel
	}
	before, after := ev.envs[0], ev.envs[1]
	for pi, sp := range ev.svc.ports {
		zb, za := before.ztunnelPath(ev.svc, sp), after.ztunnelPath(ev.svc, sp)
		if zb.dr == za.dr && ev.scope.kind == kindDestinationRule {
			continue
		}
		fb, fa := ev.failingZtunnel(0, pi, zb), ev.failingZtunnel(1, pi, za)
		if fa.hasNew(fb) {
			ev.pendingNew.addZtunnel(after, ev.svc, sp, za)
		}
		if fb.hasNew(fa) {
			ev.pendingResolved.addZtunnel(before, ev.svc, sp, zb)
		}
	}
}

// addZtunnel adds the row of every ztunnel client (there is at least one).
func (g *pendingGroups) addZtunnel(e *env, svc *service, sp servicePort, z ztunnelPath) {
	g.list = append(g.list, &pendingGroup{env: e, svc: svc, port: sp, subset: ztunnelSubset, dr: z.dr,
		views: ViewSet{st: e.st, ztunnel: true}, ztunnel: &z, reached: true})
}

// ztunnelUses reports whether ztunnel clients reach svc for its host: one
// host is one service to them, as to a sidecar without a Sidecar resource
// (the Kubernetes Service, else the oldest ServiceEntry); ztunnel reads no
// Sidecar and no exportTo.
func (s *State) ztunnelUses(svc *service) bool {
	return !s.otherServiceWins("", false, svc, func(*service) bool { return true })
}

// ambientBaseline is what the PeerAuthentications of the mesh and of
// namespace ns contribute to the ztunnel policy of every captured pod of
// ns before workload policies: the policies convertedSelectorPeerAuthentications
// and convertPeerAuthentication read as mesh, namespace and root levels.
type ambientBaseline struct {
	mesh, nsLevel, nsCfg, rootCfg *peerAuth
}

func (e *env) ambientBaseline(ns string) ambientBaseline {
	root := e.st.mesh.RootNamespace
	rootPAs := e.peerAuths(root)
	b := ambientBaseline{rootCfg: oldestUnselected(rootPAs), mesh: oldestUnselected(rootPAs)}
	if ns != root {
		pas := e.peerAuths(ns)
		b.nsCfg = oldestUnselected(pas)
		for _, pa := range pas {
			if len(pa.selector) == 0 {
				b.nsLevel = pa
				break
			}
		}
	}
	return b
}

// ambientBaselineChanges reports whether a PeerAuthentication write can
// change the ztunnel policy of the captured pods of ns through its mesh or
// namespace levels. Sidecars read these levels only through the namespace
// mode; ztunnel also tells a namespace policy with no mode from none
// (quirks B and C), so the scope of a write checks both.
func ambientBaselineChanges(before, after *env, ns string) bool {
	n := before.st.ns(ns)
	if n == nil || !n.hasCaptured() {
		return false
	}
	b, a := before.ambientBaseline(ns), after.ambientBaseline(ns)
	same := func(x, y *peerAuth) bool {
		if x == nil || y == nil {
			return x == y
		}
		return x.ref() == y.ref() && x.mode == y.mode
	}
	return !same(b.mesh, a.mesh) || !same(b.nsLevel, a.nsLevel) || !same(b.nsCfg, a.nsCfg) || !same(b.rootCfg, a.rootCfg)
}

// allZtunnelViews lists every ambient client view, in no particular order.
func (s *State) allZtunnelViews() []ClientView {
	out := make([]ClientView, 0, s.totalZtunnelViews)
	if s.totalZtunnelViews == 0 {
		return out
	}
	s.namespaces.each(func(_ string, n *namespace) bool {
		out = append(out, n.ztunnel...)
		return true
	})
	return out
}
