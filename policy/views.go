package policy

import (
	"slices"
	"strings"
)

// ClientView is a set of client sidecars that see the same DestinationRules:
// the sidecar pods of one namespace that match the same workloadSelector
// rules of that namespace.
type ClientView struct {
	// Namespace is the clients' namespace.
	Namespace string
	// Selectors names the workloadSelector DestinationRules (name/namespace)
	// that match these clients, then the workloadSelector Sidecar they use
	// ("Sidecar name/namespace"); empty for the namespace's plain clients.
	Selectors []string
	// Pods lists the sidecar pods (namespace/name), sorted. It is empty for a
	// namespace labelled for injection that has no sidecar pod yet.
	Pods []string
	// Ztunnel marks the namespace's ambient clients: Pods are its captured
	// pods, whose traffic ztunnel carries (ambient_views.go).
	Ztunnel bool

	labels map[string]string
}

// Pod names the view's first pod, or "" when it has none.
func (v ClientView) Pod() string {
	if len(v.Pods) == 0 {
		return ""
	}
	return v.Pods[0]
}

// Key identifies the view within its namespace.
func (v ClientView) Key() string {
	if v.Ztunnel {
		return v.Namespace + "|~ztunnel"
	}
	return v.Namespace + "|" + strings.Join(v.Selectors, ",")
}

// String renders the view for messages: the namespace, and the selecting
// rules when there are any.
func (v ClientView) String() string {
	if v.Ztunnel {
		return v.Namespace + "(ztunnel)"
	}
	if len(v.Selectors) == 0 {
		return v.Namespace
	}
	return v.Namespace + "[" + strings.Join(v.Selectors, ",") + "]"
}

// sidecarSelector starts the Selectors entry of a workloadSelector Sidecar.
const sidecarSelector = "Sidecar "

// computeViews splits a namespace's sidecar pods by the workloadSelector
// rules (of drs, the namespace's rules) that match them and by the
// workloadSelector Sidecar they use.
func computeViews(n *namespace, drs []*destRule) []ClientView {
	var selectors []*destRule
	for _, dr := range drs {
		if dr.hasSelector {
			selectors = append(selectors, dr)
		}
	}
	byKey := map[string]*ClientView{}
	var keys []string
	var clients []*pod
	n.pods.each(func(_ string, p *pod) bool {
		if p.sidecar {
			clients = append(clients, p)
		}
		return true
	})
	sortPods(clients)
	for _, p := range clients {
		var matched []string
		for _, dr := range selectors {
			if dr.selector.matches(p.labels) {
				matched = append(matched, dr.name+"/"+dr.namespace)
			}
		}
		if sc := n.entries.selectorSidecar(p.labels); sc != nil {
			matched = append(matched, sidecarSelector+sc.ref())
		}
		key := strings.Join(matched, ",")
		v, ok := byKey[key]
		if !ok {
			v = &ClientView{Namespace: n.name, Selectors: matched, labels: p.labels}
			byKey[key] = v
			keys = append(keys, key)
		}
		v.Pods = append(v.Pods, p.key())
	}
	if len(keys) == 0 && n.injection {
		return []ClientView{{Namespace: n.name}}
	}
	slices.Sort(keys)
	out := make([]ClientView, 0, len(keys))
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	return out
}
