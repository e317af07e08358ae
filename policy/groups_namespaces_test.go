package policy_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mtlsguard/mtlsguard/policy"
)

// ViewSet.Namespaces reads namespaces, not views; it must name exactly the
// namespaces of the views List returns, for every group of every scenario.
func TestNamespacesAreThoseOfTheListedViews(t *testing.T) {
	dirs, err := os.ReadDir("testdata/scenarios")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		st, _ := loadState(t, filepath.Join("testdata/scenarios", d.Name(), "cluster.yaml"))
		groups, err := st.Table(policy.Query{})
		if err != nil {
			t.Fatalf("%s: %v", d.Name(), err)
		}
		for _, g := range groups {
			var want []string
			for _, v := range g.Views.List() {
				want = append(want, v.Namespace)
			}
			slices.Sort(want) // List sorts by Key: "test2|" before "test|"
			want = slices.Compact(want)
			if got := g.Views.Namespaces(); !slices.Equal(got, want) {
				t.Errorf("%s: %s: Namespaces() = %v, want %v", d.Name(), g.Row.HostPort(), got, want)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no groups checked")
	}
}
