// Package scheme builds the runtime.Scheme every part of mtlsguard decodes
// with: the core Kubernetes kinds and every served version of Istio's
// DestinationRule and PeerAuthentication.
package scheme

import (
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	networkingv1beta1 "istio.io/client-go/pkg/apis/networking/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	securityv1beta1 "istio.io/client-go/pkg/apis/security/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// New returns a new scheme with those kinds registered.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		networkingv1.AddToScheme, networkingv1beta1.AddToScheme, networkingv1alpha3.AddToScheme,
		securityv1.AddToScheme, securityv1beta1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // a static registration: cannot fail
		}
	}
	return s
}
