package policy

import (
	"testing"

	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ambientPod is a pod of app httpbin in namespace amb (labelled ambient),
// listening on 8080 and 9090.
func ambientPod() *corev1.Pod {
	p := podOf("amb", "httpbin-1", "httpbin", false, nil)
	p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 9090})
	return p
}

func ambientNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{DataplaneModeLabel: "ambient"}}}
}

// TestAmbientServerFollowsIstiosConversion checks what ztunnel refuses
// plaintext on, port by port, against the golden files of
// pilot/pkg/serviceregistry/ambient/testdata (TestRBACConvert) and the
// quirks of convertedSelectorPeerAuthentications and
// convertPeerAuthentication (semantics doc §1.5, §1.11 A7 and A8).
func TestAmbientServerFollowsIstiosConversion(t *testing.T) {
	wl := func(mode securityapiMode, opts ...paOpt) *securityv1.PeerAuthentication {
		return pa("amb", "httpbin", mode, append([]paOpt{paSelector(map[string]string{"app": "httpbin"}), paCreated(2)}, opts...)...)
	}
	mesh := func(mode securityapiMode) *securityv1.PeerAuthentication { return pa("istio-system", "default", mode) }
	nsPA := func(mode securityapiMode, opts ...paOpt) *securityv1.PeerAuthentication {
		return pa("amb", "default", mode, append([]paOpt{paCreated(1)}, opts...)...)
	}
	tests := []struct {
		name       string
		pas        []*securityv1.PeerAuthentication
		strict8080 bool
		strict9090 bool
	}{
		{"no policy accepts plaintext", nil, false, false},
		{"mesh STRICT refuses plaintext everywhere", []*securityv1.PeerAuthentication{mesh(strict)}, true, true},
		{"DISABLE behaves as PERMISSIVE", []*securityv1.PeerAuthentication{nsPA(disable)}, false, false},
		{"namespace PERMISSIVE overrides mesh STRICT", []*securityv1.PeerAuthentication{mesh(strict), nsPA(permissive)}, false, false},
		{"namespace UNSET inherits mesh STRICT", []*securityv1.PeerAuthentication{mesh(strict), nsPA(unset)}, true, true},
		{"workload STRICT with a PERMISSIVE port (peer-authn-strict-and-permissive-port-mtls)",
			[]*securityv1.PeerAuthentication{wl(strict, paPort(9090, permissive))}, true, false},
		{"workload STRICT with a DISABLE port (peer-authn-strict-and-disable-port-mtls)",
			[]*securityv1.PeerAuthentication{wl(strict, paPort(9090, disable))}, true, false},
		{"workload PERMISSIVE with a STRICT port (peer-authn-permissive-port-mtls-strict)",
			[]*securityv1.PeerAuthentication{wl(permissive, paPort(9090, strict))}, false, true},
		{"workload UNSET with a STRICT port and no parents (peer-authn-unset-port-mtls-strict)",
			[]*securityv1.PeerAuthentication{wl(unset, paPort(8080, strict))}, true, false},
		{"root STRICT, workload UNSET with 9090 PERMISSIVE and 8080 STRICT",
			[]*securityv1.PeerAuthentication{mesh(strict), wl(unset, paPort(9090, permissive), paPort(8080, strict))}, true, false},
		{"A7: workload STRICT, 8080 PERMISSIVE",
			[]*securityv1.PeerAuthentication{wl(strict, paPort(8080, permissive))}, false, true},
		{"quirk A: a DISABLE port under mesh STRICT still refuses plaintext",
			[]*securityv1.PeerAuthentication{mesh(strict), wl(unset, paPort(8080, disable))}, true, true},
		{"quirk B: an UNSET namespace policy drops STRICT on every port",
			[]*securityv1.PeerAuthentication{mesh(strict), nsPA(unset, paNoMTLS()), wl(unset, paPort(8080, permissive))}, false, false},
		{"quirk C: a STRICT port under mesh STRICT and a PERMISSIVE workload accepts plaintext",
			[]*securityv1.PeerAuthentication{mesh(strict), wl(permissive, paPort(8080, strict))}, false, false},
		{"quirk C avoided by a PERMISSIVE namespace policy",
			[]*securityv1.PeerAuthentication{mesh(strict), nsPA(permissive), wl(permissive, paPort(8080, strict))}, true, false},
		{"mesh UNSET with workload PERMISSIVE port under namespace STRICT",
			[]*securityv1.PeerAuthentication{mesh(permissive), nsPA(strict), wl(unset, paPort(9090, permissive))}, true, false},
		{"a root policy with selector {} is not mesh-wide for ztunnel",
			[]*securityv1.PeerAuthentication{pa("istio-system", "default", strict, paSelector(map[string]string{}))}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := mustState(t, Snapshot{
				Namespaces:          []*corev1.Namespace{ambientNamespace("amb")},
				Pods:                []*corev1.Pod{ambientPod()},
				PeerAuthentications: tt.pas,
			})
			p := st.pod("amb/httpbin-1")
			if !p.captured(st.namespaceAmbient("amb")) {
				t.Fatal("pod not captured")
			}
			e := &env{st: st}
			for port, want := range map[int32]bool{8080: tt.strict8080, 9090: tt.strict9090} {
				sm := e.ambientServer(p, port)
				if got := sm.mode == AmbientStrict; got != want {
					t.Errorf("port %d: AmbientStrict = %v, want %v (mode %v)", port, got, want, sm.mode)
				}
				if !accepts(sm, HBONE) {
					t.Errorf("port %d: HBONE refused", port)
				}
				if accepts(sm, IstioMutual) {
					t.Errorf("port %d: Istio mTLS to the application port accepted", port)
				}
			}
		})
	}
}

// TestAmbientCaptureFollowsTheCNISelectors checks the istio-cni default
// enablement selectors and the sidecar-wins rule.
func TestAmbientCaptureFollowsTheCNISelectors(t *testing.T) {
	withLabel := func(p *corev1.Pod, k, v string) *corev1.Pod { p.Labels[k] = v; return p }
	plain := func() *corev1.Pod { return podOf("ns", "p", "app", false, nil) }
	hostNet := plain()
	hostNet.Spec.HostNetwork = true
	annotated := plain()
	annotated.Annotations = map[string]string{RedirectionAnnotation: "enabled"}
	kubeSystem := podOf("kube-system", "p", "app", false, map[string]string{DataplaneModeLabel: "ambient"})
	tests := []struct {
		name      string
		pod       *corev1.Pod
		nsAmbient bool
		want      bool
	}{
		{"a pod of an ambient namespace", plain(), true, true},
		{"a pod of a plain namespace", plain(), false, false},
		{"a pod labelled none opts out of its namespace", withLabel(plain(), DataplaneModeLabel, "none"), true, false},
		{"a pod labelled ambient in a plain namespace", withLabel(plain(), DataplaneModeLabel, "ambient"), false, true},
		{"a sidecar wins over the namespace label", podOf("ns", "p", "app", true, nil), true, false},
		{"a sidecar wins over the pod label", podOf("ns", "p", "app", true, map[string]string{DataplaneModeLabel: "ambient"}), false, false},
		{"a host-network pod is never captured", hostNet, true, false},
		{"kube-system is excluded", kubeSystem, true, false},
		{"the redirection annotation is trusted", annotated, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newPod(tt.pod).captured(tt.nsAmbient); got != tt.want {
				t.Errorf("captured = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNamespaceRelabelMovesPodsBetweenDataplanes: labelling a namespace
// ambient makes its plain pods ztunnel clients and ambient servers.
func TestNamespaceRelabelMovesPodsBetweenDataplanes(t *testing.T) {
	st := mustState(t, Snapshot{
		Namespaces: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "amb"}}},
		Services:   []*corev1.Service{svc("amb", "httpbin", 8000, intstrInt(8080))},
		Pods:       []*corev1.Pod{ambientPod()},
		PeerAuthentications: []*securityv1.PeerAuthentication{
			pa("istio-system", "default", strict),
		},
	})
	if st.totalZtunnelViews != 0 {
		t.Fatalf("%d ztunnel views before the label", st.totalZtunnelViews)
	}
	next := st.Clone()
	if err := next.Apply(ambientNamespace("amb")); err != nil {
		t.Fatal(err)
	}
	groups, err := next.Table(Query{Namespace: "amb"})
	if err != nil {
		t.Fatal(err)
	}
	rows := Expand(groups)
	if len(rows) != 1 || !rows[0].View.Ztunnel || rows[0].Endpoints[0].ServerMode != AmbientStrict || rows[0].Endpoints[0].ClientSends != HBONE {
		t.Fatalf("after the label: %+v", rows)
	}
	if _, err := st.Table(Query{Namespace: "amb"}); err == nil {
		t.Error("the state before the label has amb clients")
	}
}

type securityapiMode = securityapi.PeerAuthentication_MutualTLS_Mode
