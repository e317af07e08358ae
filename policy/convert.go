package policy

import (
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	networkingv1beta1 "istio.io/client-go/pkg/apis/networking/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	securityv1beta1 "istio.io/client-go/pkg/apis/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Normalize converts a DestinationRule, PeerAuthentication, ServiceEntry,
// WorkloadEntry or Sidecar of any served version to the v1 type the engine
// reads: istio/api defines v1 as an alias
// of the older schemas, so only the envelope changes. Other objects are
// returned as they are.
func Normalize(obj runtime.Object) (runtime.Object, error) {
	switch o := obj.(type) {
	case *networkingv1beta1.DestinationRule:
		out := &networkingv1.DestinationRule{ObjectMeta: o.ObjectMeta}
		o.Spec.DeepCopyInto(&out.Spec)
		out.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("DestinationRule"))
		return out, nil
	case *networkingv1alpha3.DestinationRule:
		out := &networkingv1.DestinationRule{ObjectMeta: o.ObjectMeta}
		o.Spec.DeepCopyInto(&out.Spec)
		out.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("DestinationRule"))
		return out, nil
	case *networkingv1alpha3.ServiceEntry:
		return serviceEntryV1(o.ObjectMeta, &o.Spec), nil
	case *networkingv1beta1.ServiceEntry:
		return serviceEntryV1(o.ObjectMeta, &o.Spec), nil
	case *networkingv1alpha3.WorkloadEntry:
		return workloadEntryV1(o.ObjectMeta, &o.Spec), nil
	case *networkingv1beta1.WorkloadEntry:
		return workloadEntryV1(o.ObjectMeta, &o.Spec), nil
	case *networkingv1alpha3.Sidecar:
		return sidecarV1(o.ObjectMeta, &o.Spec), nil
	case *networkingv1beta1.Sidecar:
		return sidecarV1(o.ObjectMeta, &o.Spec), nil
	case *securityv1beta1.PeerAuthentication:
		out := &securityv1.PeerAuthentication{ObjectMeta: o.ObjectMeta}
		o.Spec.DeepCopyInto(&out.Spec)
		out.SetGroupVersionKind(securityv1.SchemeGroupVersion.WithKind("PeerAuthentication"))
		return out, nil
	}
	return obj, nil
}

func serviceEntryV1(meta metav1.ObjectMeta, spec *networkingapi.ServiceEntry) *networkingv1.ServiceEntry {
	out := &networkingv1.ServiceEntry{ObjectMeta: meta}
	spec.DeepCopyInto(&out.Spec)
	out.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("ServiceEntry"))
	return out
}

func workloadEntryV1(meta metav1.ObjectMeta, spec *networkingapi.WorkloadEntry) *networkingv1.WorkloadEntry {
	out := &networkingv1.WorkloadEntry{ObjectMeta: meta}
	spec.DeepCopyInto(&out.Spec)
	out.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("WorkloadEntry"))
	return out
}

func sidecarV1(meta metav1.ObjectMeta, spec *networkingapi.Sidecar) *networkingv1.Sidecar {
	out := &networkingv1.Sidecar{ObjectMeta: meta}
	spec.DeepCopyInto(&out.Spec)
	out.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("Sidecar"))
	return out
}
