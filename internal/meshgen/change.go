package meshgen

import (
	"fmt"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Extras adds what the seeded meshes lack and the fuzz tests want: a
// namespace labelled for injection with no pod (a client view without
// pods) and a namespace of sidecar clients that are no service's endpoints.
// Call it after Mesh; the objects are returned and kept for Change.
func (g *Gen) Extras() []runtime.Object {
	var out []runtime.Object
	if g.chance(0.5) {
		out = append(out, &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"),
			ObjectMeta: metav1.ObjectMeta{Name: "injected", Labels: map[string]string{InjectionLabel: "enabled"}}})
	}
	if g.chance(0.5) {
		out = append(out, &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: "clients"}})
		for i := 0; i < 1+g.intn(2); i++ {
			out = append(out, &corev1.Pod{
				TypeMeta: typeMeta("v1", "Pod"),
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("client-%d", i), Namespace: "clients",
					Labels:      map[string]string{"app": fmt.Sprintf("svc%d", g.intn(2)), TLSModeLabel: "istio"},
					Annotations: map[string]string{SidecarStatusAnnotation: "{}"}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning},
			})
		}
	}
	g.objs = append(g.objs, out...)
	return out
}

// Change proposes one write of a DestinationRule or a PeerAuthentication
// to the mesh: a create (old nil), an update (same namespace and name; the
// creation time kept, as the API server keeps it) or a delete (upd nil).
// Call it after Mesh; it does not change the generated objects.
func (g *Gen) Change() (old, upd runtime.Object) {
	var drs []*networkingv1.DestinationRule
	var pas []*securityv1.PeerAuthentication
	for _, o := range g.objs {
		switch o := o.(type) {
		case *networkingv1.DestinationRule:
			drs = append(drs, o)
		case *securityv1.PeerAuthentication:
			pas = append(pas, o)
		}
	}
	g.changes++
	all := append([]string{RootNamespace}, g.nss...)
	op := g.intn(3) // 0 create, 1 update, 2 delete
	if g.chance(0.5) {
		if op == 0 || len(drs) == 0 {
			return nil, g.destinationRule(pick(g, all), fmt.Sprintf("new-dr%d", g.changes))
		}
		d := pick(g, drs)
		if op == 2 {
			return d, nil
		}
		u := g.destinationRule(d.Namespace, d.Name)
		u.CreationTimestamp = d.CreationTimestamp
		return d, u
	}
	if op == 0 || len(pas) == 0 {
		ns := pick(g, all)
		return nil, g.anyPeerAuth(ns, fmt.Sprintf("new-pa%d", g.changes))
	}
	p := pick(g, pas)
	if op == 2 {
		return p, nil
	}
	u := g.anyPeerAuth(p.Namespace, p.Name)
	u.CreationTimestamp = p.CreationTimestamp
	return p, u
}

// anyPeerAuth is a PeerAuthentication in ns at a random level: namespace
// (mesh in the root namespace) or workload (ignored in the root namespace).
func (g *Gen) anyPeerAuth(ns, name string) *securityv1.PeerAuthentication {
	if ns == RootNamespace {
		p := g.peerAuth(ns, name)
		if g.chance(0.2) {
			p.Spec.Selector = g.workloadPeerAuth(g.nss[0], name).Spec.Selector
		}
		return p
	}
	if g.chance(0.5) {
		return g.peerAuth(ns, name)
	}
	return g.workloadPeerAuth(ns, name)
}
