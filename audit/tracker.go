package audit

import (
	"sync"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mtlsguard/mtlsguard/policy"
)

// scope is the part of the conflict table an event can change.
type scope struct {
	// full: every row (a rule, the mesh, or a namespace's client views
	// changed).
	full bool
	// namespace: the services of this namespace only; and of previous,
	// when set (a rule whose old host reached another namespace).
	namespace, previous string
	// republish: no row changed, but what is reported did (a namespace's
	// mode label).
	republish bool
}

// tracker is the audit's own bookkeeping of the objects the cache applies:
// what it needs to scope a recomputation, and what the engine does not
// expose (the pods that run a sidecar without the tlsMode label, uids for
// references, namespace labels). It is fed from every informer at once.
type tracker struct {
	mu         sync.Mutex
	modeLabel  string
	domain     string // the cluster domain, which rule hosts end in
	namespaces map[string]*nsInfo
	// ruleReach is, per DestinationRule ("namespace/name"), the namespace
	// whose services are all it can apply to (policy.RuleNamespace), or ""
	// for any: where its next event must recompute too.
	ruleReach map[string]string
	// serviceEntries counts the ServiceEntries: while there are any, a
	// rule's host may be theirs too, and its events recompute everything.
	serviceEntries int
}

type nsInfo struct {
	injection bool // labelled for sidecar injection: a client view without pods
	off       bool // modeLabel=off: conflicts it causes are not reported
	// sidecars are the names of the pods that run a sidecar.
	sidecars map[string]bool
	// noTLSMode are the sidecar pods without security.istio.io/tlsMode=istio.
	noTLSMode map[string]bool
	// services maps a service name to its uid.
	services map[string]types.UID
	// selectorRules are the DestinationRules with a workloadSelector: a pod
	// event may move a client between views.
	selectorRules map[string]bool
	// entries are the namespace's ServiceEntries and Sidecars ("kind/name"):
	// a pod event may change an entry's endpoints, or move a client between
	// the views of selector Sidecars, which the services of the namespace
	// alone do not show.
	entries map[string]bool
	// rules and policies map DestinationRule and PeerAuthentication names
	// to uids, for the references of reports and events.
	rules, policies map[string]types.UID
	// ambient: labelled istio.io/dataplane-mode=ambient; waypoint: its
	// istio.io/use-waypoint labels; captured: the pods ztunnel captures,
	// which are ambient clients.
	ambient  bool
	waypoint string
	captured map[string]bool
}

func newTracker(modeLabel, domain string) *tracker {
	return &tracker{modeLabel: modeLabel, domain: domain, namespaces: map[string]*nsInfo{}, ruleReach: map[string]string{}}
}

func (t *tracker) ns(name string) *nsInfo {
	n, ok := t.namespaces[name]
	if !ok {
		n = &nsInfo{
			sidecars: map[string]bool{}, noTLSMode: map[string]bool{}, services: map[string]types.UID{},
			selectorRules: map[string]bool{}, rules: map[string]types.UID{}, policies: map[string]types.UID{},
			captured: map[string]bool{},
			entries:  map[string]bool{},
		}
		t.namespaces[name] = n
	}
	return n
}

// observe records an applied (or deleted) object and returns what it can
// change in the conflict table.
func (t *tracker) observe(obj runtime.Object, deleted bool) scope {
	if o, err := policy.Normalize(obj); err == nil {
		obj = o
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch o := obj.(type) {
	case *corev1.Pod:
		n := t.ns(o.Namespace)
		gone := deleted || o.Status.Phase == corev1.PodSucceeded || o.Status.Phase == corev1.PodFailed
		sidecar := !gone && policy.HasSidecar(o)
		was := n.sidecars[o.Name]
		hadClients := len(n.sidecars) > 0
		setMember(n.sidecars, o.Name, sidecar)
		setMember(n.noTLSMode, o.Name, sidecar && o.Labels[policy.TLSModeLabel] != "istio")
		hadAmbientClients := len(n.captured) > 0
		setMember(n.captured, o.Name, !gone && policy.Captured(o, n.ambient))
		switch {
		case hadAmbientClients != (len(n.captured) > 0) && !n.ambient:
			return scope{full: true} // the namespace gains or loses its ambient client view
		case (was || sidecar) && len(n.selectorRules) > 0, len(n.entries) > 0:
			return scope{full: true} // the pod may move between client views, or be an entry's endpoint
		case hadClients != (len(n.sidecars) > 0) && !n.injection:
			return scope{full: true} // the namespace gains or loses its client view
		}
		return scope{namespace: o.Namespace}
	case *corev1.Service:
		n := t.ns(o.Namespace)
		if deleted {
			delete(n.services, o.Name)
		} else {
			n.services[o.Name] = o.UID
		}
		return scope{namespace: o.Namespace}
	case *corev1.Namespace:
		n := t.ns(o.Name)
		injection := !deleted && (o.Labels[policy.InjectionLabel] == "enabled" || o.Labels[policy.RevisionLabel] != "")
		off := !deleted && o.Labels[t.modeLabel] == "off"
		ambient := !deleted && o.Labels[policy.DataplaneModeLabel] == "ambient"
		waypoint := ""
		if name, ok := o.Labels[policy.UseWaypointLabel]; ok && !deleted {
			waypoint = name + "/" + o.Labels[policy.UseWaypointNamespaceLabel]
		}
		// Relabelling a namespace ambient makes its pods ambient clients
		// of every service; a waypoint label changes its services' rows.
		s := scope{full: injection != n.injection || ambient != n.ambient, republish: off != n.off}
		if !s.full && waypoint != n.waypoint {
			s.namespace = o.Name
		}
		n.injection, n.off, n.ambient, n.waypoint = injection, off, ambient, waypoint
		return s
	case *networkingv1.DestinationRule:
		n := t.ns(o.Namespace)
		setMember(n.selectorRules, o.Name, !deleted && o.Spec.GetWorkloadSelector() != nil)
		setUID(n.rules, o.Name, o.UID, deleted)
		return t.ruleScope(o, deleted)
	case *securityv1.PeerAuthentication:
		setUID(t.ns(o.Namespace).policies, o.Name, o.UID, deleted)
	case *networkingv1.ServiceEntry:
		n, k := t.ns(o.Namespace), "ServiceEntry/"+o.Name
		switch {
		case deleted && n.entries[k]:
			t.serviceEntries--
		case !deleted && !n.entries[k]:
			t.serviceEntries++
		}
		setMember(n.entries, k, !deleted)
	case *networkingv1.Sidecar:
		setMember(t.ns(o.Namespace).entries, "Sidecar/"+o.Name, !deleted)
	}
	// PeerAuthentications, DestinationRules, the entry kinds and the mesh
	// ConfigMap can reach any row.
	return scope{full: true}
}

// ruleScope is what a DestinationRule event can change: the services of
// the namespace its host reaches, and of the one its old host reached;
// everything when either can reach several namespaces.
func (t *tracker) ruleScope(dr *networkingv1.DestinationRule, deleted bool) scope {
	key := dr.Namespace + "/" + dr.Name
	previous, had := t.ruleReach[key]
	reach, narrow := "", false
	if deleted {
		delete(t.ruleReach, key)
	} else {
		reach, narrow = policy.RuleNamespace(dr, t.domain)
		t.ruleReach[key] = reach
	}
	switch {
	case t.serviceEntries > 0, had && previous == "", !deleted && !narrow:
		return scope{full: true}
	case deleted:
		if !had {
			return scope{full: true} // never seen: its host is not known
		}
		return scope{namespace: previous}
	case had && previous != reach:
		return scope{namespace: reach, previous: previous}
	}
	return scope{namespace: reach}
}

func setMember(m map[string]bool, k string, in bool) {
	if in {
		m[k] = true
	} else {
		delete(m, k)
	}
}

func setUID(m map[string]types.UID, k string, uid types.UID, deleted bool) {
	if deleted {
		delete(m, k)
	} else {
		m[k] = uid
	}
}

// services returns the names of a namespace's services.
func (t *tracker) services(ns string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.namespaces[ns]
	if n == nil {
		return nil
	}
	out := make([]string, 0, len(n.services))
	for name := range n.services {
		out = append(out, name)
	}
	return out
}

// snapshot is what publishing reads from the tracker, copied under its lock.
type snapshot struct {
	off       map[string]bool
	noTLSMode map[string][]string // namespace → pod names
}

// ref names an object the reports and events refer to.
type ref struct {
	kind, namespace, name string
}

func (t *tracker) snapshot() snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := snapshot{off: map[string]bool{}, noTLSMode: map[string][]string{}}
	for name, n := range t.namespaces {
		if n.off {
			s.off[name] = true
		}
		for p := range n.noTLSMode {
			s.noTLSMode[name] = append(s.noTLSMode[name], p)
		}
	}
	return s
}

// uid returns the uid of a Service, DestinationRule or PeerAuthentication,
// or "" if it is not known.
func (t *tracker) uid(r ref) types.UID {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.namespaces[r.namespace]
	if n == nil {
		return ""
	}
	switch r.kind {
	case kindService:
		return n.services[r.name]
	case kindDestinationRule:
		return n.rules[r.name]
	case kindPeerAuthentication:
		return n.policies[r.name]
	}
	return ""
}
