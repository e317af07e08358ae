package tlscheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadsServiceEntriesWorkloadEntriesAndSidecars runs tls-check on the
// golden scenarios that hold the new kinds: nothing is skipped, and the
// rows show what the kinds do.
func TestReadsServiceEntriesWorkloadEntriesAndSidecars(t *testing.T) {
	const scenarios = "../../policy/testdata/scenarios/"
	tests := map[string]struct {
		args []string
		want []string
	}{
		"a Sidecar that drops bar: passthrough to a STRICT server": {
			args: []string{"-f", scenarios + "sidecar-egress-drops-strict-service-allow-any/cluster.yaml", "sleep.foo", "httpbin.bar.svc.cluster.local"},
			want: []string{"httpbin.bar.svc.cluster.local:8000", "CONFLICT", "PassthroughCluster"},
		},
		"a WorkloadEntry behind a MESH_INTERNAL ServiceEntry": {
			args: []string{"-f", scenarios + "se-mesh-internal-workloadentry-strict-dr-disable/cluster.yaml", "sleep.foo", "vm.internal"},
			want: []string{"vm.internal:8080", "CONFLICT", "vm-plaintext/foo"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, "", tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestBadEntriesNameTheField(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct{ body, wantErr string }{
		"Sidecar host without a namespace": {
			body:    "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: ns}\nspec: {egress: [{hosts: [httpbin]}]}\n",
			wantErr: `Sidecar ns/s: spec.egress[0].hosts[0]: "httpbin" must be namespace/dnsName`,
		},
		"ServiceEntry port out of range": {
			body:    "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {name: se, namespace: ns}\nspec: {hosts: [a.b], ports: [{number: 70000, name: http, protocol: HTTP}]}\n",
			wantErr: "ServiceEntry ns/se: spec.ports[0].number: port 70000 is out of range",
		},
		"ServiceEntry with both a selector and endpoints": {
			body:    "apiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\nmetadata: {name: se, namespace: ns}\nspec: {hosts: [a.b], workloadSelector: {labels: {app: a}}, endpoints: [{address: 10.0.0.1}]}\n",
			wantErr: "ServiceEntry ns/se: spec.workloadSelector: cannot be combined with spec.endpoints",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
			if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := run(t, "", "-f", deepDive, "-f", p)
			if code == 0 || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want %q", code, errOut, tc.wantErr)
			}
		})
	}
}
