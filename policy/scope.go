package policy

import (
	"fmt"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// scope is what a change can reach.
type scope struct {
	kind       kind
	services   []*service
	namespaces []string // client namespaces to evaluate one by one
	// clients, when set, are the only client namespaces the change can
	// reach (a namespace's Sidecar).
	clients map[string]bool
}

// envs builds the before and after configurations and the scope of a change.
func (s *State) envs(ch Change) (before, after *env, sc scope, err error) {
	switch {
	case isDR(ch.Old) || isDR(ch.New):
		var old, upd *destRule
		if old, err = s.asDestRule(ch.Old); err == nil {
			upd, err = s.asDestRule(ch.New)
		}
		if err != nil {
			return nil, nil, sc, err
		}
		ns, name, err := sameObject(old, upd, func(d *destRule) (string, string) { return d.namespace, d.name })
		if err != nil {
			return nil, nil, sc, err
		}
		var base []*destRule
		if n := s.ns(ns); n != nil {
			base = n.drs
		}
		if holds(base, name, old) {
			// As for PeerAuthentications below: the State is "before", and
			// its rules' verdicts are kept by the services.
			before = &env{st: s}
		} else {
			before = s.withDestRules(ns, appendDR(withoutDestRule(base, name), old))
		}
		after = s.withDestRules(ns, appendDR(withoutDestRule(base, name), upd))
		sc = scope{kind: kindDestinationRule, namespaces: []string{ns}}
		hosts := map[string]bool{}
		for _, d := range []*destRule{old, upd} {
			if d == nil {
				continue
			}
			hosts[d.host] = true
			for _, e := range d.exportTo {
				if e != "." && e != "*" {
					sc.namespaces = append(sc.namespaces, e)
				}
			}
		}
		sc.services = s.servicesMatching(hosts)
		return before, after, sc, nil
	case isPA(ch.Old) || isPA(ch.New):
		var old, upd *peerAuth
		if old, err = asPeerAuth(ch.Old); err == nil {
			upd, err = asPeerAuth(ch.New)
		}
		if err != nil {
			return nil, nil, sc, err
		}
		ns, name, err := sameObject(old, upd, func(p *peerAuth) (string, string) { return p.namespace, p.name })
		if err != nil {
			return nil, nil, sc, err
		}
		var base []*peerAuth
		if n := s.ns(ns); n != nil {
			base = n.pas
		}
		if holds(base, name, old) {
			// The usual update: the cache holds what the write replaces.
			// The State's own servers then stand for "before", and its
			// services' cached ones with them (servers.go).
			before = &env{st: s}
		} else {
			before = s.withPeerAuths(ns, appendPA(withoutPeerAuth(base, name), old))
		}
		after = s.withPeerAuths(ns, appendPA(withoutPeerAuth(base, name), upd))
		sc = scope{kind: kindPeerAuthentication}
		meshWide := false
		for _, p := range []*peerAuth{old, upd} {
			if p != nil && ns == s.mesh.RootNamespace && len(p.selector) == 0 {
				meshWide = true
			}
		}
		namespaceLevel := (old == nil || len(old.selector) == 0) && (upd == nil || len(upd.selector) == 0)
		switch {
		case meshWide:
			// Only where the mode workloads start from changes: a namespace
			// whose own policy sets a mode does not see the mesh's.
			s.namespaces.each(func(name string, n *namespace) bool {
				if (len(n.services) > 0 || n.entries != nil) && namespaceModeChanges(before, after, name) {
					sc.services = appendServices(sc.services, n)
				}
				return true
			})
		case ns == s.mesh.RootNamespace:
			// Selectors in the root namespace are ignored: nothing changes.
		case namespaceLevel && !namespaceModeChanges(before, after, ns):
			// A namespace policy that does not win (an older one does), or
			// whose change leaves the resulting mode as it was.
		default:
			if n := s.ns(ns); n != nil {
				sc.services = appendServices(sc.services, n)
			}
		}
		return before, after, sc, nil
	}
	return nil, nil, sc, fmt.Errorf("policy: a change needs a DestinationRule or PeerAuthentication, got %T and %T", ch.Old, ch.New)
}

// namespaceModeChanges reports whether the mode the workloads of ns start
// from (mesh, then namespace policy) differs between two envs. Server modes
// and auto mTLS read PeerAuthentications only through it and the
// workloads' own policies.
func namespaceModeChanges(before, after *env, ns string) bool {
	b, _ := before.namespaceMode(ns)
	a, _ := after.namespaceMode(ns)
	return a != b || ambientBaselineChanges(before, after, ns)
}

func appendServices(l []*service, n *namespace) []*service {
	for _, svc := range n.services {
		l = append(l, svc)
	}
	if n.entries != nil {
		l = append(l, n.entries.services...) // endpoints of ServiceEntries
	}
	return l
}

func isDR(o runtime.Object) bool { _, ok := o.(*networkingv1.DestinationRule); return ok }
func isPA(o runtime.Object) bool { _, ok := o.(*securityv1.PeerAuthentication); return ok }

func (s *State) asDestRule(o runtime.Object) (*destRule, error) {
	switch d := o.(type) {
	case nil:
		return nil, nil
	case *networkingv1.DestinationRule:
		if d == nil {
			return nil, nil
		}
		return newDestRule(d, s.mesh.ClusterDomain)
	}
	return nil, fmt.Errorf("policy: change mixes a DestinationRule with %T", o)
}

func asPeerAuth(o runtime.Object) (*peerAuth, error) {
	switch p := o.(type) {
	case nil:
		return nil, nil
	case *securityv1.PeerAuthentication:
		if p == nil {
			return nil, nil
		}
		return newPeerAuth(p)
	}
	return nil, fmt.Errorf("policy: change mixes a PeerAuthentication with %T", o)
}

func sameObject[T any](old, upd *T, id func(*T) (string, string)) (ns, name string, err error) {
	switch {
	case old == nil && upd == nil:
		return "", "", fmt.Errorf("policy: a change needs an old or a new object")
	case old == nil:
		ns, name = id(upd)
	case upd == nil:
		ns, name = id(old)
	default:
		ns, name = id(old)
		if n2, m2 := id(upd); n2 != ns || m2 != name {
			return "", "", fmt.Errorf("policy: change renames %s/%s to %s/%s", ns, name, n2, m2)
		}
	}
	return ns, name, nil
}

func appendDR(l []*destRule, d *destRule) []*destRule {
	if d == nil {
		return l
	}
	return append(l, d)
}

// namespaced is a namespace's configuration object as the engine keeps
// it: a *peerAuth or a *destRule.
type namespaced[T any] interface {
	comparable
	objectName() string
	equal(T) bool
}

// holds reports whether objs, a namespace's policies or rules, hold o as
// the object called name, or none of that name when o is nil: whether the
// State already is what a write's "before" describes.
func holds[T namespaced[T]](objs []T, name string, o T) bool {
	var none T
	i := slices.IndexFunc(objs, func(q T) bool { return q.objectName() == name })
	if i < 0 || o == none {
		return i < 0 && o == none
	}
	return objs[i].equal(o)
}

func appendPA(l []*peerAuth, p *peerAuth) []*peerAuth {
	if p == nil {
		return l
	}
	return append(l, p)
}

// servicesMatching lists the services a set of rule hosts covers. A
// namespace-wide wildcard reads one namespace; other wildcards scan.
func (s *State) servicesMatching(hosts map[string]bool) []*service {
	seen := map[*service]bool{}
	var out []*service
	add := func(svc *service) {
		if !seen[svc] {
			seen[svc] = true
			out = append(out, svc)
		}
	}
	suffix := ".svc." + s.mesh.ClusterDomain
	for h := range hosts {
		if isWildcard(h) {
			s.eachEntryService(func(svc *service) {
				if hostMatches(h, svc.host) {
					add(svc)
				}
			})
		} else {
			for _, svc := range s.entryServicesOf(h) {
				add(svc)
			}
		}
		if !isWildcard(h) {
			if svc := s.servicesByHost.get(h); svc != nil {
				add(svc)
			}
			continue
		}
		if ns, ok := namespaceWildcard(h, suffix); ok {
			if n := s.ns(ns); n != nil {
				for _, svc := range n.services {
					add(svc)
				}
			}
			continue
		}
		// Namespace by namespace: a worker then evaluates the services of
		// one namespace in a row, and finds it in its last lookup (env.ns).
		s.namespaces.each(func(_ string, n *namespace) bool {
			for _, svc := range n.services {
				if hostMatches(h, svc.host) {
					add(svc)
				}
			}
			return true
		})
	}
	return out
}

// namespaceWildcard recognises "*.<ns>.svc.<domain>".
func namespaceWildcard(h, suffix string) (string, bool) {
	if len(h) <= 2+len(suffix) || h[:2] != "*." || h[len(h)-len(suffix):] != suffix {
		return "", false
	}
	ns := h[2 : len(h)-len(suffix)]
	for i := 0; i < len(ns); i++ {
		if ns[i] == '.' {
			return "", false
		}
	}
	return ns, true
}

// RuleNamespace returns the namespace whose Kubernetes Services are all a
// DestinationRule can apply to: its host names one service
// (<name>.<namespace>.svc.<domain>, or a short name in the rule's own
// namespace) or is a namespace-wide wildcard. It returns false for other
// wildcards and for hosts outside the cluster domain, and for a rule with
// a workloadSelector, which also splits its namespace's clients. The
// audit recomputes only that namespace's services after the rule changes.
func RuleNamespace(dr *networkingv1.DestinationRule, domain string) (string, bool) {
	if dr.Spec.GetWorkloadSelector() != nil {
		return "", false
	}
	return hostNamespace(resolveHost(dr.Spec.GetHost(), dr.Namespace, domain), ".svc."+domain)
}

// hostNamespace returns the namespace of the Kubernetes Services a rule
// host (resolved) can match: the one it names (<name>.<namespace><suffix>),
// or the one a namespace-wide wildcard covers. It returns false for other
// wildcards and other hosts.
func hostNamespace(h, suffix string) (string, bool) {
	if ns, ok := namespaceWildcard(h, suffix); ok {
		return ns, true
	}
	if isWildcard(h) || !strings.HasSuffix(h, suffix) {
		return "", false
	}
	name, ns, ok := strings.Cut(strings.TrimSuffix(h, suffix), ".")
	if !ok || name == "" || ns == "" || strings.Contains(ns, ".") {
		return "", false
	}
	return ns, true
}
