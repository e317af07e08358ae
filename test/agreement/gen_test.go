package agreement

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

// TestGeneratedScenariosLoad proves every generated scenario decodes and
// indexes, and that a seed always gives the same scenario.
func TestGeneratedScenariosLoad(t *testing.T) {
	for _, family := range []struct {
		name     string
		generate func(uint64) []byte
	}{{"sidecar", Generate}, {"ambient", GenerateAmbient}, {"serviceentry", GenerateEntries}} {
		t.Run(family.name, func(t *testing.T) { checkGenerated(t, family.generate) })
	}
}

// TestAmbientScenariosMixDataplanes proves the ambient family has what it
// is for: ambient clients and servers beside sidecar ones.
func TestAmbientScenariosMixDataplanes(t *testing.T) {
	withZtunnel, withCaptured := 0, 0
	for seed := uint64(0); seed < 50; seed++ {
		z, c := false, false
		for _, r := range engineRows(t, GenerateAmbient(seed)) {
			z = z || r.View.Ztunnel
			for _, ep := range r.Endpoints {
				c = c || ep.Dataplane == policy.DataplaneAmbient
			}
		}
		if z {
			withZtunnel++
		}
		if c {
			withCaptured++
		}
	}
	if withZtunnel < 25 || withCaptured < 25 {
		t.Errorf("of 50 ambient scenarios, %d have ztunnel clients and %d captured servers; want most", withZtunnel, withCaptured)
	}
}

func checkGenerated(t *testing.T, generate func(uint64) []byte) {
	for seed := uint64(0); seed < 200; seed++ {
		raw := generate(seed)
		if !bytes.Equal(raw, generate(seed)) {
			t.Fatalf("seed %d: not deterministic", seed)
		}
		var res load.Result
		if err := res.Read("seed", bytes.NewReader(raw)); err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, raw)
		}
		if len(res.Skipped) > 0 {
			t.Fatalf("seed %d: skipped %v", seed, res.Skipped)
		}
		st, err := load.State(res.Objects, policy.DefaultMesh())
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if _, err := st.Table(policy.Query{}); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestEntriesScenariosReachEveryKindOfEndpoint proves the serviceentry
// family has what it is for: rows for entry hosts whose endpoints are
// WorkloadEntries with and without a sidecar, inline endpoints and pods,
// and MESH_EXTERNAL entries beside them.
func TestEntriesScenariosReachEveryKindOfEndpoint(t *testing.T) {
	kinds := map[string]int{}
	for seed := uint64(0); seed < 50; seed++ {
		raw := GenerateEntries(seed)
		if bytes.Contains(raw, []byte(".example.com")) { // the MESH_EXTERNAL entries' hosts
			kinds["external"]++
		}
		seen := map[string]bool{}
		for _, r := range engineRows(t, raw) {
			if !strings.HasSuffix(r.Host, ".internal") {
				continue
			}
			for _, ep := range r.Endpoints {
				switch {
				case strings.HasPrefix(ep.Pod, "WorkloadEntry ") && ep.Sidecar:
					seen["workloadentry with sidecar"] = true
				case strings.HasPrefix(ep.Pod, "WorkloadEntry "):
					seen["workloadentry without sidecar"] = true
				case strings.HasPrefix(ep.Pod, "ServiceEntry "):
					seen["inline endpoint"] = true
				default:
					seen["pod"] = true
				}
			}
		}
		for k := range seen {
			kinds[k]++
		}
	}
	for _, k := range []string{"workloadentry with sidecar", "workloadentry without sidecar", "inline endpoint", "pod", "external"} {
		if kinds[k] < 5 {
			t.Errorf("of 50 serviceentry scenarios, %d have a %s; want more (%v)", kinds[k], k, kinds)
		}
	}
}

// engineRows is the engine's full table, per client view, for a generated
// scenario.
func engineRows(t *testing.T, scenario []byte) []policy.ViewRow {
	t.Helper()
	var res load.Result
	if err := res.Read("seed", bytes.NewReader(scenario)); err != nil {
		t.Fatal(err)
	}
	st, err := load.State(res.Objects, policy.DefaultMesh())
	if err != nil {
		t.Fatal(err)
	}
	groups, err := st.Table(policy.Query{})
	if err != nil {
		t.Fatal(err)
	}
	return policy.Expand(groups)
}
