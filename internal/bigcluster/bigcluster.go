// Package bigcluster generates the deterministic mesh the benchmarks of
// the engine, the webhook and the audit run on: at scale 1, 2,000
// namespaces, 10,000 services, 50,000 pods, 5,000 DestinationRules and
// 2,000 PeerAuthentications; every count grows with the scale.
package bigcluster

import (
	"fmt"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mtlsguard/mtlsguard/policy"
)

// Size of the generated cluster the benchmarks run on (issue #2), at scale
// 1; the 4× cluster of issue #8 multiplies every count by 4.
const (
	Namespaces          = 2000
	Services            = 10000 // 5 per namespace
	Pods                = 50000 // 5 per service
	DestinationRules    = 5000
	PeerAuthentications = 2000
)

// Snapshot generates a deterministic mesh: a mesh STRICT policy and a
// `*.local` ISTIO_MUTUAL rule in istio-system; per namespace five services
// (two ports, one with a named targetPort) of five pods each, most with a
// sidecar; namespace and workload PeerAuthentications; and DestinationRules
// for single services (some with subsets, port-level TLS or exportTo ".")
// and for whole namespaces.
func Snapshot(scale int) policy.Snapshot {
	s := policy.Snapshot{Mesh: policy.DefaultMesh()}
	namespaces, pasMax, drsMax := Namespaces*scale, PeerAuthentications*scale, DestinationRules*scale
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	meta := func(ns, name string, i int) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(i) * time.Second))}
	}
	s.Namespaces = append(s.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}})
	s.PeerAuthentications = append(s.PeerAuthentications, &securityv1.PeerAuthentication{
		ObjectMeta: meta("istio-system", "default", 0),
		Spec:       securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}},
	})
	s.DestinationRules = append(s.DestinationRules, &networkingv1.DestinationRule{
		ObjectMeta: meta("istio-system", "default", 0),
		Spec:       networkingapi.DestinationRule{Host: "*.local", TrafficPolicy: TLSPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)},
	})
	pas, drs := 1, 1
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("ns-%d", n)
		s.Namespaces = append(s.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"istio-injection": "enabled"}}})
		for v := 0; v < Services/Namespaces; v++ {
			app := fmt.Sprintf("svc-%d", v)
			s.Services = append(s.Services, &corev1.Service{
				ObjectMeta: meta(ns, app, 0),
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
					{Name: "grpc", Port: 9090, TargetPort: intstr.FromString("grpc")},
				}},
			})
			for p := 0; p < Pods/Services; p++ {
				pod := &corev1.Pod{
					ObjectMeta: meta(ns, fmt.Sprintf("%s-%d", app, p), 0),
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
						{Name: "http", ContainerPort: 8080}, {Name: "grpc", ContainerPort: 9090},
					}}}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning},
				}
				pod.Labels = map[string]string{"app": app, "version": fmt.Sprintf("v%d", p%2)}
				if (n+v+p)%17 != 0 { // about 6% of pods run without a sidecar
					pod.Labels[policy.TLSModeLabel] = "istio"
					pod.Annotations = map[string]string{policy.SidecarStatusAnnotation: "{}"}
				}
				s.Pods = append(s.Pods, pod)
			}
		}
		// One PeerAuthentication per namespace: alternately namespace-wide
		// PERMISSIVE and a workload STRICT policy with a port-level DISABLE.
		if pas < pasMax {
			pa := &securityv1.PeerAuthentication{ObjectMeta: meta(ns, "default", pas)}
			if n%2 == 0 {
				pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_PERMISSIVE}
			} else {
				pa.Name = "svc-0"
				pa.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "svc-0"}}
				pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
				pa.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{9090: {Mode: securityapi.PeerAuthentication_MutualTLS_DISABLE}}
			}
			s.PeerAuthentications = append(s.PeerAuthentications, pa)
			pas++
		}
		// Two or three DestinationRules per namespace.
		for d := 0; d < 3 && drs < drsMax; d++ {
			if d == 2 && n%2 == 1 {
				break
			}
			dr := &networkingv1.DestinationRule{ObjectMeta: meta(ns, fmt.Sprintf("dr-%d", d), drs)}
			switch d {
			case 0: // a service rule with subsets and mTLS on the http port only
				dr.Spec.Host = fmt.Sprintf("svc-%d", n%5)
				dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{PortLevelSettings: []*networkingapi.TrafficPolicy_PortTrafficPolicy{{
					Port: &networkingapi.PortSelector{Number: 80}, Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL},
				}}}
				dr.Spec.Subsets = []*networkingapi.Subset{{Name: "v0", Labels: map[string]string{"version": "v0"}}, {Name: "v1", Labels: map[string]string{"version": "v1"}}}
			case 1: // a private rule for another namespace's service
				dr.Spec.Host = fmt.Sprintf("svc-1.ns-%d.svc.cluster.local", (n+1)%namespaces)
				dr.Spec.ExportTo = []string{"."}
				dr.Spec.TrafficPolicy = TLSPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
			case 2: // the namespace's own services, connection pool only
				dr.Spec.Host = fmt.Sprintf("*.%s.svc.cluster.local", ns)
				dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}}
			}
			s.DestinationRules = append(s.DestinationRules, dr)
			drs++
		}
	}
	return s
}

// TLSPolicy is a traffic policy that sets only the TLS mode.
func TLSPolicy(m networkingapi.ClientTLSSettings_TLSmode) *networkingapi.TrafficPolicy {
	return &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: m}}
}

// Mixed is Snapshot with every fourth namespace moved to ambient mode:
// labelled istio.io/dataplane-mode=ambient, its pods without sidecars, so
// that they are ztunnel clients and captured servers beside sidecar ones.
func Mixed(scale int) policy.Snapshot {
	s := Snapshot(scale)
	ambient := map[string]bool{}
	for _, n := range s.Namespaces {
		var i int
		if _, err := fmt.Sscanf(n.Name, "ns-%d", &i); err == nil && i%4 == 3 {
			n.Labels = map[string]string{policy.DataplaneModeLabel: "ambient"}
			ambient[n.Name] = true
		}
	}
	for _, p := range s.Pods {
		if ambient[p.Namespace] {
			delete(p.Labels, policy.TLSModeLabel)
			p.Annotations = nil
		}
	}
	return s
}
