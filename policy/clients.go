package policy

import (
	"strings"
	"sync/atomic"
)

// clientPlan is how the clients of a service resolve its rules in a
// State: the namespaces whose clients may resolve them differently from the
// others (specialNamespaces), and the rule that the plain clients (views
// matched by no workloadSelector rule) of each of them, and of the generic
// view, resolve. It is kept on the service between decisions: a mesh-wide
// write evaluates every service, and finding its special namespaces and
// looking its rules up in the persistent maps, whose nodes are rarely in the
// CPU's cache, was half of a `*.local` rule's decision. Neither part reads
// pods, Services or PeerAuthentications, and a DestinationRule event
// outdates the plans of the services its host can match only
// (State.rulesChanged, State.clientsMayChange).
type clientPlan struct {
	key clientKey
	// special is specialNamespaces(svc, nil): shared, never changed.
	special map[string]bool
	// rules are the plain clients' rules of the special namespaces that
	// had client views, then the generic view's (namespace "").
	rules []plannedRule
}

type plannedRule struct {
	ns  string
	dr  *mergedRule
	end lookupEnd
}

// clientKey dates a plan: the State's version of every service's clients
// and the rulesVersion of the service's namespace.
type clientKey struct{ all, namespace uint64 }

func (e *env) clientKey(svc *service) clientKey {
	k := clientKey{all: e.st.clientVersion}
	if n := e.ns(svc.namespace); n != nil {
		k.namespace = n.rulesVersion
	}
	return k
}

// clientCache holds a service's plan. Decisions on different States may
// share the service and race to store theirs; the key tells whose it is.
type clientCache struct{ atomic.Pointer[clientPlan] }

// rule returns the rule the plain clients of namespace ns resolve ("" for
// the generic view), or false when ns is not special.
func (p *clientPlan) rule(ns string) (plannedRule, bool) {
	for _, r := range p.rules {
		if r.ns == ns {
			return r, true
		}
	}
	return plannedRule{}, false
}

// covers reports whether namespaces are all special already, so that the
// plan's set stands for the special namespaces of a change naming them.
func (p *clientPlan) covers(namespaces []string) bool {
	for _, ns := range namespaces {
		if !p.special[ns] {
			return false
		}
	}
	return true
}

// clientPlan returns svc's plan in e's State, from the service's cache or
// made and stored there; nil when e's rules are not the State's (a
// DestinationRule write replaces a namespace's) or svc keeps no cache.
func (e *env) clientPlan(svc *service) *clientPlan {
	if svc.clients == nil || e.ovKind == kindDestinationRule {
		return nil
	}
	k := e.clientKey(svc)
	if p := svc.clients.Load(); p != nil && p.key == k {
		return p
	}
	p := &clientPlan{key: k, special: e.st.specialNamespaces(svc, nil, make(map[string]bool, 8))}
	p.rules = make([]plannedRule, 0, len(p.special)+1)
	for ns := range p.special {
		if len(e.views(ns)) == 0 {
			continue // no clients now: looked up live if some come
		}
		dr, end := e.destinationRuleEnd(ClientView{Namespace: ns}, svc)
		p.rules = append(p.rules, plannedRule{ns, dr, end})
	}
	dr, end := e.destinationRuleEnd(genericView, svc)
	p.rules = append(p.rules, plannedRule{"", dr, end})
	svc.clients.Store(p)
	return p
}

// plainRule returns the rule of view v from plan p when v is plain (no
// workloadSelector rule of its namespace matches it, so it resolves what
// every plain client of its namespace does) and its namespace is planned.
func (p *clientPlan) plainRule(v ClientView) (plannedRule, bool) {
	if p == nil || !plain(v) {
		return plannedRule{}, false
	}
	return p.rule(v.Namespace)
}

// viewRule is destinationRule(v, svc) in e, read from plan when the plan
// holds it; it reports whether it did, with where the lookup ended.
func (e *env) viewRule(plan *clientPlan, v ClientView, svc *service) (plannedRule, bool) {
	if r, ok := plan.plainRule(v); ok {
		return r, true
	}
	return plannedRule{ns: v.Namespace, dr: e.destinationRule(v, svc)}, false
}

// plain reports whether no workloadSelector DestinationRule matches the
// view's clients (a workloadSelector Sidecar does not change the rule).
func plain(v ClientView) bool {
	for _, s := range v.Selectors {
		if !strings.HasPrefix(s, sidecarSelector) {
			return false
		}
	}
	return true
}
