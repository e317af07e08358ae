package policy

import (
	"cmp"
	"fmt"
	goruntime "runtime"
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
	// Conflicts keeps only CONFLICT rows. The audit asks for these alone:
	// grouping and sorting the rows that are fine was a third of its
	// whole-table recomputation, and most of what it allocated.
	Conflicts bool
	// Yield, if set, is called between services, every few. The audit
	// passes one that waits while admissions are being decided: a whole
	// table is background work, and on a small node it took a CPU from
	// the mesh-wide decision it ran beside.
	Yield func()
}

// Table evaluates every service port and subset for the client views q
// selects, grouping views that share a row.
func (s *State) Table(q Query) ([]Group, error) {
	ev := newEvaluator(&env{st: s})
	g := newGrouper(s)
	g.conflictsOnly = q.Conflicts
	var views, ztunnelViews []ClientView
	perView := q.Namespace != "" || q.Pod != ""
	if perView {
		ns := q.Namespace
		if q.Pod != "" {
			ns, _, _ = strings.Cut(q.Pod, "/")
			p := s.pod(q.Pod)
			if p == nil {
				return nil, fmt.Errorf("pod %s not found", q.Pod)
			}
			if !p.sidecar && !p.captured(s.namespaceAmbient(ns)) {
				return nil, fmt.Errorf("pod %s has no Istio sidecar and is not captured by ztunnel: it sends plaintext to every service", q.Pod)
			}
		}
		for _, v := range ev.views(ns) {
			if q.Pod == "" || slices.Contains(v.Pods, q.Pod) {
				views = append(views, v)
			}
		}
		ztunnelViews = s.ztunnelViews(ns, q.Pod)
		if len(views) == 0 && len(ztunnelViews) == 0 {
			return nil, fmt.Errorf("namespace %q has no client sidecar, no ambient pod, and is not labelled for injection or ambient", ns)
		}
	}
	services := s.services
	if q.Host != "" {
		// One service: what the audit asks after an event that touches it.
		services = func() []*service {
			out := slices.Clone(s.entryServicesOf(q.Host))
			if svc := s.servicesByHost.get(q.Host); svc != nil {
				out = append([]*service{svc}, out...)
			}
			return out
		}
	}
	// With Query.Conflicts, the decisions' verdicts (cached on the
	// service) pick the rows to build: most rows are fine, and building
	// their endpoints was most of the audit's work.
	var verdicts *serviceEval
	if q.Conflicts {
		verdicts = newServiceEval(s, ev.env, ev.env, scope{}, 0)
	}
	for i, svc := range services() {
		if i%8 == 7 {
			// As decideIn's workers: the audit recomputes the whole table
			// beside admissions, which then need not wait for the
			// scheduler to preempt it.
			goruntime.Gosched()
			if q.Yield != nil {
				q.Yield()
			}
		}
		if verdicts != nil {
			verdicts.reset(svc)
		}
		classes := views
		var except map[string]bool
		plan := ev.clientPlan(svc)
		if !perView {
			if plan != nil {
				except = plan.special
			} else {
				except = s.specialNamespaces(svc, nil, nil)
			}
			classes = append(viewsOf(except, ev.env), genericView)
		}
		for _, v := range classes {
			generic := v.Namespace == ""
			r, _ := ev.viewRule(plan, v, svc)
			dr := r.dr
			for pi, sp := range svc.ports {
				rule, ok := ev.clientRule(v, svc, sp, dr)
				if !ok {
					continue // no cluster, and REGISTRY_ONLY drops the traffic
				}
				for _, subset := range targets(rule) {
					if verdicts != nil && !verdicts.failing(0, pi, subset, rule).any() {
						continue
					}
					g.add(ev.rowFor(svc, sp, subset, rule), v, generic, except)
				}
			}
		}
		g.addZtunnelRows(ev, svc, perView, ztunnelViews)
	}
	return g.sorted(), nil
}

// services lists every service, sorted by host; ServiceEntry services of
// the same host follow the Kubernetes Service, by namespace and name.
func (s *State) services() []*service {
	out := make([]*service, 0, s.servicesByHost.len())
	s.servicesByHost.each(func(_ string, svc *service) bool {
		out = append(out, svc)
		return true
	})
	s.eachEntryService(func(svc *service) { out = append(out, svc) })
	slices.SortFunc(out, func(a, b *service) int {
		return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(boolInt(a.entry != nil), boolInt(b.entry != nil)),
			cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *State) pod(key string) *pod {
	ns, name, _ := strings.Cut(key, "/")
	if n := s.ns(ns); n != nil {
		return n.pods.get(name)
	}
	return nil
}

// FindPod finds a pod by name in a namespace, or else the first pod (by
// name) of the workload that owns pods named name-<suffix>, and returns its
// namespace/name.
func (s *State) FindPod(namespace, name string) (string, bool) {
	n := s.ns(namespace)
	if n == nil {
		return "", false
	}
	if n.pods.get(name) != nil {
		return namespace + "/" + name, true
	}
	best := ""
	n.pods.each(func(pn string, _ *pod) bool {
		if strings.HasPrefix(pn, name+"-") && (best == "" || pn < best) {
			best = pn
		}
		return true
	})
	return namespace + "/" + best, best != ""
}
