package policy

import (
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Builders for unit tests: small, explicit objects.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(sec int) metav1.Time { return metav1.NewTime(t0.Add(time.Duration(sec) * time.Second)) }

var (
	strict     = securityapi.PeerAuthentication_MutualTLS_STRICT
	permissive = securityapi.PeerAuthentication_MutualTLS_PERMISSIVE
	disable    = securityapi.PeerAuthentication_MutualTLS_DISABLE
	unset      = securityapi.PeerAuthentication_MutualTLS_UNSET
)

type paOpt func(*securityv1.PeerAuthentication)

func pa(ns, name string, mode securityapi.PeerAuthentication_MutualTLS_Mode, opts ...paOpt) *securityv1.PeerAuthentication {
	p := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: at(0)}}
	p.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
	for _, o := range opts {
		o(p)
	}
	return p
}

func paSelector(l map[string]string) paOpt {
	return func(p *securityv1.PeerAuthentication) {
		p.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: l}
	}
}

func paPort(port uint32, mode securityapi.PeerAuthentication_MutualTLS_Mode) paOpt {
	return func(p *securityv1.PeerAuthentication) {
		if p.Spec.PortLevelMtls == nil {
			p.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{}
		}
		p.Spec.PortLevelMtls[port] = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
	}
}

func paCreated(sec int) paOpt {
	return func(p *securityv1.PeerAuthentication) { p.CreationTimestamp = at(sec) }
}

func paNoMTLS() paOpt { return func(p *securityv1.PeerAuthentication) { p.Spec.Mtls = nil } }

type drOpt func(*networkingv1.DestinationRule)

func dr(ns, name, host string, opts ...drOpt) *networkingv1.DestinationRule {
	d := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: at(0)}}
	d.Spec.Host = host
	for _, o := range opts {
		o(d)
	}
	return d
}

func tlsOf(m networkingapi.ClientTLSSettings_TLSmode) *networkingapi.ClientTLSSettings {
	return &networkingapi.ClientTLSSettings{Mode: m}
}

func drTLS(m networkingapi.ClientTLSSettings_TLSmode) drOpt {
	return func(d *networkingv1.DestinationRule) {
		if d.Spec.TrafficPolicy == nil {
			d.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{}
		}
		d.Spec.TrafficPolicy.Tls = tlsOf(m)
	}
}

func drPort(port uint32, tls *networkingapi.ClientTLSSettings) drOpt {
	return func(d *networkingv1.DestinationRule) {
		if d.Spec.TrafficPolicy == nil {
			d.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{}
		}
		d.Spec.TrafficPolicy.PortLevelSettings = append(d.Spec.TrafficPolicy.PortLevelSettings,
			&networkingapi.TrafficPolicy_PortTrafficPolicy{Port: &networkingapi.PortSelector{Number: port}, Tls: tls})
	}
}

func drSubset(name string, labels map[string]string, tp *networkingapi.TrafficPolicy) drOpt {
	return func(d *networkingv1.DestinationRule) {
		d.Spec.Subsets = append(d.Spec.Subsets, &networkingapi.Subset{Name: name, Labels: labels, TrafficPolicy: tp})
	}
}

func drExport(to ...string) drOpt {
	return func(d *networkingv1.DestinationRule) { d.Spec.ExportTo = to }
}

func drSelector(l map[string]string) drOpt {
	return func(d *networkingv1.DestinationRule) {
		d.Spec.WorkloadSelector = &typeapi.WorkloadSelector{MatchLabels: l}
	}
}

func drCreated(sec int) drOpt {
	return func(d *networkingv1.DestinationRule) { d.CreationTimestamp = at(sec) }
}

func svc(ns, name string, port int32, target intstr.IntOrString) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: port, TargetPort: target}}},
	}
}

// podOf is a running pod of app; sidecar adds the injector's label and
// annotation.
func podOf(ns, name, app string, sidecar bool, extra map[string]string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for k, v := range extra {
		p.Labels[k] = v
	}
	if sidecar {
		p.Labels[TLSModeLabel] = "istio"
		p.Annotations = map[string]string{SidecarStatusAnnotation: "{}"}
	}
	return p
}

func mustState(tb interface{ Fatal(...any) }, s Snapshot) *State {
	if s.Mesh.RootNamespace == "" {
		s.Mesh = DefaultMesh()
	}
	st, err := NewState(s)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func intstrInt(n int32) intstr.IntOrString { return intstr.FromInt32(n) }
