package audit

import (
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mtlsguard/mtlsguard/policy"
)

// TestNoSidecarPodIsAConflict proves the full and the namespace
// recomputation find the same conflict, with its cause: a pod without a
// sidecar behind httpbin while the mesh rule sends ISTIO_MUTUAL.
func TestNoSidecarPodIsAConflict(t *testing.T) {
	src := newSource(t)
	src.apply(t, deepDive()...)
	src.apply(t, pod("default", "httpbin-plain", "httpbin", false))
	var full map[string][]finding
	var ns []finding
	err := src.View(func(st *policy.State) (err error) {
		if full, err = fullTable(st, nil); err != nil {
			return err
		}
		ns, err = namespaceTable(st, "default", []string{"httpbin", "sleep"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != 1 || len(full["default"]) != 1 {
		t.Fatalf("full table %+v, want one conflict in default", full)
	}
	f := full["default"][0]
	want := finding{
		namespace: "default", service: "httpbin", hostPort: "httpbin.default.svc.cluster.local:8000",
		server: "mixed", client: "mTLS", authn: []string{"default/istio-system"}, rule: "default/istio-system",
		clients: []string{"default"}, pods: []string{"default/httpbin-plain"},
		reason: "server has no sidecar but the client sends Istio mTLS: set tls.mode DISABLE for this host, or inject a sidecar",
	}
	if f.key() != want.key() || f.reason != want.reason || strings.Join(f.pods, ",") != "default/httpbin-plain" ||
		strings.Join(f.clients, ",") != "default" || f.service != "httpbin" {
		t.Errorf("finding %+v\nwant    %+v", f, want)
	}
	if len(ns) != 1 || ns[0].key() != f.key() {
		t.Errorf("namespace table %+v, want the full table's finding", ns)
	}
	if got := f.message(); got != "httpbin.default.svc.cluster.local:8000: "+want.reason+" (server pods default/httpbin-plain)" {
		t.Errorf("message %q", got)
	}
}

// TestReportsPerCauseNamespace proves a conflict is reported in the
// namespaces of the service and of its rule (not of the mesh policy: the
// rule is blamed), and not at all when one of them is labelled off.
func TestReportsPerCauseNamespace(t *testing.T) {
	src := newSource(t)
	src.apply(t, deepDive()...)
	src.apply(t, destRule("team", "bad-rule", "httpbin.default.svc.cluster.local", networkingapi.ClientTLSSettings_DISABLE))
	src.apply(t, namespace("team", map[string]string{"istio-injection": "enabled"}))
	var table map[string][]finding
	if err := src.View(func(st *policy.State) (err error) { table, err = fullTable(st, nil); return err }); err != nil {
		t.Fatal(err)
	}
	reports, reported := buildReports(table, map[string][]rendered{}, snapshot{off: map[string]bool{}}, nil)
	if len(reported) != 1 || len(reports) != 2 || len(reports["default"]) != 1 || len(reports["team"]) != 1 {
		t.Fatalf("reports %v, reported %d, want one result in default and in team", reports, len(reported))
	}
	r := reports["team"][0]
	if r.Result != "fail" || r.Properties[propDestinationRule] != "bad-rule/team" || r.Properties[propService] != "httpbin.default.svc.cluster.local:8000" ||
		r.Properties[propServer] != "mTLS" || r.Properties[propClient] != "HTTP" || r.Properties[propAuthnPolicy] != "default/istio-system" {
		t.Errorf("result %+v", r)
	}
	var kinds []string
	for _, s := range r.Subjects {
		kinds = append(kinds, s.Kind+" "+s.Namespace+"/"+s.Name)
	}
	if got := strings.Join(kinds, ", "); got != "Service default/httpbin, DestinationRule team/bad-rule, PeerAuthentication istio-system/default" {
		t.Errorf("resources %s", got)
	}
	if s := summarize(reports["team"]); s.Fail != 1 || s.Warn != 0 {
		t.Errorf("summary %+v", s)
	}
	reports, reported = buildReports(table, map[string][]rendered{}, snapshot{off: map[string]bool{"team": true}}, nil)
	if len(reports) != 0 || len(reported) != 0 {
		t.Errorf("with team off: reports %v", reports)
	}
}

// TestFindingKeyIsItsResultKey: the key events are deduplicated by must be
// the one a new leader reads back from the reports, or it would announce
// every old conflict again.
func TestFindingKeyIsItsResultKey(t *testing.T) {
	for _, f := range []finding{
		{namespace: "a", service: "web", hostPort: "web.a.svc.cluster.local:80", server: "mTLS", client: "HTTP", authn: []string{"p/a", "q/b"}, rule: "r/a"},
		{namespace: "a", service: "web", hostPort: "web.a.svc.cluster.local|v1:80", server: "HTTP", client: "mTLS"},
	} {
		r := f.result(nil)
		if got := resultKey(&r); got != f.key() {
			t.Errorf("result key %q, finding key %q", got, f.key())
		}
	}
}
