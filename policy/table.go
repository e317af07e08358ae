package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Query narrows a Table. The zero Query is every client view and host.
type Query struct {
	// Namespace keeps only the client views of this namespace.
	Namespace string
	// Pod (namespace/name) keeps only the client view holding this pod.
	Pod string
	// Host keeps only this service host (FQDN).
	Host string
}

// Table evaluates every service port and subset for the client views q
// selects, grouping views that share a row.
func (s *State) Table(q Query) ([]Group, error) {
	ev := newEvaluator(&env{st: s})
	g := newGrouper(s)
	var views []ClientView
	perView := q.Namespace != "" || q.Pod != ""
	if perView {
		ns := q.Namespace
		if q.Pod != "" {
			ns, _, _ = strings.Cut(q.Pod, "/")
			p := s.pod(q.Pod)
			if p == nil {
				return nil, fmt.Errorf("pod %s not found", q.Pod)
			}
			if !p.sidecar {
				return nil, fmt.Errorf("pod %s has no Istio sidecar: it sends plaintext to every service", q.Pod)
			}
		}
		for _, v := range ev.views(ns) {
			if q.Pod == "" || slices.Contains(v.Pods, q.Pod) {
				views = append(views, v)
			}
		}
		if len(views) == 0 {
			return nil, fmt.Errorf("namespace %q has no client sidecar and is not labelled for injection", ns)
		}
	}
	svcs := s.services
	if q.Host != "" {
		// One service: look it up rather than sort every service.
		svcs = func() []*service {
			if svc := s.servicesByHost[q.Host]; svc != nil {
				return []*service{svc}
			}
			return nil
		}
	}
	for _, svc := range svcs() {
		classes := views
		var except map[string]bool
		if !perView {
			except = s.specialNamespaces(svc, nil)
			classes = append(viewsOf(except, ev.env), genericView)
		}
		for _, v := range classes {
			generic := v.Namespace == ""
			dr := ev.destinationRule(v, svc)
			for _, sp := range svc.ports {
				for _, subset := range targets(dr) {
					g.add(ev.rowFor(svc, sp, subset, dr), v, generic, except)
				}
			}
		}
	}
	return g.sorted(), nil
}

// services lists every service, sorted by host.
func (s *State) services() []*service {
	out := make([]*service, 0, len(s.servicesByHost))
	for _, svc := range s.servicesByHost {
		out = append(out, svc)
	}
	slices.SortFunc(out, func(a, b *service) int {
		if a.host < b.host {
			return -1
		}
		if a.host > b.host {
			return 1
		}
		return 0
	})
	return out
}

func (s *State) pod(key string) *pod {
	ns, name, _ := strings.Cut(key, "/")
	if n := s.namespaces[ns]; n != nil {
		return n.pods[name]
	}
	return nil
}

// FindPod finds a pod by name in a namespace, or else the first pod (by
// name) of the workload that owns pods named name-<suffix>, and returns its
// namespace/name.
func (s *State) FindPod(namespace, name string) (string, bool) {
	n := s.namespaces[namespace]
	if n == nil {
		return "", false
	}
	if _, ok := n.pods[name]; ok {
		return namespace + "/" + name, true
	}
	best := ""
	for pn := range n.pods {
		if strings.HasPrefix(pn, name+"-") && (best == "" || pn < best) {
			best = pn
		}
	}
	return namespace + "/" + best, best != ""
}
