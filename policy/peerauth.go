package policy

import (
	securityapi "istio.io/api/security/v1beta1"
)

// serverPolicy is the resolved mode of one endpoint port and the policy whose
// mode was used (nil when Istio's PERMISSIVE default applies).
type serverPolicy struct {
	mode   ServerMode
	source *peerAuth
	// hbone: the pod terminates HBONE on port 15008 whatever mode says
	// (ambient_server.go).
	hbone bool
}

func convertMode(m securityapi.PeerAuthentication_MutualTLS_Mode) ServerMode {
	switch m {
	case securityapi.PeerAuthentication_MutualTLS_STRICT:
		return Strict
	case securityapi.PeerAuthentication_MutualTLS_DISABLE:
		return Disable
	}
	return Permissive
}

// paChain is what decides the server mode of the workloads of one
// namespace, as ComposePeerAuthentication reads it: the oldest mesh policy,
// the oldest namespace policy, and the namespace's policies (oldest first)
// among which a workload finds its own. The root namespace has only the
// mesh level: selectors there are ignored.
type paChain struct {
	mesh, ns *peerAuth
	pas      []*peerAuth
}

// meshPolicy is the oldest selector-less policy of the root namespace.
func (e *env) meshPolicy() *peerAuth {
	for _, pa := range e.peerAuths(e.st.mesh.RootNamespace) {
		if len(pa.selector) == 0 {
			return pa
		}
	}
	return nil
}

func (e *env) chain(namespace string) paChain {
	c := paChain{mesh: e.meshPolicy()}
	if namespace == e.st.mesh.RootNamespace {
		return c
	}
	c.pas = e.peerAuths(namespace)
	for _, pa := range c.pas {
		if len(pa.selector) == 0 {
			c.ns = pa
			break
		}
	}
	return c
}

// workload is the oldest workload policy that selects lbls.
func (c paChain) workload(lbls map[string]string) *peerAuth {
	for _, pa := range c.pas {
		if len(pa.selector) > 0 && pa.selector.matches(lbls) {
			return pa
		}
	}
	return nil
}

// serverMode resolves the mode a sidecar workload enforces on targetPort:
// mesh → namespace → workload → port, UNSET inheriting from the level above.
func (c paChain) serverMode(lbls map[string]string, targetPort int32) serverPolicy {
	return c.serverModeOf(c.workload(lbls), targetPort)
}

// serverModeOf is serverMode for a workload whose own policy is wl.
func (c paChain) serverModeOf(wl *peerAuth, targetPort int32) serverPolicy {
	out := serverPolicy{mode: Permissive}
	for _, pa := range [...]*peerAuth{c.mesh, c.ns, wl} {
		if pa != nil && pa.mode != securityapi.PeerAuthentication_MutualTLS_UNSET {
			out = serverPolicy{mode: convertMode(pa.mode), source: pa}
		}
	}
	if wl != nil && targetPort > 0 {
		if m, ok := wl.portModes[uint32(targetPort)]; ok && m != securityapi.PeerAuthentication_MutualTLS_UNSET {
			out = serverPolicy{mode: convertMode(m), source: wl}
		}
	}
	return out
}

func (e *env) serverMode(namespace string, lbls map[string]string, targetPort int32) serverPolicy {
	return e.chain(namespace).serverMode(lbls, targetPort)
}

// namespaceMode is AuthenticationPolicies.GetNamespaceMutualTLSMode as used
// by auto mTLS: mesh and namespace policies only, never workload or port
// level. known is false when neither level has a policy. It is also the
// mode every workload of the namespace starts from before its own policy,
// which is why a mesh-wide write that leaves it unchanged in a namespace
// cannot change a verdict there.
func (c paChain) namespaceMode() (mode ServerMode, known bool) {
	global, globalKnown := Permissive, false
	if c.mesh != nil {
		global, globalKnown = convertMode(c.mesh.mode), true // mesh UNSET is PERMISSIVE
	}
	if c.ns != nil {
		if c.ns.mode == securityapi.PeerAuthentication_MutualTLS_UNSET {
			return global, true
		}
		return convertMode(c.ns.mode), true
	}
	return global, globalKnown
}

func (e *env) namespaceMode(namespace string) (ServerMode, bool) {
	return e.chain(namespace).namespaceMode()
}
