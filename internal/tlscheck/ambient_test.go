package tlscheck

import (
	"encoding/json"
	"testing"
)

const ambientScenario = "../../policy/testdata/scenarios/ambient-ztunnel-to-sidecar-strict/cluster.yaml"

// TestJSONNamesEachEndpointsDataplane: a captured pod is a client of its
// own (ztunnel), and each endpoint says which data plane serves it.
func TestJSONNamesEachEndpointsDataplane(t *testing.T) {
	code, out, errOut := run(t, "", "-f", ambientScenario, "-o", "json", "sleep-1.amb", "legacy.sc.svc.cluster.local")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rows []JSONRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ClientView != "amb(ztunnel)" || rows[0].ClientTLS != "ZTUNNEL" || rows[0].Status != "CONFLICT" {
		t.Fatalf("rows = %+v", rows)
	}
	ep := rows[0].Endpoints[0]
	if ep.Dataplane != "sidecar" || ep.ClientSends != "plaintext" || ep.ServerMode != "STRICT" || ep.OK {
		t.Errorf("endpoint = %+v", ep)
	}

	code, out, errOut = run(t, "", "-f", ambientScenario, "-o", "json", "sleep-1.sc", "legacy.sc.svc.cluster.local")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows = nil
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ClientView != "sc" || rows[0].Status != "OK" {
		t.Fatalf("sidecar client rows = %+v", rows)
	}
}
