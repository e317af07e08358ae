package agreement

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtlsguard/mtlsguard/internal/tlscheck"
)

var (
	seeds        = flag.Int("seeds", 300, "generated scenarios to compare (make conformance uses 2000)")
	ambientSeeds = flag.Int("ambient-seeds", 50, "generated scenarios of the ambient family to compare")
	entrySeeds   = flag.Int("entry-seeds", 30, "generated scenarios of the serviceentry family to compare (make conformance uses 500)")
	// make test and make conformance build the oracle once into bin/ (the
	// Istio build is the slow part) and pass it through MTLSGUARD_ORACLE.
	oracle = flag.String("oracle", os.Getenv("MTLSGUARD_ORACLE"), "a prebuilt oracle binary (default $MTLSGUARD_ORACLE); empty: build test/conformance/cmd/oracle")
)

// pairKey is one (client pod, service port or subset, server pod).
type pairKey struct {
	Client, Host string
	Port         int
	Subset       string
	Server       string
}

func (k pairKey) String() string {
	h := k.Host
	if k.Subset != "" {
		h += "|" + k.Subset
	}
	return fmt.Sprintf("%s -> %s:%d => %s", k.Client, h, k.Port, k.Server)
}

type answer struct {
	ClientSends string
	OK          bool
	Detail      string
	identity    // agreement_identity_test.go
}

type oracleOut struct {
	Pairs []struct {
		ClientPod   string `json:"client_pod"`
		Host        string `json:"host"`
		Port        int    `json:"port"`
		Subset      string `json:"subset"`
		ServerPod   string `json:"server_pod"`
		ClientSends string `json:"client_sends"`
		OK          bool   `json:"ok"`
		Detail      string `json:"detail"`
		oracleIdentity
	} `json:"pairs"`
	Rejected []string `json:"rejected"`
}

// TestAgreement runs the engine (through tls-check -A --per-view -o json) and Istio's
// control plane (the oracle) on the curated scenarios of policy/testdata and
// on generated ones, and fails on every disagreement that
// test/conformance/KNOWN_DIFFERENCES.md does not list.
func TestAgreement(t *testing.T) {
	dir := t.TempDir()
	bin := *oracle
	if bin == "" {
		bin = filepath.Join(dir, "oracle")
		build := exec.Command("go", "build", "-o", bin, "./cmd/oracle")
		build.Dir = "../conformance"
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the oracle (test/conformance): %v\n%s", err, out)
		}
	}

	// Three families, three oracle runs: the sidecar family with istiod's
	// defaults, the ambient family with ambient on (oracle -ambient), as an
	// ambient install runs it, and the serviceentry family (curated se-*
	// scenarios and GenerateEntries seeds) with istiod's defaults.
	var files, ambientFiles, entryFiles []string
	curated, err := filepath.Glob("../../policy/testdata/scenarios/*/cluster.yaml")
	if err != nil || len(curated) == 0 {
		t.Fatalf("no curated scenarios: %v", err)
	}
	for _, c := range curated {
		base := filepath.Base(filepath.Dir(c))
		if strings.HasPrefix(base, "ambient-waypoint") {
			// The oracle builds no waypoint (it would need a Gateway): see
			// "Ambient" in test/conformance/KNOWN_DIFFERENCES.md.
			continue
		}
		raw, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(base, "ambient-") {
			ambientFiles = append(ambientFiles, writeFile(t, dir, base+".yaml", raw))
			continue
		}
		if strings.HasPrefix(base, "se-") {
			entryFiles = append(entryFiles, writeFile(t, dir, base+".yaml", raw))
			continue
		}
		files = append(files, writeFile(t, dir, base+".yaml", raw))
	}
	for s := 0; s < *seeds; s++ {
		files = append(files, writeFile(t, dir, fmt.Sprintf("seed-%d.yaml", s), Generate(uint64(s))))
	}
	for s := 0; s < *ambientSeeds; s++ {
		ambientFiles = append(ambientFiles, writeFile(t, dir, fmt.Sprintf("ambient-seed-%d.yaml", s), GenerateAmbient(uint64(s))))
	}
	for s := 0; s < *entrySeeds; s++ {
		entryFiles = append(entryFiles, writeFile(t, dir, fmt.Sprintf("entry-seed-%d.yaml", s), GenerateEntries(uint64(s))))
	}

	for _, family := range []struct {
		name  string
		files []string
		args  []string
	}{{"sidecar", files, nil}, {"ambient", ambientFiles, []string{"-ambient"}}, {"serviceentry", entryFiles, nil}} {
		out := filepath.Join(dir, "oracle-out-"+family.name)
		cmd := exec.Command(bin, append(append(family.args, "-o", out), family.files...)...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("oracle (%s family): %v\n%s", family.name, err, lastLines(string(msg), 20))
		}
		st := newStats(family.name)
		for _, f := range family.files {
			name := strings.TrimSuffix(filepath.Base(f), ".yaml")
			want, rejected := readOracle(t, filepath.Join(out, name+".json"))
			if len(rejected) > 0 {
				t.Errorf("%s: Istio's validation rejects part of the scenario, fix the generator: %v", name, rejected)
				continue
			}
			sc := readScenario(t, f)
			st.compare(t, name, want, sc.engine(t, f), sc.scoped)
		}
		st.log(t)
	}
}

func writeFile(t *testing.T, dir, name string, raw []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readOracle(t *testing.T, path string) (map[pairKey]answer, []string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var o oracleOut
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m := map[pairKey]answer{}
	for _, p := range o.Pairs {
		m[pairKey{p.ClientPod, p.Host, p.Port, p.Subset, p.ServerPod}] = answer{p.ClientSends, p.OK, p.Detail, p.oracleIdentity.identity()}
	}
	return m, o.Rejected
}

// engine runs tls-check on the scenario at path and lists its pairs for
// the hosts the oracle enumerates: Kubernetes Services and MESH_INTERNAL
// ServiceEntries. A row for a MESH_EXTERNAL entry's host is an error: the
// engine reports none (they are outside the mesh's policies).
func (sc scenario) engine(t *testing.T, path string) map[pairKey]answer {
	t.Helper()
	var stdout, stderr strings.Builder
	if code := tlscheck.Run(context.Background(), []string{"-f", path, "-A", "--per-view", "-o", "json"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("tls-check %s: exit %d: %s", path, code, stderr.String())
	}
	var rows []tlscheck.JSONRow
	if err := json.Unmarshal([]byte(stdout.String()), &rows); err != nil {
		t.Fatal(err)
	}
	m := map[pairKey]answer{}
	for _, r := range rows {
		if sc.external[r.Host] {
			t.Errorf("%s: the engine reports a row for %s:%d, a MESH_EXTERNAL ServiceEntry's host", filepath.Base(path), r.Host, r.Port)
		}
		if !sc.hosts[r.Host] {
			continue
		}
		for _, client := range r.ClientPods {
			for _, ep := range r.Endpoints {
				m[pairKey{client, r.Host, int(r.Port), r.Subset, ep.Pod}] = answer{ep.ClientSends, ep.OK, ep.Reason, engineIdentity(r, ep)}
			}
		}
	}
	return m
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
