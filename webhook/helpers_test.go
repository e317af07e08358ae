package webhook

import (
	"encoding/json"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/mtlsguard/mtlsguard/policy"
)

// created is the creationTimestamp of the fixtures: older than any write.
var created = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

// deepDive returns a synced store holding Istio's Mutual TLS Deep-Dive
// after "globally enable mutual TLS": sleep and httpbin with sidecars in
// default, a mesh STRICT PeerAuthentication and a *.local ISTIO_MUTUAL
// DestinationRule in istio-system. extra objects are applied after them.
func deepDive(t *testing.T, extra ...runtime.Object) *Store {
	t.Helper()
	s, err := NewStore(policy.DefaultMesh())
	if err != nil {
		t.Fatal(err)
	}
	objs := []runtime.Object{
		namespace("default", map[string]string{"istio-injection": "enabled"}),
		namespace("istio-system", nil),
		service("default", "httpbin", 8000, 8080),
		service("default", "sleep", 80, 0),
		sidecarPod("default", "httpbin-1", "httpbin"),
		sidecarPod("default", "sleep-1", "sleep"),
		peerAuth("istio-system", "default", securityapi.PeerAuthentication_MutualTLS_STRICT),
		destRule("istio-system", "default", "*.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL),
	}
	for _, o := range append(objs, extra...) {
		if err := s.Apply(o); err != nil {
			t.Fatalf("apply %s: %v", describe(o), err)
		}
	}
	s.markSynced()
	return s
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func service(ns, name string, port, target int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt32(target)}},
		},
	}
}

func sidecarPod(ns, name, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ns,
			Name:        name,
			Labels:      map[string]string{"app": app, policy.TLSModeLabel: "istio"},
			Annotations: map[string]string{policy.SidecarStatusAnnotation: `{"containers":["istio-proxy"]}`},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app}, {Name: policy.ProxyContainerName}}},
	}
}

func peerAuth(ns, name string, mode securityapi.PeerAuthentication_MutualTLS_Mode) *securityv1.PeerAuthentication {
	pa := &securityv1.PeerAuthentication{
		TypeMeta:   metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "PeerAuthentication"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: created},
	}
	pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
	return pa
}

func destRule(ns, name, host string, mode networkingapi.ClientTLSSettings_TLSmode) *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "DestinationRule"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: created},
	}
	dr.Spec.Host = host
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: mode}}
	return dr
}

// badRule is the Deep-Dive's bad-rule, as written (no creationTimestamp).
func badRule() *networkingv1.DestinationRule {
	dr := destRule("default", "bad-rule", "httpbin.default.svc.cluster.local", networkingapi.ClientTLSSettings_DISABLE)
	dr.CreationTimestamp = metav1.Time{}
	return dr
}

// request builds an admission request for a write of obj (old for update
// and delete); dryRun marks it server-side dry-run.
func request(t testing.TB, op admissionv1.Operation, obj, old runtime.Object) admission.Request {
	t.Helper()
	ref := obj
	if ref == nil {
		ref = old
	}
	gvk := ref.GetObjectKind().GroupVersionKind()
	m := ref.(metav1.Object)
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid",
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Namespace: m.GetNamespace(),
		Name:      m.GetName(),
		Operation: op,
	}}
	raw := func(o runtime.Object) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	req.Object, req.OldObject = raw(obj), raw(old)
	return req
}

func testValidator(t testing.TB, k kind, s *Store, mutate ...func(*Options)) *validator {
	t.Helper()
	o := DefaultOptions()
	// Names everything, unless a test asks for disclosure.go's filter.
	o.Disclose = DiscloseAll
	for _, m := range mutate {
		m(&o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	v := newValidator(k, s, o)
	v.now = func() time.Time { return created.Add(time.Hour) }
	return v
}
