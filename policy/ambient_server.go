package policy

import (
	"maps"
	"slices"
	"sync"

	securityapi "istio.io/api/security/v1beta1"
)

// This file is what a captured pod accepts: istiod turns PeerAuthentications
// into ztunnel DENY policies (pilot/pkg/serviceregistry/ambient
// authorization.go convertedSelectorPeerAuthentications and
// convertPeerAuthentication, policies.go PolicyCollections, workloads.go
// fetchPeerAuthentications), and ztunnel refuses a connection that any
// referenced DENY policy matches. HBONE carries the client's identity and
// is never refused by them; plaintext has none.

// endpointServer is the server policy of pod p on targetPort: the sidecar's
// PeerAuthentication mode, ztunnel's for a captured pod, NoSidecar
// otherwise. wl is p's own workload policy in chain c (sidecar rules).
// hbone marks a pod that terminates HBONE on 15008: every captured pod, and
// a sidecar or plain pod that advertises the tunnel label (a sidecar's
// HBONE listener applies no PeerAuthentication: listener_inbound.go
// buildInboundHBONEListeners, "Internal chain has no mTLS").
func (e *env) endpointServer(c paChain, p *pod, wl *peerAuth, targetPort int32, nsAmbient bool) serverPolicy {
	switch {
	case p.sidecar:
		sm := c.serverModeOf(wl, targetPort)
		sm.hbone = p.ambient.tunnel
		return sm
	case p.captured(nsAmbient):
		return e.ambientServer(p, targetPort)
	}
	return serverPolicy{mode: NoSidecar, hbone: p.ambient.tunnel}
}

// ambientServer is the mode ztunnel enforces for captured pod p on
// targetPort.
func (e *env) ambientServer(p *pod, targetPort int32) serverPolicy {
	root := e.st.mesh.RootNamespace
	// fetchPeerAuthentications: the root namespace's policies without a
	// selector field, and the pod namespace's policies without one or whose
	// matchLabels the pod carries. convertedSelectorPeerAuthentications then
	// splits them by empty matchLabels; the oldest of each level wins (by
	// creationTimestamp; the engine's name tie-break stands in for the
	// informer's list order, which varies from run to run).
	var mesh, nsLevel, wl *peerAuth
	consider := func(pa *peerAuth) {
		if len(pa.selector) == 0 {
			if pa.namespace == root {
				if mesh == nil {
					mesh = pa
				}
			} else if nsLevel == nil {
				nsLevel = pa
			}
		} else if pa.namespace != root && wl == nil {
			wl = pa
		}
	}
	for _, pa := range e.peerAuths(root) {
		if !pa.selectorSet || (p.namespace == root && pa.selector.matches(p.labels)) {
			consider(pa)
		}
	}
	if p.namespace != root {
		for _, pa := range e.peerAuths(p.namespace) {
			if !pa.selectorSet || pa.selector.matches(p.labels) {
				consider(pa)
			}
		}
	}
	staticStrict, converted := effectiveAmbientPolicies(mesh, nsLevel, wl)
	source := wl
	switch {
	case wl != nil && (wl.mode != securityapi.PeerAuthentication_MutualTLS_UNSET || len(wl.portModes) > 0):
	case nsLevel != nil && nsLevel.mode != securityapi.PeerAuthentication_MutualTLS_UNSET:
		source = nsLevel
	default:
		source = mesh
	}
	denied := staticStrict
	if converted {
		// PeerAuthDerivedPolicies: the namespace and root policies of the
		// conversion are the oldest without a selector field.
		pol := e.ztunnelPolicies.convert(root, wl, oldestUnselected(e.peerAuths(wl.namespace)), oldestUnselected(e.peerAuths(root)))
		// A referenced policy that was never produced is skipped by ztunnel
		// ("skipping unknown policy"): quirk B of the semantics document.
		if pol.deniesPlaintext(uint32(targetPort)) {
			denied = true
		}
	}
	if denied {
		return serverPolicy{mode: AmbientStrict, source: source, hbone: true}
	}
	return serverPolicy{mode: AmbientPermissive, source: source, hbone: true}
}

func oldestUnselected(pas []*peerAuth) *peerAuth {
	for _, pa := range pas {
		if !pa.selectorSet {
			return pa
		}
	}
	return nil
}

func isStrict(pa *peerAuth) bool {
	return pa != nil && pa.mode == securityapi.PeerAuthentication_MutualTLS_STRICT
}

func isUnset(pa *peerAuth) bool {
	return pa == nil || pa.mode == securityapi.PeerAuthentication_MutualTLS_UNSET
}

func anyPort(pa *peerAuth, modes ...securityapi.PeerAuthentication_MutualTLS_Mode) bool {
	for _, m := range pa.portModes {
		if slices.Contains(modes, m) {
			return true
		}
	}
	return false
}

// effectiveAmbientPolicies is convertedSelectorPeerAuthentications: whether
// the workload references the static STRICT policy and whether it
// references the converted form of its workload policy wl.
func effectiveAmbientPolicies(mesh, nsLevel, wl *peerAuth) (staticStrict, converted bool) {
	const (
		strict     = securityapi.PeerAuthentication_MutualTLS_STRICT
		permissive = securityapi.PeerAuthentication_MutualTLS_PERMISSIVE
		disable    = securityapi.PeerAuthentication_MutualTLS_DISABLE
	)
	strictNow := isStrict(mesh)
	if nsLevel != nil && !isUnset(nsLevel) {
		strictNow = isStrict(nsLevel)
	}
	if wl == nil {
		return strictNow, false
	}
	switch wl.mode {
	case strict:
		strictNow = true
	case permissive, disable:
		strictNow = false
	}
	if wl.portModes == nil {
		return strictNow, false
	}
	switch wl.mode {
	case strict:
		if anyPort(wl, permissive, disable) {
			return false, true
		}
	case permissive, disable:
		if anyPort(wl, strict) {
			converted = true
		}
	default:
		if strictNow {
			// Only PERMISSIVE ports are looked for: a DISABLE port under a
			// STRICT parent keeps the static policy (quirk A).
			if anyPort(wl, permissive) {
				return false, true
			}
		} else {
			strictNow = false
			converted = anyPort(wl, strict)
		}
	}
	return strictNow, converted
}

// ztunnelDeny is a converted DENY policy: it matches a connection if any
// group matches; a group if all its rules match; a rule if any of its
// matches does (ztunnel src/rbac.rs Authorization::matches). nil is a policy
// never produced.
type ztunnelDeny struct{ groups [][][]ztunnelMatch }

// ztunnelMatch is one Match: every field set must hold.
type ztunnelMatch struct {
	noIdentity bool     // notPrincipals: [presence]
	ports      []uint32 // destinationPorts
	notPorts   []uint32 // notDestinationPorts
}

func (m ztunnelMatch) matches(identity bool, port uint32) bool {
	if m.noIdentity && identity {
		return false
	}
	if m.ports != nil && !slices.Contains(m.ports, port) {
		return false
	}
	return !slices.Contains(m.notPorts, port)
}

// deniesPlaintext reports whether the policy refuses a connection without
// a peer identity to the target port.
func (z *ztunnelDeny) deniesPlaintext(port uint32) bool {
	if z == nil {
		return false
	}
	for _, group := range z.groups {
		all := true
		for _, rule := range group {
			if !slices.ContainsFunc(rule, func(m ztunnelMatch) bool { return m.matches(false, port) }) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// convertPeerAuthentication transcribes authorization.go's function of the
// same name, conditions and all (quirk C comes from its operator
// precedence, kept here).
func convertPeerAuthentication(root string, cfg, nsCfg, rootCfg *peerAuth) *ztunnelDeny {
	const (
		strict     = securityapi.PeerAuthentication_MutualTLS_STRICT
		permissive = securityapi.PeerAuthentication_MutualTLS_PERMISSIVE
		disable    = securityapi.PeerAuthentication_MutualTLS_DISABLE
		unset      = securityapi.PeerAuthentication_MutualTLS_UNSET
	)
	if cfg.namespace == root || !cfg.selectorSet || len(cfg.portModes) == 0 {
		return nil
	}
	mode := cfg.mode
	var rules [][]ztunnelMatch
	var groups [][][]ztunnelMatch
	if mode == strict {
		rules = append(rules, []ztunnelMatch{{noIdentity: true}})
	}
	foundNonStrict := false
	for _, port := range slices.Sorted(maps.Keys(cfg.portModes)) {
		switch pm := cfg.portModes[port]; pm {
		case strict:
			if mode == strict || // #1
				(mode == unset && // first condition of #2 and #3
					(nsCfg != nil && isStrict(nsCfg)) || // #2
					// #3, not gated by the UNSET check above: Go's && binds tighter than ||
					((nsCfg == nil || isUnset(nsCfg)) && rootCfg != nil && isStrict(rootCfg))) {
				continue
			}
			groups = append(groups, [][]ztunnelMatch{{{noIdentity: true, ports: []uint32{port}}}})
		case permissive, disable:
			if mode == permissive || mode == disable {
				continue
			}
			if mode == unset && ((nsCfg != nil && !isStrict(nsCfg)) ||
				(nsCfg == nil && rootCfg != nil && !isStrict(rootCfg)) ||
				(nsCfg == nil && rootCfg == nil)) {
				continue
			}
			foundNonStrict = true
			rules = append(rules, []ztunnelMatch{{notPorts: []uint32{port}}})
		}
	}
	if mode == strict && !foundNonStrict {
		return nil
	}
	if len(rules) == 0 && len(groups) == 0 {
		return nil
	}
	mergeStrict := (rootCfg != nil && isStrict(rootCfg) && (nsCfg == nil || isUnset(nsCfg) || isStrict(nsCfg))) ||
		(nsCfg != nil && isStrict(nsCfg))
	if mergeStrict && foundNonStrict {
		rules = append(rules, []ztunnelMatch{{noIdentity: true}})
	}
	if len(rules) > 0 {
		groups = append(groups, rules)
	}
	return &ztunnelDeny{groups: groups}
}

// ztunnelPolicies memoizes convertPeerAuthentication, a function of the
// three policies it reads: every captured pod a workload policy selects
// gets the same ztunnel policy, and a mesh-wide decision asks for it per
// pod, port and env.
type ztunnelPolicies struct {
	mu sync.RWMutex
	m  map[[3]*peerAuth]*ztunnelDeny
}

func (z *ztunnelPolicies) convert(root string, cfg, nsCfg, rootCfg *peerAuth) *ztunnelDeny {
	k := [3]*peerAuth{cfg, nsCfg, rootCfg}
	z.mu.RLock()
	pol, ok := z.m[k]
	z.mu.RUnlock()
	if ok {
		return pol
	}
	pol = convertPeerAuthentication(root, cfg, nsCfg, rootCfg)
	z.mu.Lock()
	if z.m == nil {
		z.m = map[[3]*peerAuth]*ztunnelDeny{}
	}
	z.m[k] = pol
	z.mu.Unlock()
	return pol
}
