package meshgen

import (
	"slices"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sidecars adds, to some scenarios, Sidecar resources that narrow what
// clients have clusters for (extended semantics doc §3): namespace
// defaults, workloadSelector Sidecars, a root-namespace default, port-scoped
// listeners and outbound traffic policies of the Sidecar and of the mesh.
func (g *Gen) sidecars(root string) {
	if !g.chance(0.4) {
		return
	}
	egress := func(ns string) []*networkingapi.IstioEgressListener {
		choices := []string{"./*", root + "/*", "*/*"}
		for _, o := range g.nss {
			choices = append(choices, o+"/*")
		}
		for _, h := range g.hosts {
			choices = append(choices, "*/"+h)
		}
		var hosts []string
		for i := 0; i < 1+g.intn(3); i++ {
			if h := pick(g, choices); !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
		l := &networkingapi.IstioEgressListener{Hosts: hosts}
		if g.chance(0.2) {
			l.Port = &networkingapi.SidecarPort{Number: 80, Protocol: "HTTP", Name: "http"}
		}
		return []*networkingapi.IstioEgressListener{l}
	}
	outbound := func() *networkingapi.OutboundTrafficPolicy {
		switch g.intn(6) {
		case 0:
			return &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY}
		case 1:
			return &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_ALLOW_ANY}
		}
		return nil
	}
	sidecar := func(ns, name string) *networkingv1.Sidecar {
		return &networkingv1.Sidecar{
			TypeMeta:   typeMeta("networking.istio.io/v1", "Sidecar"),
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: g.created()},
			Spec:       networkingapi.Sidecar{Egress: egress(ns), OutboundTrafficPolicy: outbound()},
		}
	}
	if g.chance(0.3) {
		g.add(sidecar(root, "default"))
	}
	for _, ns := range g.nss {
		if g.chance(0.5) {
			g.add(sidecar(ns, "default"))
		}
		if g.chance(0.25) {
			sc := sidecar(ns, "selected")
			sc.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": pick(g, g.apps[ns]).name}}
			g.add(sc)
		}
	}
	if g.chance(0.2) {
		mode := "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"
		for _, o := range g.objs {
			if cm, ok := o.(*corev1.ConfigMap); ok {
				cm.Data["mesh"] += mode
				return
			}
		}
		g.add(&corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"),
			ObjectMeta: metav1.ObjectMeta{Name: MeshConfigMapName, Namespace: root},
			Data:       map[string]string{"mesh": mode}})
	}
}
