package policy

import "slices"

// genericView stands for every client namespace that has no rule of its own
// for a host and is not named in the exportTo of the rules that could apply:
// such clients all resolve the same DestinationRule.
var genericView = ClientView{}

type rowKey struct {
	svc    *service
	port   int32
	subset string
	dr     *mergedRule
}

// evaluator memoizes rows of one env.
type evaluator struct {
	*env
	rows map[rowKey]*Row
}

func newEvaluator(e *env) *evaluator { return &evaluator{env: e, rows: map[rowKey]*Row{}} }

func (ev *evaluator) rowFor(svc *service, sp servicePort, subset string, dr *mergedRule) *Row {
	k := rowKey{svc, sp.port, subset, dr}
	if r, ok := ev.rows[k]; ok {
		return r
	}
	r := ev.row(svc, sp, subset, dr)
	ev.rows[k] = r
	return r
}

// targets lists the subsets a client has clusters for: "" (the service)
// and every subset of its rule.
func targets(dr *mergedRule) []string {
	out := []string{""}
	if dr != nil {
		for _, s := range dr.subsets {
			out = append(out, s.GetName())
		}
	}
	return out
}

// specialNamespaces are the client namespaces that may resolve a rule for
// svc differently from genericView: the service and root namespaces, those
// with rules for its host or any wildcard host, those named in exportTo of
// the service and root namespaces' rules, and extra. It fills and returns
// out, a new map when out is nil.
func (s *State) specialNamespaces(svc *service, extra []string, out map[string]bool) map[string]bool {
	if out == nil {
		out = map[string]bool{}
	}
	clear(out)
	out[svc.namespace], out[s.mesh.RootNamespace] = true, true
	for ns := range s.drHosts.of(svc.host) {
		out[ns] = true
	}
	for ns := range s.drNamespaceWide.of(svc.namespace) {
		out[ns] = true
	}
	for w, namespaces := range s.drWildcards {
		if hostMatches(w, svc.host) {
			for ns := range namespaces {
				out[ns] = true
			}
		}
	}
	for ns := range s.exportNamed.of(svc.namespace) {
		out[ns] = true
	}
	for ns := range s.exportNamed.of(s.mesh.RootNamespace) {
		out[ns] = true
	}
	for _, ns := range extra {
		out[ns] = true
	}
	s.scopingNamespaces(svc, out)
	return out
}

// viewsOf lists the client views of the special namespaces, as any of envs
// sees them (a workloadSelector write changes how a namespace splits).
func viewsOf(special map[string]bool, envs ...*env) []ClientView {
	seen := map[string]bool{}
	var out []ClientView
	for ns := range special {
		for _, e := range envs {
			for _, v := range e.views(ns) {
				if !seen[v.Key()] {
					seen[v.Key()] = true
					out = append(out, v)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b ClientView) int {
		if a.Key() < b.Key() {
			return -1
		}
		return 1
	})
	return out
}
