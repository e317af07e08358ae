package tlscheck

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONNamesEachEndpointsIdentity(t *testing.T) {
	tests := map[string]struct {
		files        []string
		wantStatus   string
		wantSANs     []string
		wantInReason []string
	}{
		"the Deep-Dive's httpbin is spiffe://cluster.local/ns/default/sa/default": {
			files: []string{deepDive}, wantStatus: "OK",
		},
		"a subjectAltNames list without that identity is a CONFLICT naming both": {
			files: []string{deepDive, "testdata/identity/san-mismatch.yaml"}, wantStatus: "CONFLICT",
			wantSANs:     []string{"spiffe://cluster.local/ns/default/sa/httpbin"},
			wantInReason: []string{"spiffe://cluster.local/ns/default/sa/default", "spiffe://cluster.local/ns/default/sa/httpbin"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var args []string
			for _, f := range tc.files {
				args = append(args, "-f", f)
			}
			code, out, errOut := run(t, "", append(args, "-o", "json", "sleep.default", "httpbin")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var rows []JSONRow
			if err := json.Unmarshal([]byte(out), &rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || len(rows[0].Endpoints) != 1 {
				t.Fatalf("want one row with one endpoint:\n%s", out)
			}
			r, ep := rows[0], rows[0].Endpoints[0]
			if r.Status != tc.wantStatus || strings.Join(r.SubjectAltNames, ",") != strings.Join(tc.wantSANs, ",") {
				t.Errorf("status %s SANs %v, want %s %v", r.Status, r.SubjectAltNames, tc.wantStatus, tc.wantSANs)
			}
			if ep.Identity != "spiffe://cluster.local/ns/default/sa/default" {
				t.Errorf("identity = %q", ep.Identity)
			}
			for _, s := range tc.wantInReason {
				if !strings.Contains(ep.Reason, s) {
					t.Errorf("reason does not name %s: %s", s, ep.Reason)
				}
			}
			if tc.wantSANs == nil && strings.Contains(out, "subject_alt_names") {
				t.Errorf("subject_alt_names printed for a rule without them:\n%s", out)
			}
		})
	}
}
