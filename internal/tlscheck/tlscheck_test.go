package tlscheck

import (
	"bytes"
	"context"
	"encoding/json"
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
