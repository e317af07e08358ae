package policy

import (
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

func TestServerMode(t *testing.T) {
	app := map[string]string{"app": "httpbin"}
	tests := map[string]struct {
		pas        []*securityv1.PeerAuthentication
		ns         string
		port       int32
		wantMode   ServerMode
		wantSource string
	}{
		"no policy is PERMISSIVE": {
			ns: "foo", port: 8080, wantMode: Permissive,
		},
		"mesh policy applies to every namespace": {
			pas: []*securityv1.PeerAuthentication{pa("istio-system", "default", strict)},
			ns:  "foo", port: 8080, wantMode: Strict, wantSource: "default/istio-system",
		},
		"namespace policy overrides mesh": {
			pas: []*securityv1.PeerAuthentication{pa("istio-system", "default", strict), pa("foo", "ns", permissive)},
			ns:  "foo", port: 8080, wantMode: Permissive, wantSource: "ns/foo",
		},
		"workload policy overrides namespace": {
			pas: []*securityv1.PeerAuthentication{pa("foo", "ns", strict), pa("foo", "wl", disable, paSelector(app))},
			ns:  "foo", port: 8080, wantMode: Disable, wantSource: "wl/foo",
		},
		"workload policy for other labels does not apply": {
			pas: []*securityv1.PeerAuthentication{pa("foo", "ns", strict), pa("foo", "wl", disable, paSelector(map[string]string{"app": "other"}))},
			ns:  "foo", port: 8080, wantMode: Strict, wantSource: "ns/foo",
		},
		"port level keyed by target port overrides workload": {
			pas: []*securityv1.PeerAuthentication{pa("foo", "wl", strict, paSelector(app), paPort(8080, disable))},
			ns:  "foo", port: 8080, wantMode: Disable, wantSource: "wl/foo",
		},
		"port level for another port does not apply": {
			pas: []*securityv1.PeerAuthentication{pa("foo", "wl", strict, paSelector(app), paPort(9090, disable))},
			ns:  "foo", port: 8080, wantMode: Strict, wantSource: "wl/foo",
		},
		"port level UNSET inherits the workload mode": {
			pas: []*securityv1.PeerAuthentication{pa("istio-system", "default", strict), pa("foo", "wl", unset, paSelector(app), paPort(8080, unset))},
			ns:  "foo", port: 8080, wantMode: Strict, wantSource: "default/istio-system",
		},
		"namespace UNSET inherits mesh": {
			pas: []*securityv1.PeerAuthentication{pa("istio-system", "default", strict), pa("foo", "ns", unset), pa("foo", "wl", unset, paSelector(app), paNoMTLS())},
			ns:  "foo", port: 8080, wantMode: Strict, wantSource: "default/istio-system",
		},
		"mesh UNSET is PERMISSIVE": {
			pas: []*securityv1.PeerAuthentication{pa("istio-system", "default", unset)},
			ns:  "foo", port: 8080, wantMode: Permissive,
		},
		"oldest namespace policy wins": {
			pas: []*securityv1.PeerAuthentication{
				pa("my-ns", "now", disable, paCreated(10)),
				pa("my-ns", "second ago", permissive, paCreated(9)),
				pa("my-ns", "second later", strict, paCreated(9)),
			},
			ns: "my-ns", port: 8080, wantMode: Permissive, wantSource: "second ago/my-ns",
		},
		"oldest workload policy wins, no merging": {
			pas: []*securityv1.PeerAuthentication{
				pa("foo", "new", strict, paSelector(app), paCreated(5), paPort(8080, disable)),
				pa("foo", "old", permissive, paSelector(map[string]string{}), paCreated(1)),
				pa("foo", "older", disable, paSelector(app), paCreated(2)),
			},
			ns: "foo", port: 8080, wantMode: Disable, wantSource: "older/foo",
		},
		"selector in the root namespace is ignored": {
			pas: []*securityv1.PeerAuthentication{pa("istio-system", "foo", strict, paSelector(app))},
			ns:  "foo", port: 8080, wantMode: Permissive,
		},
		"workload in the root namespace sees only the mesh policy": {
			pas: []*securityv1.PeerAuthentication{pa("istio-system", "default", permissive), pa("istio-system", "wl", disable, paSelector(app))},
			ns:  "istio-system", port: 8080, wantMode: Permissive, wantSource: "default/istio-system",
		},
		"empty selector is namespace level": {
			pas: []*securityv1.PeerAuthentication{pa("foo", "weird", disable, paSelector(map[string]string{}))},
			ns:  "foo", port: 8080, wantMode: Disable, wantSource: "weird/foo",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := mustState(t, Snapshot{PeerAuthentications: tc.pas})
			got := (&env{st: st}).serverMode(tc.ns, app, tc.port)
			source := ""
			if got.source != nil {
				source = got.source.ref()
			}
			if got.mode != tc.wantMode || source != tc.wantSource {
				t.Errorf("serverMode = %v from %q, want %v from %q", got.mode, source, tc.wantMode, tc.wantSource)
			}
		})
	}
}

func TestNamespaceModeIgnoresWorkloadPolicies(t *testing.T) {
	st := mustState(t, Snapshot{PeerAuthentications: []*securityv1.PeerAuthentication{
		pa("whole", "default", strict),
		pa("partial", "wl", disable, paSelector(map[string]string{"app": "a"})),
	}})
	e := &env{st: st}
	for ns, want := range map[string]struct {
		mode  ServerMode
		known bool
	}{
		"whole":   {Strict, true},
		"partial": {Permissive, false},
	} {
		if m, k := e.namespaceMode(ns); m != want.mode || k != want.known {
			t.Errorf("namespaceMode(%s) = %v,%v want %v,%v", ns, m, k, want.mode, want.known)
		}
	}
}
