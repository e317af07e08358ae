package audit

import (
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func labelled(p *corev1.Pod, k, v string) *corev1.Pod {
	p.Labels[k] = v
	return p
}

// TestEventScopes proves which part of the table each event recomputes:
// pod and service events stay in their namespace unless they change its
// client views; a rule reaches the namespace of the services its host
// names; policies, wider rules and the mesh reach everything.
func TestEventScopes(t *testing.T) {
	selectorRule := destRule("sel", "only-v1", "*.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
	selectorRule.Spec.WorkloadSelector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "a"}}
	mutual := networkingapi.ClientTLSSettings_ISTIO_MUTUAL
	web := destRule("n", "r", "web", networkingapi.ClientTLSSettings_DISABLE)
	entry := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "ext", Name: "api"}}
	terminated := pod("plain", "a-2", "a", true)
	terminated.Status.Phase = corev1.PodSucceeded
	type event struct {
		obj     runtime.Object
		deleted bool
	}
	for _, tc := range []struct {
		name  string
		setup []event
		event event
		want  scope
	}{
		{"plain pod in an injected namespace", []event{{namespace("inj", map[string]string{"istio-injection": "enabled"}), false}},
			event{pod("inj", "a-1", "a", false), false}, scope{namespace: "inj"}},
		{"first sidecar pod of an injected namespace", []event{{namespace("inj", map[string]string{"istio-injection": "enabled"}), false}},
			event{pod("inj", "a-1", "a", true), false}, scope{namespace: "inj"}},
		{"first sidecar pod of a namespace not labelled for injection", nil,
			event{pod("plain", "a-1", "a", true), false}, scope{full: true}},
		{"second sidecar pod", []event{{pod("plain", "a-1", "a", true), false}},
			event{pod("plain", "a-2", "a", true), false}, scope{namespace: "plain"}},
		{"last sidecar pod deleted", []event{{pod("plain", "a-1", "a", true), false}},
			event{pod("plain", "a-1", "a", true), true}, scope{full: true}},
		{"last sidecar pod terminated", []event{{pod("plain", "a-2", "a", true), false}},
			event{terminated, false}, scope{full: true}},
		{"plain pod beside sidecars", []event{{pod("plain", "a-1", "a", true), false}},
			event{pod("plain", "b-1", "b", false), false}, scope{namespace: "plain"}},
		{"sidecar pod in a namespace with a workloadSelector rule", []event{{pod("sel", "a-1", "a", true), false}, {selectorRule, false}},
			event{pod("sel", "a-2", "a", true), false}, scope{full: true}},
		{"service", nil, event{service("svc", "web", 80, 8080), false}, scope{namespace: "svc"}},
		{"namespace labelled for injection", nil,
			event{namespace("n", map[string]string{"istio-injection": "enabled"}), false}, scope{full: true}},
		{"namespace labelled off", nil,
			event{namespace("n", map[string]string{"mtlsguard.io/mode": "off"}), false}, scope{republish: true}},
		{"namespace relabelled, nothing the audit reads", []event{{namespace("n", nil), false}},
			event{namespace("n", map[string]string{"team": "x"}), false}, scope{}},
		{"namespace labelled ambient: its pods become ambient clients", []event{{pod("amb", "a-1", "a", false), false}},
			event{namespace("amb", map[string]string{"istio.io/dataplane-mode": "ambient"}), false}, scope{full: true}},
		{"pod labelled ambient in a plain namespace", nil,
			event{labelled(pod("plain", "a-1", "a", false), "istio.io/dataplane-mode", "ambient"), false}, scope{full: true}},
		{"second captured pod of an ambient namespace", []event{
			{namespace("amb", map[string]string{"istio.io/dataplane-mode": "ambient"}), false}, {pod("amb", "a-1", "a", false), false}},
			event{pod("amb", "a-2", "a", false), false}, scope{namespace: "amb"}},
		{"namespace bound to a waypoint", nil,
			event{namespace("wp", map[string]string{"istio.io/use-waypoint": "waypoint"}), false}, scope{namespace: "wp"}},
		{"DestinationRule for a service of its namespace", nil, event{web, false}, scope{namespace: "n"}},
		{"DestinationRule for another namespace's service", nil,
			event{destRule("n", "r", "api.other.svc.cluster.local", mutual), false}, scope{namespace: "other"}},
		{"namespace-wide DestinationRule", nil,
			event{destRule("n", "r", "*.other.svc.cluster.local", mutual), false}, scope{namespace: "other"}},
		{"DestinationRule moved to another namespace's service: both", []event{{web, false}},
			event{destRule("n", "r", "api.other.svc.cluster.local", mutual), false}, scope{namespace: "other", previous: "n"}},
		{"DestinationRule deleted: the namespace its host reached", []event{{web, false}}, event{web, true}, scope{namespace: "n"}},
		{"DestinationRule never seen deleted", nil, event{web, true}, scope{full: true}},
		{"mesh-wide DestinationRule", nil, event{destRule("n", "r", "*.local", mutual), false}, scope{full: true}},
		{"DestinationRule narrowed from every service to one: every service", []event{{destRule("n", "r", "*.local", mutual), false}},
			event{web, false}, scope{full: true}},
		{"DestinationRule for a host outside the cluster domain", nil,
			event{destRule("n", "r", "api.example.com", mutual), false}, scope{full: true}},
		{"DestinationRule with a workloadSelector", nil, event{selectorRule, false}, scope{full: true}},
		{"DestinationRule while a ServiceEntry may declare its host", []event{{entry, false}}, event{web, false}, scope{full: true}},
		{"DestinationRule once the ServiceEntries are gone", []event{{entry, false}, {entry, true}}, event{web, false}, scope{namespace: "n"}},
		{"PeerAuthentication", nil, event{peerAuth("n", "p", 0), true}, scope{full: true}},
		{"mesh ConfigMap", nil, event{&corev1.ConfigMap{}, false}, scope{full: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker("mtlsguard.io/mode", "cluster.local")
			for _, e := range tc.setup {
				tr.observe(e.obj, e.deleted)
			}
			if got := tr.observe(tc.event.obj, tc.event.deleted); got != tc.want {
				t.Errorf("scope %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestTrackerFindsSidecarsWithoutTLSMode proves the pods of the
// tlsMode warning: a sidecar without the label, until it gets it back.
func TestTrackerFindsSidecarsWithoutTLSMode(t *testing.T) {
	tr := newTracker("mtlsguard.io/mode", "cluster.local")
	p := pod("default", "web-1", "web", true)
	delete(p.Labels, "security.istio.io/tlsMode")
	tr.observe(p, false)
	tr.observe(pod("default", "plain-1", "plain", false), false)
	if got := tr.snapshot().noTLSMode["default"]; len(got) != 1 || got[0] != "web-1" {
		t.Fatalf("pods without tlsMode %q, want [web-1]", got)
	}
	tr.observe(pod("default", "web-1", "web", true), false)
	if got := tr.snapshot().noTLSMode["default"]; len(got) != 0 {
		t.Fatalf("pods without tlsMode %q after the label is back", got)
	}
}
