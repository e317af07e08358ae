package tlscheck

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The page embeds the rows of -A -o json; rows seen by most namespaces name
// the others instead. Read back, every row names the same namespaces.
func TestHTMLEmbedsTheJSONRows(t *testing.T) {
	mesh := filepath.Join(t.TempDir(), "mesh.yaml")
	if _, err := writeBigMesh(mesh, 0.006); err != nil { // 12 namespaces
		t.Fatal(err)
	}
	code, page, errOut := run(t, "", "-f", mesh, "-A", "-o", "html")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, external := range []string{"src=", "href=", "@import", "url("} {
		if strings.Contains(page, external) {
			t.Errorf("the page refers to an external asset (%s)", external)
		}
	}
	_, data, _ := strings.Cut(page, `<script id="tls-check-data" type="application/json">`)
	data, _, _ = strings.Cut(data, "</script>")
	var embedded struct {
		ClientNamespaces []string  `json:"client_namespaces"`
		Rows             []htmlRow `json:"rows"`
	}
	if err := json.Unmarshal([]byte(data), &embedded); err != nil {
		t.Fatalf("embedded data: %v", err)
	}

	code, out, errOut := run(t, "", "-f", mesh, "-A", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rows []JSONGroupRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(embedded.ClientNamespaces) != 12 || len(embedded.Rows) != len(rows) {
		t.Fatalf("page: %d namespaces, %d rows; json: %d rows", len(embedded.ClientNamespaces), len(embedded.Rows), len(rows))
	}
	complements := 0
	for i, r := range embedded.Rows {
		names := r.ClientNamespaces
		if r.ClientNamespaces == nil {
			complements++
			names = difference(embedded.ClientNamespaces, nil)
			names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(r.ClientNamespacesExcept, n) })
		}
		r.ClientNamespaces = names
		got, _ := json.Marshal(r.JSONGroupRow)
		want, _ := json.Marshal(rows[i])
		if string(got) != string(want) {
			t.Errorf("row %d: page\n%s\njson\n%s", i, got, want)
		}
	}
	if complements == 0 {
		t.Error("no row names its namespaces by complement: the case proves nothing")
	}
}

func TestDifference(t *testing.T) {
	all := []string{"a", "b", "c", "d"}
	tests := map[string]struct{ some, want []string }{
		"none taken":  {nil, all},
		"some taken":  {[]string{"b", "d"}, []string{"a", "c"}},
		"all taken":   {all, nil},
		"first, last": {[]string{"a", "d"}, []string{"b", "c"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := difference(all, tc.some); !slices.Equal(got, tc.want) {
				t.Errorf("difference(%v, %v) = %v, want %v", all, tc.some, got, tc.want)
			}
		})
	}
}

// A page without rows (--conflicts-only on a healthy mesh) still holds
// arrays, which its script reads, not null.
func TestHTMLWithoutRows(t *testing.T) {
	code, page, errOut := run(t, "", "-f", deepDive, "-A", "--conflicts-only", "-o", "html")
	if want := `{"client_namespaces":[],"rows":[]}`; code != 0 || !strings.Contains(page, want) {
		t.Errorf("exit %d (%s); the page does not hold %s", code, errOut, want)
	}
}
