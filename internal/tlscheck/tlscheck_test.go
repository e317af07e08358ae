package tlscheck

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const deepDive = "../../examples/deep-dive"

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// The Deep-Dive tables, exactly as the issue and the old command print them.
const (
	okTable = `HOST:PORT                                  STATUS     SERVER     CLIENT     AUTHN POLICY             DESTINATION RULE
httpbin.default.svc.cluster.local:8000     OK         mTLS       mTLS       default/istio-system     default/istio-system
`
	conflictTable = `HOST:PORT                                  STATUS       SERVER     CLIENT     AUTHN POLICY             DESTINATION RULE
httpbin.default.svc.cluster.local:8000     CONFLICT     mTLS       HTTP       default/istio-system     bad-rule/default
`
)

func TestDeepDive(t *testing.T) {
	tests := map[string]struct {
		args     []string
		wantCode int
		want     string
	}{
		"mesh mTLS is OK": {
			args: []string{"-f", deepDive, "sleep.default", "httpbin.default.svc.cluster.local"}, want: okTable,
		},
		"bad-rule is a CONFLICT": {
			args: []string{"-f", deepDive, "-f", deepDive + "/bad-rule", "sleep.default", "httpbin.default.svc.cluster.local"}, want: conflictTable,
		},
		"--exit-code exits 3 on a CONFLICT": {
			args:     []string{"-f", deepDive, "-f", deepDive + "/bad-rule", "--exit-code", "sleep-7f9c-x2z.default", "httpbin"},
			wantCode: ExitConflict, want: conflictTable,
		},
		"--exit-code exits 0 when all is OK": {
			args: []string{"-f", deepDive, "--exit-code", "sleep.default", "httpbin.default"}, want: okTable,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, "", tc.args...)
			if code != tc.wantCode || out != tc.want {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", code, tc.wantCode, out, tc.want, errOut)
			}
		})
	}
}

func TestPerViewAddsClientColumn(t *testing.T) {
	code, out, _ := run(t, "", "-f", deepDive, "-A", "--per-view")
	if code != 0 || !strings.HasPrefix(out, "CLIENT NAMESPACE     HOST:PORT") || !strings.Contains(out, "\ndefault              httpbin.default.svc.cluster.local:8000") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestJSON(t *testing.T) {
	code, out, errOut := run(t, "", "-f", deepDive, "-f", deepDive+"/bad-rule", "-o", "json", "sleep.default", "httpbin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rows []JSONRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("rows = %d, want 1", len(rows))
	}
	r := rows[0]
	if r.Host != "httpbin.default.svc.cluster.local" || r.Port != 8000 || r.Status != "CONFLICT" || r.ClientNamespace != "default" ||
		r.ClientPod != "default/sleep-7f9c-x2z" || r.DestinationRule != "bad-rule/default" || len(r.Endpoints) != 1 {
		t.Fatalf("row = %+v", r)
	}
	ep := r.Endpoints[0]
	if ep.Pod != "default/httpbin-5b8d6c4d7-k2xvq" || ep.TargetPort != 8080 || !ep.Sidecar || ep.ServerMode != "STRICT" ||
		ep.ClientSends != "plaintext" || ep.OK || ep.Reason == "" {
		t.Errorf("endpoint = %+v", ep)
	}
}

func TestStdinAndSkippedKinds(t *testing.T) {
	in := `apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, namespace: default}
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1beta1
  kind: DestinationRule
  metadata: {name: bad-rule, namespace: default}
  spec:
    host: httpbin
    trafficPolicy: {tls: {mode: DISABLE}}
`
	code, out, errOut := run(t, in, "-f", deepDive, "-f", "-", "sleep.default", "httpbin")
	if code != 0 || out != conflictTable {
		t.Errorf("exit %d, stdout:\n%s", code, out)
	}
	if want := "tls-check: skipped <stdin>: document 1: Deployment default/httpbin (apps/v1) is not read by tls-check\n"; errOut != want {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]struct {
		args    []string
		wantErr string
	}{
		"unreadable file": {
			args: []string{"-f", filepath.Join(dir, "missing.yaml")}, wantErr: "missing.yaml: no such file or directory",
		},
		"YAML that does not parse": {
			args:    []string{"-f", write("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n")},
			wantErr: "broken.yaml: document 1",
		},
		"object that does not decode": {
			args:    []string{"-f", write("dr.yaml", "---\n# a comment\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec: {host: 7, trafficPolicy: {tls: {mode: DISABLE}}}\n")},
			wantErr: "dr.yaml: document 2: DestinationRule ns/r:",
		},
		"unknown TLS mode": {
			args:    []string{"-f", write("mode.yaml", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec: {host: h, trafficPolicy: {tls: {mode: MAYBE}}}\n")},
			wantErr: "mode.yaml: document 1: DestinationRule ns/r:",
		},
		"unknown mTLS mode": {
			args:    []string{"-f", write("pa.yaml", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: ns}\nspec: {mtls: {mode: SOMETIMES}}\n")},
			wantErr: "pa.yaml: document 1: PeerAuthentication ns/p:",
		},
		"object without kind": {
			args: []string{"-f", write("nokind.yaml", "metadata: {name: x}\n")}, wantErr: "nokind.yaml: document 1: object has no kind",
		},
		"unknown flag": {
			args: []string{"--bogus"}, wantErr: "tls-check: unknown flag: --bogus\nRun 'tls-check --help' for usage.",
		},
		"bad output": {
			args: []string{"-f", deepDive, "-o", "yaml"}, wantErr: "--output must be table, json or html",
		},
		"--per-view without -A": {
			args: []string{"-f", deepDive, "--per-view"}, wantErr: "--per-view needs -A",
		},
		"--per-view with html": {
			args: []string{"-f", deepDive, "-A", "--per-view", "-o", "html"}, wantErr: "--per-view needs -A and a table or json output",
		},
		"pod not found": {
			args: []string{"-f", deepDive, "nope.default"}, wantErr: "pod default/nope not found",
		},
		"client namespace without sidecars": {
			args: []string{"-f", deepDive, "-n", "istio-system"}, wantErr: `namespace "istio-system" has no client sidecar`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, "", tc.args...)
			if code != ExitUsage || out != "" || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errOut, tc.wantErr)
			}
		})
	}
}
