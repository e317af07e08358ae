package agreement

import (
	"bytes"
	"testing"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

// TestGeneratedScenariosLoad proves every generated scenario decodes and
// indexes, and that a seed always gives the same scenario.
func TestGeneratedScenariosLoad(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		raw := Generate(seed)
		if !bytes.Equal(raw, Generate(seed)) {
			t.Fatalf("seed %d: not deterministic", seed)
		}
		var res load.Result
		if err := res.Read("seed", bytes.NewReader(raw)); err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, raw)
		}
		if len(res.Skipped) > 0 {
			t.Fatalf("seed %d: skipped %v", seed, res.Skipped)
		}
		snap, err := load.Snapshot(res.Objects, policy.DefaultMesh())
		if err != nil {
			t.Fatal(err)
		}
		st, err := policy.NewState(snap)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if _, err := st.Table(policy.Query{}); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}
