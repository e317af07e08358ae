package tlscheck

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"strings"
)

// -o html: one self-contained page (no external assets) with a matrix of
// client namespaces × service namespaces, coloured by the worst status and
// counting rows, that opens into the rows and endpoints behind a cell. The
// page embeds the rows of -A -o json and draws them with an inline script.

//go:embed report.html
var reportPage string

// htmlRow is a JSONGroupRow as the page embeds it. A row that more than half
// of the client namespaces see names the others instead, in
// client_namespaces_except, and leaves client_namespaces null: a mesh-wide
// row of a mesh of 2,000 namespaces would otherwise repeat all their names.
// Rows of ten namespaces or fewer always name them.
type htmlRow struct {
	JSONGroupRow
	ClientNamespacesExcept []string `json:"client_namespaces_except,omitempty"`
}

func (r *report) html(w *bufio.Writer) error {
	head, tail, ok := strings.Cut(reportPage, "{{DATA}}")
	if !ok {
		panic("report.html has no {{DATA}} marker")
	}
	// First pass: every client namespace, for the page's axis and for the
	// complements.
	all := []string{} // [], not null, in the page when no row is kept
	for _, g := range r.groups {
		if r.keep(g.Row) {
			all = union(all, g.Views.Namespaces())
		}
	}

	w.WriteString(head)
	// json.Marshal escapes <, > and &, so no string can close the script
	// element the data sits in.
	b, err := json.Marshal(all)
	if err != nil {
		return err
	}
	w.WriteString(`{"client_namespaces":`)
	w.Write(b)
	w.WriteString(`,"rows":[`)
	first := true
	for _, g := range r.groups {
		if !r.keep(g.Row) {
			continue
		}
		ns := g.Views.Namespaces()
		row := htmlRow{JSONGroupRow: groupRow(g, ns)}
		if len(ns) > 10 && 2*len(ns) > len(all) {
			row.ClientNamespaces, row.ClientNamespacesExcept = nil, difference(all, ns)
		}
		b, err := json.Marshal(row)
		if err != nil {
			return err
		}
		if !first {
			w.WriteByte(',')
		}
		first = false
		w.WriteByte('\n')
		w.Write(b)
	}
	w.WriteString("]}")
	_, err = w.WriteString(tail)
	return err
}

// difference lists the names of all (sorted) that are not in some (sorted,
// a subset of all).
func difference(all, some []string) []string {
	var out []string
	for _, n := range all {
		if len(some) > 0 && some[0] == n {
			some = some[1:]
			continue
		}
		out = append(out, n)
	}
	return out
}
