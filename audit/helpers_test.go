package audit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mtlsguard/mtlsguard/policy"
)

var created = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

// source is a Source over a policy.State, fed like webhook.Store feeds it:
// apply, then tell the auditor.
type source struct {
	mu      sync.RWMutex
	st      *policy.State
	observe func(runtime.Object, bool)
	views   int
	// slow, if set, is how long a View takes; viewed are their starts.
	slow   time.Duration
	viewed []time.Time
	// yields counts calls of Yield.
	yields atomic.Int64
}

func newSource(t *testing.T) *source {
	t.Helper()
	st, err := policy.NewState(policy.Snapshot{Mesh: policy.DefaultMesh()})
	if err != nil {
		t.Fatal(err)
	}
	return &source{st: st}
}

func (s *source) View(fn func(*policy.State) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.views++
	s.viewed = append(s.viewed, time.Now())
	time.Sleep(s.slow)
	return fn(s.st)
}

func (s *source) Synced() bool { return true }

func (s *source) Yield() { s.yields.Add(1) }

func (s *source) apply(t *testing.T, objs ...runtime.Object) {
	t.Helper()
	for _, o := range objs {
		s.mu.Lock()
		err := s.st.Apply(o)
		s.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if s.observe != nil {
			s.observe(o, false)
		}
	}
}

func (s *source) remove(t *testing.T, objs ...runtime.Object) {
	t.Helper()
	for _, o := range objs {
		s.mu.Lock()
		err := s.st.Remove(o)
		s.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if s.observe != nil {
			s.observe(o, true)
		}
	}
}

// deepDive is Istio's Mutual TLS Deep-Dive after "globally enable mutual
// TLS": sleep and httpbin with sidecars in default, mesh STRICT and a
// *.local ISTIO_MUTUAL rule.
func deepDive() []runtime.Object {
	return []runtime.Object{
		namespace("default", map[string]string{"istio-injection": "enabled"}),
		namespace("istio-system", nil),
		service("default", "httpbin", 8000, 8080),
		service("default", "sleep", 80, 80),
		pod("default", "httpbin-1", "httpbin", true),
		pod("default", "sleep-1", "sleep", true),
		peerAuth("istio-system", "default", securityapi.PeerAuthentication_MutualTLS_STRICT),
		destRule("istio-system", "default", "*.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL),
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func service(ns, name string, port, target int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name)},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt32(target)}},
		},
	}
}

func pod(ns, name, app string, sidecar bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: app}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if sidecar {
		p.Labels[policy.TLSModeLabel] = "istio"
		p.Annotations = map[string]string{policy.SidecarStatusAnnotation: "{}"}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: policy.ProxyContainerName})
	}
	return p
}

func peerAuth(ns, name string, mode securityapi.PeerAuthentication_MutualTLS_Mode) *securityv1.PeerAuthentication {
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: created, UID: "uid-pa"}}
	pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
	return pa
}

func destRule(ns, name, host string, mode networkingapi.ClientTLSSettings_TLSmode) *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: created, UID: types.UID("uid-dr-" + name)}}
	dr.Spec.Host = host
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: mode}}
	return dr
}
