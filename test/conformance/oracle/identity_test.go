package oracle_test

import (
	"slices"
	"testing"

	"github.com/mtlsguard/mtlsguard/test/conformance/oracle"
)

type identityWant struct {
	host, server string
	ok           bool
	identity     string
	// sans must all be in the list the client checks; exact, when set,
	// must be the whole list.
	sans  []string
	exact bool
}

// TestIdentityScenarios checks the identity check on testdata/identity,
// for the client default/sleep.
func TestIdentityScenarios(t *testing.T) {
	tests := map[string][]identityWant{
		"sans.yaml": {
			{"httpbin.foo.svc.cluster.local", "foo/httpbin-a", false, "spiffe://cluster.local/ns/foo/sa/httpbin",
				[]string{"spiffe://cluster.local/ns/foo/sa/other"}, true},
			{"httpbin.foo.svc.cluster.local", "foo/httpbin-b", true, "spiffe://cluster.local/ns/foo/sa/other",
				[]string{"spiffe://cluster.local/ns/foo/sa/other"}, true},
			{"auto.foo.svc.cluster.local", "foo/auto-1", true, "spiffe://cluster.local/ns/foo/sa/default",
				[]string{"spiffe://cluster.local/ns/foo/sa/default"}, true},
		},
		"trust-domain-aliases.yaml": {
			{"auto.foo.svc.cluster.local", "foo/auto-1", true, "spiffe://new.td/ns/foo/sa/httpbin",
				[]string{"spiffe://new.td/ns/foo/sa/httpbin", "spiffe://old.td/ns/foo/sa/httpbin"}, false},
			{"old-only.foo.svc.cluster.local", "foo/old-only-1", false, "spiffe://new.td/ns/foo/sa/httpbin",
				[]string{"spiffe://old.td/ns/foo/sa/httpbin"}, true},
		},
	}
	for file, wants := range tests {
		t.Run(file, func(t *testing.T) {
			res := evaluateFile(t, "../testdata/identity/"+file)
			if len(res.Rejected) > 0 {
				t.Fatalf("rejected configs: %v", res.Rejected)
			}
			checkInvariants(t, res)
			for _, w := range wants {
				p := find(res, want{client: "foo/sleep", host: w.host, port: 8000, server: w.server})
				if p == nil {
					t.Errorf("missing pair foo/sleep -> %s => %s", w.host, w.server)
					continue
				}
				if p.ClientSends != oracle.IstioMutual || p.OK != w.ok || !p.IdentityChecked || p.IdentityOK != w.ok || p.ServerIdentity != w.identity {
					t.Errorf("%s => %s: sends %s ok %v checked %v identity_ok %v identity %s; want istio_mutual, ok %v, identity %s\n  detail: %s",
						w.host, w.server, p.ClientSends, p.OK, p.IdentityChecked, p.IdentityOK, p.ServerIdentity, w.ok, w.identity, p.Detail)
				}
				for _, s := range w.sans {
					if !slices.Contains(p.SubjectAltNames, s) {
						t.Errorf("%s => %s: SANs %q lack %s", w.host, w.server, p.SubjectAltNames, s)
					}
				}
				if w.exact && len(p.SubjectAltNames) != len(w.sans) {
					t.Errorf("%s => %s: SANs %q, want exactly %q", w.host, w.server, p.SubjectAltNames, w.sans)
				}
			}
		})
	}
}
