package policy

import (
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReachOf(t *testing.T) {
	sidecar := func(ns string, selected bool) *networkingv1.Sidecar {
		s := &networkingv1.Sidecar{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
		if selected {
			s.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": "a"}}
		}
		return s
	}
	m := DefaultMesh()
	for _, tc := range []struct {
		name string
		ch   Change
		want Reach
	}{
		{"a root namespace policy without a selector reaches the mesh", Change{New: pa("istio-system", "default", strict)}, ReachMesh},
		{"deleting the mesh policy reaches the mesh", Change{Old: pa("istio-system", "default", strict)}, ReachMesh},
		{"a namespace policy reaches its namespace", Change{New: pa("shop", "default", strict)}, ReachNamespace},
		{"a policy with an empty selector is the namespace's", Change{New: pa("shop", "p", strict, paSelector(map[string]string{}))}, ReachNamespace},
		{"a policy with a selector reaches workloads", Change{New: pa("shop", "p", strict, paSelector(map[string]string{"app": "a"}))}, ReachWorkload},
		{"dropping a selector widens the change to the namespace", Change{
			Old: pa("shop", "p", strict, paSelector(map[string]string{"app": "a"})), New: pa("shop", "p", strict)}, ReachNamespace},
		{"a rule for one host reaches a service", Change{New: dr("shop", "r", "cart")}, ReachService},
		{"a rule for a namespace's services reaches the namespace", Change{New: dr("shop", "r", "*.shop.svc.cluster.local")}, ReachNamespace},
		{"a *.local rule reaches the mesh", Change{New: dr("istio-system", "r", "*.local")}, ReachMesh},
		{"narrowing *.local to one host is still mesh-wide", Change{Old: dr("shop", "r", "*.local"), New: dr("shop", "r", "cart")}, ReachMesh},
		{"a namespace's Sidecar reaches its namespace", Change{New: sidecar("shop", false)}, ReachNamespace},
		{"the root namespace's default Sidecar reaches the mesh", Change{New: sidecar("istio-system", false)}, ReachMesh},
		{"a Sidecar with a selector reaches workloads", Change{New: sidecar("shop", true)}, ReachWorkload},
		{"a ServiceEntry reaches a service", Change{New: &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "e"}}}, ReachService},
		{"a WorkloadEntry reaches a workload", Change{New: &networkingv1.WorkloadEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "w"}}}, ReachWorkload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReachOf(tc.ch, m); got != tc.want {
				t.Errorf("ReachOf = %s, want %s", got, tc.want)
			}
		})
	}
}
