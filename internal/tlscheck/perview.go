package tlscheck

import (
	"bufio"
	"slices"

	"github.com/mtlsguard/mtlsguard/policy"
)

// The per-view form: one row per client view and service port, sorted by
// view, then host, port and subset, as policy.Expand sorts. It is the form
// of a single pod, of --namespace and of -A --per-view.

// viewIndex lists, for each client view, the groups it sees, so the rows
// can be written view by view without expanding them all first: it holds
// one int32 per row, not the row.
type viewIndex struct {
	keys   []string // sorted
	views  map[string]policy.ClientView
	groups map[string][]int32 // ascending: the groups' order
}

func (r *report) indexViews() viewIndex {
	ix := viewIndex{views: map[string]policy.ClientView{}, groups: map[string][]int32{}}
	for gi, g := range r.groups {
		if !r.keep(g.Row) {
			continue
		}
		for _, v := range g.Views.List() {
			k := v.Key()
			if _, ok := ix.views[k]; !ok {
				ix.views[k] = v
				ix.keys = append(ix.keys, k)
			}
			ix.groups[k] = append(ix.groups[k], int32(gi))
		}
	}
	slices.Sort(ix.keys)
	return ix
}

// perViewTable prints the table; withClient adds a leading CLIENT
// NAMESPACE column.
func (r *report) perViewTable(w *bufio.Writer, withClient bool) error {
	ix := r.indexViews()
	header := tableHeader
	if withClient {
		header = append([]string{"CLIENT NAMESPACE"}, tableHeader...)
	}
	cols := newColumns(header)
	for _, g := range r.groups {
		if !r.keep(g.Row) {
			continue
		}
		cells := g.Row.Columns()
		for i, c := range cells {
			if withClient {
				i++
			}
			if i < len(cols.widths) {
				cols.fitColumn(i, c)
			}
		}
	}
	if withClient {
		for _, k := range ix.keys {
			cols.fitColumn(0, ix.views[k].String())
		}
	}
	if err := cols.write(w, header...); err != nil {
		return err
	}
	for _, k := range ix.keys {
		for _, gi := range ix.groups[k] {
			cells := r.groups[gi].Row.Columns()
			if withClient {
				cells = append([]string{ix.views[k].String()}, cells...)
			}
			if err := cols.write(w, cells...); err != nil {
				return err
			}
		}
	}
	return nil
}

// perViewJSON prints one JSONRow per client view and row.
func (r *report) perViewJSON(w *bufio.Writer) error {
	ix := r.indexViews()
	a := jsonArray{w: w}
	for _, k := range ix.keys {
		v := ix.views[k]
		for _, gi := range ix.groups[k] {
			if err := a.add(viewRow(r.groups[gi].Row, v, r.clientPod)); err != nil {
				return err
			}
		}
	}
	return a.close()
}
