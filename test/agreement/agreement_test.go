package agreement

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/internal/tlscheck"
	"github.com/mtlsguard/mtlsguard/policy"
)

var (
	seeds        = flag.Int("seeds", 300, "generated scenarios to compare (make conformance uses 2000)")
	ambientSeeds = flag.Int("ambient-seeds", 50, "generated scenarios of the ambient family to compare")
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

	// Two families, two oracle runs: the sidecar family with istiod's
	// defaults, the ambient family with ambient on (oracle -ambient), as an
	// ambient install runs it.
	var files, ambientFiles []string
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
		files = append(files, writeFile(t, dir, base+".yaml", raw))
	}
	for s := 0; s < *seeds; s++ {
		files = append(files, writeFile(t, dir, fmt.Sprintf("seed-%d.yaml", s), Generate(uint64(s))))
	}
	for s := 0; s < *ambientSeeds; s++ {
		ambientFiles = append(ambientFiles, writeFile(t, dir, fmt.Sprintf("ambient-seed-%d.yaml", s), GenerateAmbient(uint64(s))))
	}

	for _, family := range []struct {
		name  string
		files []string
		args  []string
	}{{"sidecar", files, nil}, {"ambient", ambientFiles, []string{"-ambient"}}} {
		out := filepath.Join(dir, "oracle-out-"+family.name)
		cmd := exec.Command(bin, append(append(family.args, "-o", out), family.files...)...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("oracle (%s family): %v\n%s", family.name, err, lastLines(string(msg), 20))
		}
		st := stats{fields: map[string][2]int{}, known: map[string]int{}}
		for _, f := range family.files {
			name := strings.TrimSuffix(filepath.Base(f), ".yaml")
			want, rejected := readOracle(t, filepath.Join(out, name+".json"))
			if len(rejected) > 0 {
				t.Errorf("%s: Istio's validation rejects part of the scenario, fix the generator: %v", name, rejected)
				continue
			}
			st.compare(t, name, want, readEngine(t, f))
		}
		for _, field := range []string{"pairs", "client_sends", "ok", "identity", "san_check", "san_rejected", "sans", "ok_with_rule_sans"} {
			c := st.fields[field]
			t.Logf("%s family: agreement on %-12s %d/%d (%.2f%%)", family.name, field, c[0], c[1], 100*float64(c[0])/float64(max(c[1], 1)))
		}
		for id, n := range st.known {
			t.Logf("%s family: accepted known difference %s: %d pairs", family.name, id, n)
		}
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

func readEngine(t *testing.T, path string) map[pairKey]answer {
	t.Helper()
	var stdout, stderr strings.Builder
	if code := tlscheck.Run(context.Background(), []string{"-f", path, "-A", "--per-view", "-o", "json"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("tls-check %s: exit %d: %s", path, code, stderr.String())
	}
	var rows []tlscheck.JSONRow
	if err := json.Unmarshal([]byte(stdout.String()), &rows); err != nil {
		t.Fatal(err)
	}
	services := serviceHosts(t, path)
	m := map[pairKey]answer{}
	for _, r := range rows {
		if !services[r.Host] {
			continue // a ServiceEntry host: the oracle lists Kubernetes Services only
		}
		for _, client := range r.ClientPods {
			for _, ep := range r.Endpoints {
				m[pairKey{client, r.Host, int(r.Port), r.Subset, ep.Pod}] = answer{ep.ClientSends, ep.OK, ep.Reason, engineIdentity(r, ep)}
			}
		}
	}
	return m
}

type stats struct {
	fields map[string][2]int // agreed, total
	known  map[string]int
}

func (s *stats) count(field string, agreed bool) {
	c := s.fields[field]
	c[1]++
	if agreed {
		c[0]++
	}
	s.fields[field] = c
}

// compare counts agreement per field and reports every disagreement that
// is not a known difference, with the scenario to reproduce it.
func (s *stats) compare(t *testing.T, name string, oracle, engine map[pairKey]answer) {
	t.Helper()
	keys := map[pairKey]bool{}
	for k := range oracle {
		keys[k] = true
	}
	for k := range engine {
		keys[k] = true
	}
	sorted := make([]pairKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].String() < sorted[j].String() })
	reported := 0
	for _, k := range sorted {
		o, inOracle := oracle[k]
		e, inEngine := engine[k]
		s.count("pairs", inOracle && inEngine)
		if !inOracle || !inEngine {
			if reported < 10 {
				t.Errorf("%s: %s: only the %s lists this pair (oracle %+v, engine %+v)", name, k, map[bool]string{true: "oracle", false: "engine"}[inOracle], o, e)
			}
			reported++
			continue
		}
		sendsAgree, okAgree := o.ClientSends == e.ClientSends, o.OK == e.OK
		s.count("client_sends", sendsAgree)
		s.count("ok", okAgree)
		if !s.compareIdentity(o, e, okAgree) && reported < 10 {
			t.Errorf("%s: %s: identity: Istio %+v; engine %+v", name, k, o.identity, e.identity)
			reported++
		}
		if sendsAgree && okAgree {
			continue
		}
		if id := knownDifference(k, o, e); id != "" {
			s.known[id]++
			continue
		}
		if reported < 10 {
			t.Errorf("%s: %s: Istio: sends %s ok=%v (%s); engine: sends %s ok=%v (%s)",
				name, k, o.ClientSends, o.OK, o.Detail, e.ClientSends, e.OK, e.Detail)
		}
		reported++
	}
	if reported > 0 {
		t.Logf("%s: %d disagreements; reproduce with: go run ./test/agreement/gen -seed N > s.yaml (seed scenarios) or the curated cluster.yaml", name, reported)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// serviceHosts are the hosts of a scenario's Kubernetes Services, the only
// ones the oracle enumerates.
func serviceHosts(t *testing.T, path string) map[string]bool {
	t.Helper()
	res, err := load.Paths([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, o := range res.Objects {
		if svc, ok := o.(*corev1.Service); ok && svc.Spec.Type != corev1.ServiceTypeExternalName {
			out[svc.Name+"."+svc.Namespace+".svc."+policy.DefaultMesh().ClusterDomain] = true
		}
	}
	return out
}
