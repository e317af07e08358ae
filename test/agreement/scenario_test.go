package agreement

import (
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

// scenario is what the comparison reads of a scenario file itself.
type scenario struct {
	// hosts are the hosts the oracle enumerates: Kubernetes Services'
	// and MESH_INTERNAL ServiceEntries'.
	hosts map[string]bool
	// external are the hosts of MESH_EXTERNAL ServiceEntries only, for
	// which the engine must report no row.
	external map[string]bool
	// scoped are the pods ("namespace/name") a Sidecar resource applies
	// to: the oldest of its namespace it selects or without selector, else
	// the root namespace's without selector (extended semantics doc §3.1).
	scoped map[string]bool
}

func readScenario(t *testing.T, path string) scenario {
	t.Helper()
	res, err := load.Paths([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := scenario{hosts: map[string]bool{}, external: map[string]bool{}, scoped: map[string]bool{}}
	var pods []*corev1.Pod
	sidecars := map[string][]*networkingv1.Sidecar{}
	for _, o := range res.Objects {
		switch o := o.(type) {
		case *corev1.Service:
			if o.Spec.Type != corev1.ServiceTypeExternalName {
				sc.hosts[o.Name+"."+o.Namespace+".svc."+policy.DefaultMesh().ClusterDomain] = true
			}
		case *networkingv1.ServiceEntry:
			internal := o.Spec.GetLocation() == networkingapi.ServiceEntry_MESH_INTERNAL &&
				o.Spec.GetResolution() != networkingapi.ServiceEntry_DYNAMIC_DNS
			for _, h := range o.Spec.GetHosts() {
				if internal {
					sc.hosts[h] = true
				} else {
					sc.external[h] = true
				}
			}
		case *corev1.Pod:
			pods = append(pods, o)
		case *networkingv1.Sidecar:
			sidecars[o.Namespace] = append(sidecars[o.Namespace], o)
		}
	}
	for h := range sc.hosts {
		delete(sc.external, h)
	}
	rootDefault := false
	for _, s := range sidecars[policy.DefaultMesh().RootNamespace] {
		rootDefault = rootDefault || s.Spec.GetWorkloadSelector() == nil
	}
	for _, p := range pods {
		scoped := rootDefault
		for _, s := range sidecars[p.Namespace] {
			sel := s.Spec.GetWorkloadSelector()
			if sel == nil || subsetOf(sel.GetLabels(), p.Labels) {
				scoped = true
			}
		}
		if scoped {
			sc.scoped[p.Namespace+"/"+p.Name] = true
		}
	}
	return sc
}

func subsetOf(sel, labels map[string]string) bool {
	for k, v := range sel {
		if w, ok := labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}
