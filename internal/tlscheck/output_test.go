package tlscheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

// manyNamespaces is the Deep-Dive with seven more client namespaces; two of
// them (ns-3, and the app=special clients of ns-4) disable TLS to httpbin,
// and every client's mTLS breaks ns-5's legacy service, which has no sidecar.
var manyNamespaces = []string{"-f", deepDive, "-f", "testdata/namespaces.yaml"}

func TestAllNamespacesGroupsClientNamespaces(t *testing.T) {
	const want = `HOST:PORT                                  STATUS       SERVER     CLIENT     AUTHN POLICY             DESTINATION RULE         CLIENT NAMESPACES
httpbin.default.svc.cluster.local:8000     OK           mTLS       mTLS       default/istio-system     default/istio-system     default,ns-1,ns-2,ns-5,ns-6,... (+1 more)
httpbin.default.svc.cluster.local:8000     CONFLICT     mTLS       HTTP       default/istio-system     plain/ns-3               ns-3
httpbin.default.svc.cluster.local:8000     OK           mTLS       AUTO       default/istio-system     -                        ns-4
httpbin.default.svc.cluster.local:8000     CONFLICT     mTLS       HTTP       default/istio-system     special/ns-4             ns-4
legacy.ns-5.svc.cluster.local:8080         CONFLICT     HTTP       mTLS       -                        default/istio-system     default,ns-1,ns-2,ns-3,ns-4,... (+3 more)
sleep.default.svc.cluster.local:80         OK           mTLS       mTLS       default/istio-system     default/istio-system     default,ns-1,ns-2,ns-3,ns-4,... (+3 more)
web.ns-2.svc.cluster.local:80              OK           mTLS       mTLS       default/istio-system     default/istio-system     default,ns-1,ns-2,ns-3,ns-4,... (+3 more)
`
	code, out, errOut := run(t, "", append(manyNamespaces, "-A")...)
	if code != 0 || out != want {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, errOut)
	}
}

// The per-view forms print what policy.Expand and policy.WriteTable print,
// and the JSON the former whole-document encoder wrote: streaming changed
// how, not what.
func TestPerViewFormsAreTheExpandedTable(t *testing.T) {
	res, err := load.Paths([]string{deepDive, "testdata/namespaces.yaml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := load.State(res.Objects, policy.DefaultMesh())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args       []string
		query      policy.Query
		withClient bool
	}{
		"-A --per-view":   {args: []string{"-A", "--per-view"}, withClient: true},
		"--namespace":     {args: []string{"-n", "ns-4"}, query: policy.Query{Namespace: "ns-4"}},
		"one pod":         {args: []string{"special-1.ns-4"}, query: policy.Query{Pod: "ns-4/special-1"}},
		"one pod, a host": {args: []string{"client-1.ns-3", "httpbin.default"}, query: policy.Query{Pod: "ns-3/client-1", Host: "httpbin.default.svc.cluster.local"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			groups, err := st.Table(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			rows := policy.Expand(groups)
			var table bytes.Buffer
			if err := policy.WriteTable(&table, rows, tc.withClient); err != nil {
				t.Fatal(err)
			}
			jsonRows := make([]JSONRow, 0, len(rows))
			for _, r := range rows {
				jsonRows = append(jsonRows, viewRow(r.Row, r.View, tc.query.Pod))
			}
			var doc bytes.Buffer
			enc := json.NewEncoder(&doc)
			enc.SetIndent("", "  ")
			if err := enc.Encode(jsonRows); err != nil {
				t.Fatal(err)
			}
			if len(rows) == 0 {
				t.Fatal("no rows: the case proves nothing")
			}

			code, out, errOut := run(t, "", append(manyNamespaces, tc.args...)...)
			if code != 0 || out != table.String() {
				t.Errorf("table: exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, table.String(), errOut)
			}
			code, out, errOut = run(t, "", append(manyNamespaces, append(tc.args, "-o", "json")...)...)
			if code != 0 || out != doc.String() {
				t.Errorf("json: exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, doc.String(), errOut)
			}
		})
	}
}

// Every grouped JSON row, taken once per client namespace it names, is a
// per-view row: the two forms hold the same verdicts.
func TestGroupedJSONExpandsToThePerViewRows(t *testing.T) {
	type verdict struct {
		namespace, host, subset, status, rule, endpoints string
		port                                             int32
	}
	endpoints := func(eps []JSONEndpoint) string { return fmt.Sprint(eps) }

	code, out, errOut := run(t, "", append(manyNamespaces, "-A", "-o", "json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var grouped []JSONGroupRow
	if err := json.Unmarshal([]byte(out), &grouped); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"client_namespaces"`) && !strings.HasSuffix(line, "]") {
			t.Errorf("client namespaces not on one line: %s", line)
		}
	}
	fromGroups := map[verdict]bool{}
	views := 0
	for _, g := range grouped {
		if len(g.ClientNamespaces) == 0 || g.ClientViews < len(g.ClientNamespaces) {
			t.Errorf("row %s:%d names %d namespaces for %d views", g.Host, g.Port, len(g.ClientNamespaces), g.ClientViews)
		}
		views += g.ClientViews
		for _, ns := range g.ClientNamespaces {
			fromGroups[verdict{ns, g.Host, g.Subset, g.Status, g.DestinationRule, endpoints(g.Endpoints), g.Port}] = true
		}
	}

	code, out, errOut = run(t, "", append(manyNamespaces, "-A", "--per-view", "-o", "json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var perView []JSONRow
	if err := json.Unmarshal([]byte(out), &perView); err != nil {
		t.Fatal(err)
	}
	fromViews := map[verdict]bool{}
	for _, r := range perView {
		fromViews[verdict{r.ClientNamespace, r.Host, r.Subset, r.Status, r.DestinationRule, endpoints(r.Endpoints), r.Port}] = true
	}
	if views != len(perView) || len(fromGroups) != len(fromViews) {
		t.Errorf("grouped rows count %d views and %d verdicts; per-view has %d rows and %d verdicts", views, len(fromGroups), len(perView), len(fromViews))
	}
	for v := range fromViews {
		if !fromGroups[v] {
			t.Errorf("per-view row %+v is in no grouped row", v)
		}
	}
}

func TestConflictsOnly(t *testing.T) {
	tests := map[string]struct {
		args     []string
		wantRows int // CONFLICT rows; and no other row
	}{
		"grouped table":   {args: []string{"-A"}, wantRows: 3},
		"per-view table":  {args: []string{"-A", "--per-view"}, wantRows: 11},
		"namespace table": {args: []string{"-n", "ns-3"}, wantRows: 2},
		"pod, all OK":     {args: []string{"client-1.ns-1", "httpbin.default"}, wantRows: 0},
		"grouped json":    {args: []string{"-A", "-o", "json"}, wantRows: 3},
		"per-view json":   {args: []string{"-A", "--per-view", "-o", "json"}, wantRows: 11},
		"pod json":        {args: []string{"special-1.ns-4", "-o", "json"}, wantRows: 2},
		"pod json, OK":    {args: []string{"client-1.ns-4", "httpbin.default", "-o", "json"}, wantRows: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, "", append(manyNamespaces, append(tc.args, "--conflicts-only", "--exit-code")...)...)
			wantCode := ExitOK
			if tc.wantRows > 0 {
				wantCode = ExitConflict
			}
			if code != wantCode {
				t.Fatalf("exit %d, want %d: %s", code, wantCode, errOut)
			}
			var statuses []string
			if slices.Contains(tc.args, "json") {
				var rows []struct{ Status string }
				if err := json.Unmarshal([]byte(out), &rows); err != nil {
					t.Fatalf("%v in\n%s", err, out)
				}
				for _, r := range rows {
					statuses = append(statuses, r.Status)
				}
			} else {
				lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				if !strings.Contains(lines[0], "HOST:PORT") {
					t.Fatalf("no header:\n%s", out)
				}
				for _, l := range lines[1:] {
					statuses = append(statuses, strings.Fields(l)[statusField(lines[0])])
				}
			}
			if len(statuses) != tc.wantRows || slices.ContainsFunc(statuses, func(s string) bool { return s != "CONFLICT" }) {
				t.Errorf("statuses %v, want %d CONFLICT rows; output:\n%s", statuses, tc.wantRows, out)
			}
		})
	}
}

// statusField is the index of STATUS among a data row's fields: after
// HOST:PORT, and after CLIENT NAMESPACE when the table has that column.
func statusField(header string) int {
	if strings.HasPrefix(header, "CLIENT NAMESPACE ") {
		return 2
	}
	return 1
}

func TestShortList(t *testing.T) {
	tests := map[string]struct {
		names []string
		want  string
	}{
		"none":          {nil, "-"},
		"one":           {[]string{"a"}, "a"},
		"five, in full": {[]string{"a", "b", "c", "d", "e"}, "a,b,c,d,e"},
		"six, counted":  {[]string{"a", "b", "c", "d", "e", "f"}, "a,b,c,d,e,... (+1 more)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := shortList(tc.names); got != tc.want {
				t.Errorf("shortList(%v) = %q, want %q", tc.names, got, tc.want)
			}
		})
	}
}

func TestUnion(t *testing.T) {
	tests := map[string]struct{ a, b, want []string }{
		"empty":          {nil, nil, nil},
		"into empty":     {nil, []string{"a", "c"}, []string{"a", "c"}},
		"b within a":     {[]string{"a", "b", "c"}, []string{"a", "c"}, []string{"a", "b", "c"}},
		"interleaved":    {[]string{"a", "c"}, []string{"b", "d"}, []string{"a", "b", "c", "d"}},
		"shared and not": {[]string{"b", "c"}, []string{"a", "c"}, []string{"a", "b", "c"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := union(tc.a, tc.b); !slices.Equal(got, tc.want) {
				t.Errorf("union(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}
