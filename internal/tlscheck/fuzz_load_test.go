package tlscheck

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

// where is how every loader message about fuzz.yaml starts.
var where = regexp.MustCompile(`^fuzz\.yaml: document \d+: `)

// FuzzLoad feeds arbitrary bytes to tls-check's YAML loader as a file.
// Properties: no panic; an error names the file and the document; what
// loads without error builds a state and a table without error (the loader
// checks everything the engine would reject, so that errors name the file
// and document); skipped documents and warnings name them too.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../../examples/*/*.yaml")
	for _, s := range seeds {
		raw, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, in := range badInputs {
		if in.yaml != "" {
			f.Add([]byte(in.yaml))
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- 5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var res load.Result
		if err := res.Read("fuzz.yaml", bytes.NewReader(data)); err != nil {
			if !where.MatchString(err.Error()) {
				t.Fatalf("error does not name the file and document: %v", err)
			}
			return
		}
		for _, s := range append(res.Skipped, res.Warnings...) {
			if !where.MatchString(s) {
				t.Fatalf("message does not name the file and document: %s", s)
			}
		}
		st, err := load.State(res.Objects, policy.DefaultMesh())
		if err != nil {
			t.Fatalf("loaded, but the engine rejects it: %v", err)
		}
		if _, err := st.Table(policy.Query{}); err != nil {
			t.Fatalf("loaded, but no table: %v", err)
		}
	})
}
