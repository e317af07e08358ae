package policy

import (
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	networkingv1beta1 "istio.io/client-go/pkg/apis/networking/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	securityv1beta1 "istio.io/client-go/pkg/apis/security/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Normalize converts a DestinationRule or PeerAuthentication of any served
// version to the v1 type the engine reads: istio/api defines v1 as an alias
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
	case *securityv1beta1.PeerAuthentication:
		out := &securityv1.PeerAuthentication{ObjectMeta: o.ObjectMeta}
		o.Spec.DeepCopyInto(&out.Spec)
		out.SetGroupVersionKind(securityv1.SchemeGroupVersion.WithKind("PeerAuthentication"))
		return out, nil
	}
	return obj, nil
}
