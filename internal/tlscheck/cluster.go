package tlscheck

import (
	"context"
	"fmt"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1beta1 "istio.io/client-go/pkg/apis/networking/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	securityv1beta1 "istio.io/client-go/pkg/apis/security/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

// restConfig loads the kubeconfig the way kubectl does: --kubeconfig, else
// $KUBECONFIG, else ~/.kube/config; --context picks a context.
func restConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

// readCluster reads the objects tls-check needs from a live cluster: every
// Namespace, Service and Pod, the PeerAuthentications, DestinationRules,
// ServiceEntries, WorkloadEntries and Sidecars (v1, or v1beta1 where an
// older Istio serves only that), and the mesh
// ConfigMap of the root namespace.
func readCluster(ctx context.Context, kubeconfig, kubeContext, rootNamespace string) (load.Result, error) {
	cfg, err := restConfig(kubeconfig, kubeContext)
	if err != nil {
		return load.Result{}, err
	}
	c, err := client.New(cfg, client.Options{Scheme: load.Scheme()})
	if err != nil {
		return load.Result{}, fmt.Errorf("create client for %s: %w", cfg.Host, err)
	}
	var res load.Result
	lists := []struct {
		what     string
		list     client.ObjectList
		fallback client.ObjectList // an older served version
	}{
		{"namespaces", &corev1.NamespaceList{}, nil},
		{"services", &corev1.ServiceList{}, nil},
		{"pods", &corev1.PodList{}, nil},
		{"peerauthentications.security.istio.io", &securityv1.PeerAuthenticationList{}, &securityv1beta1.PeerAuthenticationList{}},
		{"destinationrules.networking.istio.io", &networkingv1.DestinationRuleList{}, &networkingv1beta1.DestinationRuleList{}},
		{"serviceentries.networking.istio.io", &networkingv1.ServiceEntryList{}, &networkingv1beta1.ServiceEntryList{}},
		{"workloadentries.networking.istio.io", &networkingv1.WorkloadEntryList{}, &networkingv1beta1.WorkloadEntryList{}},
		{"sidecars.networking.istio.io", &networkingv1.SidecarList{}, &networkingv1beta1.SidecarList{}},
	}
	for _, l := range lists {
		list := l.list
		err := c.List(ctx, list)
		if meta.IsNoMatchError(err) && l.fallback != nil {
			list = l.fallback
			err = c.List(ctx, list)
		}
		if meta.IsNoMatchError(err) {
			return res, fmt.Errorf("list %s: the API is not served: is Istio installed in this cluster?", l.what)
		}
		if err != nil {
			return res, fmt.Errorf("list %s: %w", l.what, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return res, fmt.Errorf("list %s: %w", l.what, err)
		}
		for _, item := range items {
			obj, err := policy.Normalize(item)
			if err != nil {
				return res, fmt.Errorf("%s: %w", l.what, err)
			}
			res.Objects = append(res.Objects, obj)
		}
	}
	var cm corev1.ConfigMap
	switch err := c.Get(ctx, client.ObjectKey{Namespace: rootNamespace, Name: policy.MeshConfigMapName}, &cm); {
	case err == nil:
		res.Objects = append(res.Objects, runtime.Object(&cm))
	case apierrors.IsNotFound(err):
	default:
		return res, fmt.Errorf("get ConfigMap %s/%s: %w", rootNamespace, policy.MeshConfigMapName, err)
	}
	return res, nil
}
