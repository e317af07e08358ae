package policy

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// ViewRow is a Row as one client view sees it.
type ViewRow struct {
	View ClientView
	*Row
}

// Expand lists a row per client view, sorted by view, host, port, subset.
func Expand(groups []Group) []ViewRow {
	var out []ViewRow
	for _, g := range groups {
		for _, v := range g.Views.List() {
			out = append(out, ViewRow{View: v, Row: g.Row})
		}
	}
	slices.SortStableFunc(out, func(a, b ViewRow) int {
		return cmp.Or(
			cmp.Compare(a.View.Key(), b.View.Key()),
			cmp.Compare(a.Host, b.Host),
			cmp.Compare(a.Port, b.Port),
			cmp.Compare(a.Subset, b.Subset),
		)
	})
	return out
}

// Columns are the table's columns after HOST:PORT, in the old
// istioctl authn tls-check order.
func (r *Row) Columns() []string {
	return []string{r.HostPort(), r.Status.String(), r.Server, r.ClientColumn, r.AuthnPolicy, r.DestinationRule}
}

// WriteTable prints rows the way istioctl authn tls-check did: a tabwriter
// with padding 5. withClient adds a leading CLIENT NAMESPACE column.
func WriteTable(w io.Writer, rows []ViewRow, withClient bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	header := "HOST:PORT\tSTATUS\tSERVER\tCLIENT\tAUTHN POLICY\tDESTINATION RULE"
	if withClient {
		header = "CLIENT NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		c := r.Columns()
		if withClient {
			fmt.Fprintf(tw, "%s\t", r.View.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c[0], c[1], c[2], c[3], c[4], c[5])
	}
	return tw.Flush()
}
