package oracle_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/mtlsguard/mtlsguard/test/conformance/oracle"
)

type want struct {
	client, host string
	port         int
	subset       string
	server       string
	sends        string
	ok           bool
}

const (
	httpbinDefault = "httpbin.default.svc.cluster.local"
	sleepDefault   = "sleep.default.svc.cluster.local"
	webDefault     = "web.default.svc.cluster.local"
)

// expectations per testdata scenario. Every listed pair must be present with
// the given answer; pairs not listed are only checked for consistency.
var expectations = map[string]struct {
	pairs    int // total number of pairs, -1 = don't check
	expected []want
}{
	"deep-dive.yaml": {pairs: 4, expected: []want{
		{"default/sleep-xxx", httpbinDefault, 8000, "", "default/httpbin-xxx", oracle.IstioMutual, true},
		{"default/sleep-xxx", sleepDefault, 80, "", "default/sleep-xxx", oracle.IstioMutual, true},
		{"default/httpbin-xxx", sleepDefault, 80, "", "default/sleep-xxx", oracle.IstioMutual, true},
	}},
	"deep-dive-bad-rule.yaml": {pairs: 4, expected: []want{
		{"default/sleep-xxx", httpbinDefault, 8000, "", "default/httpbin-xxx", oracle.Plaintext, false},
		{"default/httpbin-xxx", httpbinDefault, 8000, "", "default/httpbin-xxx", oracle.Plaintext, false},
		{"default/sleep-xxx", sleepDefault, 80, "", "default/sleep-xxx", oracle.IstioMutual, true},
	}},
	"auto-mtls-workload-disable.yaml": {pairs: 4, expected: []want{
		{"default/sleep-1", httpbinDefault, 8000, "", "default/httpbin-1", oracle.Plaintext, true},
		{"default/sleep-1", sleepDefault, 80, "", "default/sleep-1", oracle.IstioMutual, true},
	}},
	"mesh-disable-workload-strict.yaml": {pairs: 4, expected: []want{
		{"default/sleep-1", httpbinDefault, 8000, "", "default/httpbin-1", oracle.Plaintext, false},
		{"default/sleep-1", sleepDefault, 80, "", "default/sleep-1", oracle.Plaintext, true},
	}},
	"no-sidecar-server-istio-mutual.yaml": {pairs: 2, expected: []want{
		{"default/sleep-1", "httpbin.legacy.svc.cluster.local", 8000, "", "legacy/httpbin-1", oracle.IstioMutual, false},
		{"default/sleep-1", sleepDefault, 80, "", "default/sleep-1", oracle.IstioMutual, true},
	}},
	"headless-mixed.yaml": {pairs: 6, expected: []want{
		{"default/sleep-1", "db.default.svc.cluster.local", 5432, "", "default/db-0", oracle.Plaintext, true},
		{"default/sleep-1", "db.default.svc.cluster.local", 5432, "", "default/db-1", oracle.Plaintext, true},
		{"default/db-0", "db.default.svc.cluster.local", 5432, "", "default/db-0", oracle.Plaintext, true},
		{"default/db-0", "db.default.svc.cluster.local", 5432, "", "default/db-1", oracle.Plaintext, true},
		{"default/sleep-1", sleepDefault, 80, "", "default/sleep-1", oracle.IstioMutual, true},
	}},
	"port-level-dr.yaml": {pairs: 10, expected: []want{
		{"default/sleep-1", webDefault, 8000, "", "default/web-1", oracle.IstioMutual, true},
		{"default/sleep-1", webDefault, 9000, "", "default/web-1", oracle.Plaintext, false},
		// Port-level entry without tls: the cluster is auto mTLS (transport_socket_matches)
		// but the EDS mtls checker falls back to the top-level DISABLE, so the endpoint
		// loses tlsMode=istio and the default (plaintext) match is used.
		{"default/sleep-1", webDefault, 7000, "", "default/web-1", oracle.Plaintext, false},
		{"default/sleep-1", webDefault, 9443, "", "default/web-1", oracle.SimpleTLS, false},
	}},
	"subset-dr-tls.yaml": {pairs: 10, expected: []want{
		{"default/sleep-1", httpbinDefault, 8000, "", "default/httpbin-v1", oracle.IstioMutual, true},
		{"default/sleep-1", httpbinDefault, 8000, "", "default/httpbin-v2", oracle.Plaintext, true},
		{"default/sleep-1", httpbinDefault, 8000, "v1", "default/httpbin-v1", oracle.Plaintext, false},
		{"default/sleep-1", httpbinDefault, 8000, "v2", "default/httpbin-v2", oracle.IstioMutual, false},
	}},
	"simple-mutual-dr.yaml": {pairs: 16, expected: []want{
		{"default/sleep-1", "svc-a.default.svc.cluster.local", 8000, "", "default/a-1", oracle.MutualTLS, false},
		// credentialName in a DR without workloadSelector: Istio drops the TLS context on sidecars.
		{"default/sleep-1", "svc-b.default.svc.cluster.local", 8000, "", "default/b-1", oracle.Plaintext, true},
		{"default/sleep-1", "svc-c.default.svc.cluster.local", 5432, "", "default/c-1", oracle.SimpleTLS, false},
	}},
	"auto-mtls-off-custom-root.yaml": {pairs: 4, expected: []want{
		{"default/sleep-1", httpbinDefault, 8000, "", "default/httpbin-1", oracle.Plaintext, false},
		{"default/sleep-1", sleepDefault, 80, "", "default/sleep-1", oracle.Plaintext, false},
	}},
	// ServiceEntry hosts: WorkloadEntries with and without a sidecar (the
	// VM's proxy simulated as a pod's), inline endpoints of a DNS entry, a
	// selected pod; nothing for the MESH_EXTERNAL api.example.com.
	"serviceentry.yaml": {pairs: 10, expected: []want{
		{"bar/sleep", "vm.internal", 8080, "", "WorkloadEntry vm/vm-1", oracle.IstioMutual, true},
		{"bar/sleep", "vm.internal", 8080, "", "WorkloadEntry vm/vm-2", oracle.Plaintext, true},
		{"foo/sleep", "vm.internal", 8080, "", "WorkloadEntry vm/vm-1", oracle.Plaintext, false},
		{"foo/sleep", "vm.internal", 8080, "", "WorkloadEntry vm/vm-2", oracle.Plaintext, true},
		{"foo/sleep", "legacy.vm.internal", 5432, "", "ServiceEntry vm/legacy endpoints[0] 10.10.0.3", oracle.Plaintext, true},
		{"foo/sleep", "legacy.vm.internal", 5432, "", "ServiceEntry vm/legacy endpoints[1] 10.10.0.4", oracle.Plaintext, true},
		{"foo/sleep", "payments.internal", 80, "", "vm/legacy-1", oracle.Plaintext, true},
	}},
}

func TestMain(m *testing.M) {
	if err := oracle.ConfigureLogging(false); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func TestTestdataScenarios(t *testing.T) {
	files, err := filepath.Glob("../testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			exp, ok := expectations[name]
			if !ok {
				t.Fatalf("no expectations for %s", name)
			}
			seen[name] = true
			res := evaluateFile(t, f)
			if len(res.Rejected) > 0 {
				t.Errorf("rejected configs: %v", res.Rejected)
			}
			checkInvariants(t, res)
			if exp.pairs >= 0 && len(res.Pairs) != exp.pairs {
				t.Errorf("got %d pairs, want %d", len(res.Pairs), exp.pairs)
				for _, p := range res.Pairs {
					t.Logf("  %+v", p)
				}
			}
			for _, w := range exp.expected {
				p := find(res, w)
				if p == nil {
					t.Errorf("missing pair %s -> %s:%d|%s -> %s", w.client, w.host, w.port, w.subset, w.server)
					continue
				}
				if p.ClientSends != w.sends || p.OK != w.ok {
					t.Errorf("%s -> %s:%d|%s -> %s: got sends=%s ok=%v, want sends=%s ok=%v\n  detail: %s",
						w.client, w.host, w.port, w.subset, w.server, p.ClientSends, p.OK, w.sends, w.ok, p.Detail)
				}
			}
		})
	}
	for name := range expectations {
		if !seen[name] {
			t.Errorf("expectation for missing testdata file %s", name)
		}
	}
}

// TestJSONShape checks the output field names the comparison harness relies on.
func TestJSONShape(t *testing.T) {
	res := evaluateFile(t, "../testdata/deep-dive.yaml")
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var generic struct {
		Pairs []map[string]any `json:"pairs"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	if len(generic.Pairs) == 0 {
		t.Fatal("no pairs")
	}
	keys := []string{"client_pod", "host", "port", "subset", "server_pod", "target_port", "client_sends", "server_accepts", "ok", "detail",
		"server_identity", "subject_alt_names", "identity_checked", "identity_ok"}
	for _, k := range keys {
		if _, ok := generic.Pairs[0][k]; !ok {
			t.Errorf("missing key %q in %s", k, raw)
		}
	}
	if len(generic.Pairs[0]) != len(keys) {
		t.Errorf("unexpected keys in %v", generic.Pairs[0])
	}
}

func find(res *oracle.Result, w want) *oracle.Pair {
	for i := range res.Pairs {
		p := &res.Pairs[i]
		if p.ClientPod == w.client && p.Host == w.host && p.Port == w.port && p.Subset == w.subset && p.ServerPod == w.server {
			return p
		}
	}
	return nil
}

func checkInvariants(t *testing.T, res *oracle.Result) {
	t.Helper()
	sorted := sort.SliceIsSorted(res.Pairs, func(i, j int) bool { return res.Pairs[i].Less(res.Pairs[j]) })
	if !sorted {
		t.Errorf("pairs are not sorted")
	}
	for _, p := range res.Pairs {
		switch p.ClientSends {
		case oracle.Plaintext, oracle.IstioMutual, oracle.SimpleTLS, oracle.MutualTLS:
		default:
			t.Errorf("bad client_sends %q in %+v", p.ClientSends, p)
		}
		if p.OK != (p.ServerAccepts && (!p.IdentityChecked || p.IdentityOK)) {
			t.Errorf("ok is not server_accepts and the identity check in %+v", p)
		}
		if p.Detail == "" {
			t.Errorf("empty detail in %+v", p)
		}
	}
}

// evaluateFile runs the oracle on one scenario file.
func evaluateFile(t *testing.T, path string) *oracle.Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := oracle.ParseScenario(data, oracle.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := oracle.Evaluate(sc)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
