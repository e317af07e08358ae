package oracle_test

import (
	"os"
	"os/exec"
	"testing"

	"istio.io/istio/pilot/pkg/features"

	"github.com/mtlsguard/mtlsguard/test/conformance/oracle"
)

// TestAmbientMixedMesh checks the oracle's ambient mode on
// testdata/ambient/mixed.yaml (semantics: istio-mtls-semantics-extended.md
// §1.4, §1.6, §1.7). istiod reads its ambient flags once, when the process
// starts, so the test runs itself again with PILOT_ENABLE_AMBIENT=true, as
// oracle -ambient does.
func TestAmbientMixedMesh(t *testing.T) {
	if !features.EnableAmbient {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAmbientMixedMesh$", "-test.v")
		cmd.Env = append(os.Environ(), "PILOT_ENABLE_AMBIENT=true")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("with PILOT_ENABLE_AMBIENT=true: %v\n%s", err, out)
		}
		t.Logf("with PILOT_ENABLE_AMBIENT=true:\n%s", out)
		return
	}
	res := evaluateFile(t, "../testdata/ambient/mixed.yaml")
	const (
		httpbin = "httpbin.amb.svc.cluster.local"
		db      = "db.amb.svc.cluster.local"
		legacy  = "legacy.sc.svc.cluster.local"
		hbone   = "hbone.sc.svc.cluster.local"
	)
	for _, w := range []want{
		// Sidecar clients: HBONE to a captured pod; plaintext to a headless
		// one (ORIGINAL_DST, istio/istio#54921), which STRICT refuses.
		{"sc/sleep-1", httpbin, 8000, "", "amb/httpbin-1", oracle.HBONE, true},
		{"sc/sleep-1", db, 5432, "", "amb/db-0", oracle.Plaintext, false},
		{"sc/sleep-1", legacy, 8000, "", "sc/legacy-1", oracle.IstioMutual, true},
		// ztunnel clients: HBONE to captured pods and to the sidecar with the
		// tunnel label; plaintext to the one without, which STRICT refuses.
		{"amb/sleep-1", httpbin, 8000, "", "amb/httpbin-1", oracle.HBONE, true},
		{"amb/sleep-1", db, 5432, "", "amb/db-0", oracle.HBONE, true},
		{"amb/sleep-1", hbone, 8000, "", "sc/hbone-1", oracle.HBONE, true},
		{"amb/sleep-1", legacy, 8000, "", "sc/legacy-1", oracle.Plaintext, false},
	} {
		p := find(res, w)
		if p == nil {
			t.Errorf("missing pair %s -> %s:%d -> %s", w.client, w.host, w.port, w.server)
			continue
		}
		if p.ClientSends != w.sends || p.OK != w.ok {
			t.Errorf("%s -> %s:%d -> %s: got sends=%s ok=%v, want sends=%s ok=%v\n  detail: %s",
				w.client, w.host, w.port, w.server, p.ClientSends, p.OK, w.sends, w.ok, p.Detail)
		}
	}
}
