package policy

import "slices"

// env is the configuration the rules read: the State, optionally with one
// namespace's PeerAuthentications or DestinationRules replaced. It lets the
// engine evaluate "before" and "after" a write without copying the State.
type env struct {
	st *State
	overlay
	// ztunnelPolicies are the ztunnel policies converted in this env
	// (ambient_server.go).
	ztunnelPolicies ztunnelPolicies
	// nsMemo, when set, remembers the namespaces looked up (forWorker);
	// last is the latest of them.
	nsMemo map[string]*namespace
	last   *namespace
}

// overlay replaces one namespace's configuration: when ovNS is set, ovPAs
// or ovDRs (with ovIdx and ovViews) replace that namespace's
// PeerAuthentications or DestinationRules.
type overlay struct {
	ovNS    string
	ovKind  kind
	ovPAs   []*peerAuth
	ovDRs   []*destRule
	ovIdx   *drIndex
	ovViews []ClientView
}

// forWorker returns a copy of e for one goroutine of a decision, which
// remembers the namespaces it looks up. A decision reads the same few
// namespaces (the service's, the root, the special ones) thousands of
// times, and each lookup in the State's persistent map walks nodes that
// are rarely in the CPU's cache; the State behind an env never changes,
// so what was looked up stays true.
func (e *env) forWorker() *env {
	return &env{st: e.st, overlay: e.overlay, nsMemo: map[string]*namespace{}}
}

// ns looks a namespace of the State up.
func (e *env) ns(name string) *namespace {
	if e.nsMemo == nil {
		return e.st.ns(name)
	}
	if e.last != nil && e.last.name == name {
		// A worker evaluates a namespace's services in a row, and asks
		// for their namespace several times each.
		return e.last
	}
	n, ok := e.nsMemo[name]
	if !ok {
		n = e.st.ns(name)
		e.nsMemo[name] = n
	}
	if n != nil {
		e.last = n
	}
	return n
}

// namespaceAmbient is State.namespaceAmbient through e's lookups.
func (e *env) namespaceAmbient(name string) bool {
	n := e.ns(name)
	return n != nil && n.ambient
}

type kind int

const (
	kindNone kind = iota
	kindPeerAuthentication
	kindDestinationRule
	kindSidecar
)

func (e *env) peerAuths(ns string) []*peerAuth {
	if e.ovKind == kindPeerAuthentication && ns == e.ovNS {
		return e.ovPAs
	}
	if n := e.ns(ns); n != nil {
		return n.pas
	}
	return nil
}

func (e *env) drIndex(ns string) *drIndex {
	if e.ovKind == kindDestinationRule && ns == e.ovNS {
		return e.ovIdx
	}
	if n := e.ns(ns); n != nil {
		return n.drIdx
	}
	return nil
}

func (e *env) views(ns string) []ClientView {
	if e.ovKind == kindDestinationRule && ns == e.ovNS {
		return e.ovViews
	}
	if n := e.ns(ns); n != nil {
		return n.views
	}
	return nil
}

// withPeerAuth returns the env in which namespace ns holds pas.
func (s *State) withPeerAuths(ns string, pas []*peerAuth) *env {
	sortPeerAuths(pas)
	return &env{st: s, overlay: overlay{ovNS: ns, ovKind: kindPeerAuthentication, ovPAs: pas}}
}

// withDestRules returns the env in which namespace ns holds drs.
func (s *State) withDestRules(ns string, drs []*destRule) *env {
	sortDestRules(drs)
	e := &env{st: s, overlay: overlay{ovNS: ns, ovKind: kindDestinationRule, ovDRs: drs}}
	if len(drs) > 0 {
		e.ovIdx = buildDRIndex(ns, drs, s.mesh)
	}
	if n := s.ns(ns); n != nil {
		e.ovViews = n.views
		if slices.ContainsFunc(drs, func(d *destRule) bool { return d.hasSelector }) ||
			slices.ContainsFunc(n.drs, func(d *destRule) bool { return d.hasSelector }) {
			e.ovViews = computeViews(n, drs) // selector rules split the namespace
		}
	}
	return e
}
