package tlscheck

import (
	"bufio"
	"slices"
	"strconv"
	"strings"

	"github.com/mtlsguard/mtlsguard/policy"
)

// The grouped form of -A: one row per service port (or subset) and verdict,
// with the client namespaces that see it. A mesh of 2,000 namespaces has
// 2,000 client views of every service; printing each would repeat the same
// verdict 2,000 times.

var tableHeader = []string{"HOST:PORT", "STATUS", "SERVER", "CLIENT", "AUTHN POLICY", "DESTINATION RULE"}

// maxTextNamespaces is how many client namespaces a grouped text row names
// before it counts the rest.
const maxTextNamespaces = 5

// groupedTable prints the grouped text table. Rows of one target that read
// the same in every column (they differ only in an endpoint's detail) are
// printed once, with their namespaces merged, as the webhook's denial does.
func (r *report) groupedTable(w *bufio.Writer) error {
	header := append(slices.Clone(tableHeader), "CLIENT NAMESPACES")
	cols := newColumns(header)
	for _, g := range r.groups {
		if r.keep(g.Row) {
			cols.fit(g.Row.Columns())
		}
	}
	if err := cols.write(w, header...); err != nil {
		return err
	}
	type merged struct {
		cells      []string
		namespaces []string
	}
	for i := 0; i < len(r.groups); {
		j := i + 1
		for j < len(r.groups) && sameTarget(r.groups[i].Row, r.groups[j].Row) {
			j++
		}
		var rows []merged
	next:
		for _, g := range r.groups[i:j] {
			if !r.keep(g.Row) {
				continue
			}
			cells, ns := g.Row.Columns(), g.Views.Namespaces()
			for k := range rows {
				if slices.Equal(rows[k].cells, cells) {
					rows[k].namespaces = union(rows[k].namespaces, ns)
					continue next
				}
			}
			rows = append(rows, merged{cells, ns})
		}
		for _, m := range rows {
			if err := cols.write(w, append(m.cells, shortList(m.namespaces))...); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// groupedJSON prints one JSONGroupRow per group.
func (r *report) groupedJSON(w *bufio.Writer) error {
	a := jsonArray{w: w}
	for _, g := range r.groups {
		if !r.keep(g.Row) {
			continue
		}
		b, err := marshalGroupRow(groupRow(g, g.Views.Namespaces()))
		if err != nil {
			return err
		}
		if err := a.addMarshaled(b); err != nil {
			return err
		}
	}
	return a.close()
}

func sameTarget(a, b *policy.Row) bool {
	return a.Host == b.Host && a.Port == b.Port && a.Subset == b.Subset
}

// union merges two sorted lists of distinct names. It returns a itself when
// it holds every name of b, the common case when -o html collects every
// namespace from rows that each name most of them.
func union(a, b []string) []string {
	if subset(b, a) {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// subset reports whether every name of b (sorted) is in a (sorted).
func subset(b, a []string) bool {
	for _, n := range b {
		for len(a) > 0 && a[0] < n {
			a = a[1:]
		}
		if len(a) == 0 || a[0] != n {
			return false
		}
		a = a[1:]
	}
	return true
}

// shortList joins names with commas, naming at most maxTextNamespaces:
// "ns-1,ns-2,ns-3,ns-4,ns-5,... (+1995 more)".
func shortList(names []string) string {
	switch {
	case len(names) == 0:
		return "-"
	case len(names) <= maxTextNamespaces:
		return strings.Join(names, ",")
	}
	return strings.Join(names[:maxTextNamespaces], ",") + ",... (+" + strconv.Itoa(len(names)-maxTextNamespaces) + " more)"
}
