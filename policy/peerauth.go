package policy

import (
	securityapi "istio.io/api/security/v1beta1"
)

// serverPolicy is the resolved mode of one endpoint port and the policy whose
// mode was used ("" when Istio's PERMISSIVE default applies).
type serverPolicy struct {
	mode   ServerMode
	source string
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

// levels picks the oldest mesh, namespace and matching workload policies for
// a workload, as ComposePeerAuthentication does. pas lists are sorted oldest
// first, so the first hit of a level wins.
func (e *env) levels(namespace string, lbls map[string]string) (mesh, ns, wl *peerAuth) {
	root := e.st.mesh.RootNamespace
	for _, pa := range e.peerAuths(root) {
		if len(pa.selector) == 0 {
			mesh = pa
			break
		}
	}
	if namespace == root {
		return mesh, nil, nil
	}
	for _, pa := range e.peerAuths(namespace) {
		if len(pa.selector) == 0 {
			if ns == nil {
				ns = pa
			}
		} else if wl == nil && subsetOf(pa.selector, lbls) {
			wl = pa
		}
		if ns != nil && wl != nil {
			break
		}
	}
	return mesh, ns, wl
}

// serverMode resolves the mode a sidecar workload enforces on targetPort:
// mesh → namespace → workload → port, UNSET inheriting from the level above.
func (e *env) serverMode(namespace string, lbls map[string]string, targetPort int32) serverPolicy {
	mesh, ns, wl := e.levels(namespace, lbls)
	out := serverPolicy{mode: Permissive}
	for _, pa := range []*peerAuth{mesh, ns, wl} {
		if pa != nil && pa.mode != securityapi.PeerAuthentication_MutualTLS_UNSET {
			out = serverPolicy{mode: convertMode(pa.mode), source: pa.ref()}
		}
	}
	if wl != nil && targetPort > 0 {
		if m, ok := wl.portModes[uint32(targetPort)]; ok && m != securityapi.PeerAuthentication_MutualTLS_UNSET {
			out = serverPolicy{mode: convertMode(m), source: wl.ref()}
		}
	}
	return out
}

// namespaceMode is AuthenticationPolicies.GetNamespaceMutualTLSMode as used
// by auto mTLS: mesh and namespace policies only, never workload or port
// level. known is false when neither level has a policy.
func (e *env) namespaceMode(namespace string) (mode ServerMode, known bool) {
	root := e.st.mesh.RootNamespace
	var mesh, ns *peerAuth
	for _, pa := range e.peerAuths(root) {
		if len(pa.selector) == 0 {
			mesh = pa
			break
		}
	}
	if namespace != root {
		for _, pa := range e.peerAuths(namespace) {
			if len(pa.selector) == 0 {
				ns = pa
				break
			}
		}
	}
	global, globalKnown := Permissive, false
	if mesh != nil {
		global, globalKnown = convertMode(mesh.mode), true // mesh UNSET is PERMISSIVE
	}
	if ns != nil {
		if ns.mode == securityapi.PeerAuthentication_MutualTLS_UNSET {
			return global, true
		}
		return convertMode(ns.mode), true
	}
	return global, globalKnown
}
