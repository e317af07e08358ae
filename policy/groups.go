package policy

import (
	"cmp"
	"slices"
	"sync"
)

// Group is a row and the client views that share it.
type Group struct {
	Row   *Row
	Views ViewSet
}

// ViewSet is a set of client views. It is kept symbolic ("every client view
// outside these namespaces") until listed, because a mesh-wide row is shared
// by thousands of namespaces.
type ViewSet struct {
	explicit []ClientView
	others   bool
	except   map[string]bool
	// ztunnel adds every ambient client view: ztunnel clients all see the
	// same row.
	ztunnel bool
	st      *State
	// names lists, sorted, the namespaces that have views: the groups of
	// one Table share it, so that Namespaces need not sort thousands of
	// names for every row. nil: read st.
	names *namespaceList
}

// namespaceList is the sorted namespaces that have views, listed when
// first asked for. Most tables never ask: the audit counts the clients of a
// mesh-wide row without listing them, and listing 2,000 namespaces for
// every service it recomputed was a tenth of its work.
type namespaceList struct {
	once  sync.Once
	st    *State
	names []string
}

func (l *namespaceList) get() []string {
	l.once.Do(func() { l.names = l.st.viewNamespaces() })
	return l.names
}

// List returns the views, sorted by namespace then selectors.
func (v ViewSet) List() []ClientView {
	out := slices.Clone(v.explicit)
	if v.others {
		v.st.namespaces.each(func(name string, n *namespace) bool {
			if !v.except[name] {
				out = append(out, n.views...)
			}
			return true
		})
	}
	if v.ztunnel {
		out = append(out, v.st.allZtunnelViews()...)
	}
	slices.SortFunc(out, func(a, b ClientView) int { return cmp.Compare(a.Key(), b.Key()) })
	return out
}

// Len counts the views.
func (v ViewSet) Len() int {
	n := len(v.explicit)
	if v.others {
		n += v.st.totalViews
		for name := range v.except {
			if ns := v.st.ns(name); ns != nil {
				n -= len(ns.views)
			}
		}
	}
	if v.ztunnel {
		n += v.st.totalZtunnelViews
	}
	return n
}

// Namespaces lists the distinct client namespaces, sorted. It reads the
// namespaces, not their views: tls-check -A asks this of every row, and
// listing a mesh-wide set's views sorts thousands of them by Key, which
// allocates in every comparison.
func (v ViewSet) Namespaces() []string {
	explicit := make([]string, 0, len(v.explicit))
	for _, cv := range v.explicit {
		explicit = append(explicit, cv.Namespace)
	}
	if v.ztunnel {
		for _, cv := range v.st.allZtunnelViews() {
			explicit = append(explicit, cv.Namespace)
		}
	}
	slices.Sort(explicit)
	explicit = slices.Compact(explicit)
	if !v.others {
		return explicit
	}
	var names []string
	if v.names != nil {
		names = v.names.get()
	} else {
		names = v.st.viewNamespaces()
	}
	// Walk the sorted names beside the few sorted exceptions: a map lookup
	// per name was most of the cost at 2,000 namespaces.
	except := make([]string, 0, len(v.except))
	for name, ex := range v.except {
		if ex {
			except = append(except, name)
		}
	}
	slices.Sort(except)
	others := make([]string, 0, max(0, len(names)-len(except)))
	for _, name := range names {
		for len(except) > 0 && except[0] < name {
			except = except[1:]
		}
		if len(except) > 0 && except[0] == name {
			continue
		}
		others = append(others, name)
	}
	if len(explicit) == 0 {
		return others
	}
	out := make([]string, 0, len(explicit)+len(others))
	for len(explicit) > 0 && len(others) > 0 {
		switch {
		case explicit[0] < others[0]:
			out, explicit = append(out, explicit[0]), explicit[1:]
		case others[0] < explicit[0]:
			out, others = append(out, others[0]), others[1:]
		default:
			out, explicit, others = append(out, explicit[0]), explicit[1:], others[1:]
		}
	}
	return append(append(out, explicit...), others...)
}

// viewNamespaces lists, sorted, the namespaces that have client views.
func (s *State) viewNamespaces() []string {
	out := make([]string, 0, s.namespaces.len())
	s.namespaces.each(func(name string, n *namespace) bool {
		if len(n.views) > 0 {
			out = append(out, name)
		}
		return true
	})
	slices.Sort(out)
	return out
}

// grouper collects rows by identity: the engine memoizes rows per
// (service port, subset, rule), so views that share a row share a pointer.
type grouper struct {
	st     *State
	groups map[*Row]*Group
	// conflictsOnly drops the rows that are OK (Query.Conflicts).
	conflictsOnly bool
}

// group is r's group, nil when the grouper drops r.
func (g *grouper) group(r *Row) *Group {
	if g.conflictsOnly && r.Status != Conflict {
		return nil
	}
	grp, ok := g.groups[r]
	if !ok {
		grp = &Group{Row: r, Views: ViewSet{st: g.st}}
		g.groups[r] = grp
	}
	return grp
}

func newGrouper(st *State) *grouper { return &grouper{st: st, groups: map[*Row]*Group{}} }

func (g *grouper) add(r *Row, v ClientView, generic bool, except map[string]bool) {
	grp := g.group(r)
	if grp == nil {
		return
	}
	if generic {
		grp.Views.others = true
		grp.Views.except = except
		return
	}
	grp.Views.explicit = append(grp.Views.explicit, v)
}

// sorted returns the non-empty groups by host, port, subset, then first
// view. Groups whose rows read the same are merged: the same rule can reach
// a client through more than one index entry (its own namespace's and the
// exported one), which yields equal rows at different addresses.
func (g *grouper) sorted() []Group {
	type target struct {
		host, subset string
		port         int32
	}
	// Only rows of the same target can read the same; compare their
	// content only where a target has several groups.
	byTarget := map[target][]*Group{}
	for _, grp := range g.groups {
		if grp.Views.Len() == 0 {
			continue
		}
		t := target{grp.Row.Host, grp.Row.Subset, grp.Row.Port}
		byTarget[t] = append(byTarget[t], grp)
	}
	type sortable struct {
		*Group
		first string
	}
	out := make([]sortable, 0, len(g.groups))
	names := &namespaceList{st: g.st}
	for _, grp := range g.groups {
		grp.Views.names = names
	}
	for _, grps := range byTarget {
		if len(grps) == 1 {
			out = append(out, sortable{grps[0], firstKey(grps[0].Views)})
			continue
		}
		var merged []*Group
	next:
		for _, grp := range grps {
			for _, prev := range merged {
				if prev.Row.sameContent(grp.Row) {
					prev.Views.explicit = append(prev.Views.explicit, grp.Views.explicit...)
					if grp.Views.others {
						prev.Views.others, prev.Views.except = true, grp.Views.except
					}
					prev.Views.ztunnel = prev.Views.ztunnel || grp.Views.ztunnel
					continue next
				}
			}
			c := *grp
			c.Views.explicit = slices.Clone(grp.Views.explicit)
			merged = append(merged, &c)
		}
		for _, grp := range merged {
			out = append(out, sortable{grp, firstKey(grp.Views)})
		}
	}
	slices.SortFunc(out, func(a, b sortable) int {
		// cmp.Or would compare the rows' content on every comparison: its
		// arguments are all evaluated.
		if c := cmp.Or(
			cmp.Compare(a.Row.Host, b.Row.Host),
			cmp.Compare(a.Row.Port, b.Row.Port),
			cmp.Compare(a.Row.Subset, b.Row.Subset),
			cmp.Compare(a.first, b.first),
		); c != 0 {
			return c
		}
		return compareContent(a.Row, b.Row) // services of one host (ServiceEntries)
	})
	groups := make([]Group, len(out))
	for i, grp := range out {
		groups[i] = *grp.Group
	}
	return groups
}

func firstKey(v ViewSet) string {
	if len(v.explicit) > 0 {
		k := v.explicit[0].Key()
		for _, cv := range v.explicit[1:] {
			k = min(k, cv.Key())
		}
		return k
	}
	return "~" // symbolic sets sort last
}

// compareContent orders rows of the same target by what they say, so that
// rows of several services of one host list in a stable order.
func compareContent(a, b *Row) int {
	if a == b {
		return 0
	}
	return cmp.Or(
		cmp.Compare(a.Status, b.Status), cmp.Compare(a.Server, b.Server), cmp.Compare(a.ClientColumn, b.ClientColumn),
		cmp.Compare(a.AuthnPolicy, b.AuthnPolicy), cmp.Compare(a.DestinationRule, b.DestinationRule),
		slices.CompareFunc(a.Endpoints, b.Endpoints, func(x, y Endpoint) int { return cmp.Compare(x.Pod, y.Pod) }),
	)
}
