package tlscheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const deepDiveAlpha = "../../examples/deep-dive-v1alpha1"

// The Deep-Dive's tables as the seed prints them (Istio 1.1's tls-check):
// the MeshPolicy is "default/".
var (
	seedOK       = []string{"httpbin.default.svc.cluster.local:8000", "OK", "mTLS", "mTLS", "default/", "default/istio-system"}
	seedConflict = []string{"httpbin.default.svc.cluster.local:8000", "CONFLICT", "mTLS", "HTTP", "default/", "bad-rule/default"}
	seedHeader   = []string{"HOST:PORT", "STATUS", "SERVER", "CLIENT", "AUTHN POLICY", "DESTINATION RULE"}
)

// tableCells splits a table line at runs of two or more spaces.
func tableCells(line string) []string {
	var out []string
	for _, f := range strings.Split(line, "  ") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func TestDeepDiveV1alpha1PrintsTheSeedsRows(t *testing.T) {
	tests := map[string]struct {
		files []string
		want  []string
	}{
		"MeshPolicy default and the mesh-wide rule: OK": {[]string{deepDiveAlpha}, seedOK},
		"bad-rule: the seed's CONFLICT row":             {[]string{deepDiveAlpha, deepDiveAlpha + "/bad-rule"}, seedConflict},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var args []string
			for _, f := range tc.files {
				args = append(args, "-f", f)
			}
			code, out, errOut := run(t, "", append(args, "sleep.default", "httpbin.default.svc.cluster.local")...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if code != 0 || errOut != "" || len(lines) != 2 {
				t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
			}
			if got := tableCells(lines[0]); !slices.Equal(got, seedHeader) {
				t.Errorf("header %q, want %q", got, seedHeader)
			}
			if got := tableCells(lines[1]); !slices.Equal(got, tc.want) {
				t.Errorf("row %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConvertPrintsThePeerAuthentication(t *testing.T) {
	code, out, errOut := run(t, "", "convert", "-f", deepDiveAlpha)
	want := `# From MeshPolicy default (../../examples/deep-dive-v1alpha1/mesh-mtls.yaml: document 1)
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  annotations:
    mtlsguard.io/converted-from: v1alpha1 MeshPolicy default, mesh-wide
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
`
	if code != 0 || errOut != "" || out != want {
		t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}
}

func TestLegacyBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownMode := write("mode.yaml", "apiVersion: authentication.istio.io/v1alpha1\nkind: MeshPolicy\nmetadata: {name: default}\nspec: {peers: [{mtls: {mode: SOMETIMES}}]}\n")
	unknownTarget := write("target.yaml", "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: p, namespace: default}\nspec: {targets: [{name: reviews}]}\n")
	tests := map[string]struct {
		args    []string
		wantErr string
	}{
		"the table, unknown mode": {
			[]string{"-f", deepDive + "/workloads.yaml", "-f", unknownMode},
			"mode.yaml: document 1: MeshPolicy default: spec.peers[0].mtls.mode: unknown mode \"SOMETIMES\"",
		},
		"convert, a target naming a Service the files lack": {
			[]string{"convert", "-f", deepDive + "/workloads.yaml", "-f", unknownTarget},
			"target.yaml: document 1: Policy default/p: spec.targets[0].name: Service default/reviews is not in the files",
		},
		"convert without legacy objects": {
			[]string{"convert", "-f", deepDive}, "no authentication.istio.io/v1alpha1 MeshPolicy or Policy in the files",
		},
		"convert without -f": {
			[]string{"convert"}, "give the files with -f",
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

func TestLegacyNotesGoToStderr(t *testing.T) {
	in := "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: default}\nspec: {peers: [{mtls: {}}], peerIsOptional: true}\n"
	code, out, errOut := run(t, in, "-f", deepDive+"/workloads.yaml", "-f", "-", "sleep.default")
	if code != 0 || !strings.Contains(errOut, "tls-check: note: <stdin>: document 1: Policy default/default: spec.peerIsOptional is not converted") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "default/default") {
		t.Errorf("the namespace policy is not named in the table:\n%s", out)
	}
}
