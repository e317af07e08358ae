package policy

import (
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Reach is how far a write's configuration can reach, by its shape alone:
// what a decision's cost and blast radius follow. It labels the webhook's
// decision latencies, so that an operator (or a benchmark) can tell the
// service-level answers, which should take a millisecond, from the mesh-wide
// ones, which evaluate every service.
type Reach string

const (
	// ReachWorkload: a PeerAuthentication or Sidecar with a selector, a
	// WorkloadEntry.
	ReachWorkload Reach = "workload"
	// ReachService: a DestinationRule for one host, a ServiceEntry.
	ReachService Reach = "service"
	// ReachNamespace: a namespace's PeerAuthentication or Sidecar, a
	// DestinationRule for "*.<namespace>.svc.<domain>".
	ReachNamespace Reach = "namespace"
	// ReachMesh: the root namespace's PeerAuthentication or Sidecar without
	// a selector, a DestinationRule for any other wildcard host.
	ReachMesh Reach = "mesh"
)

// ReachOf returns the reach of a change: the wider of its old and new
// objects'.
func ReachOf(ch Change, m Mesh) Reach {
	widest := ReachWorkload
	for _, o := range []runtime.Object{ch.Old, ch.New} {
		if r := reachOf(o, m); rank(r) > rank(widest) {
			widest = r
		}
	}
	return widest
}

func reachOf(o runtime.Object, m Mesh) Reach {
	byLevel := func(namespace string, selected bool) Reach {
		switch {
		case selected:
			return ReachWorkload
		case namespace == m.RootNamespace:
			return ReachMesh
		}
		return ReachNamespace
	}
	switch o := o.(type) {
	case *securityv1.PeerAuthentication:
		if o != nil {
			return byLevel(o.Namespace, len(o.Spec.GetSelector().GetMatchLabels()) > 0)
		}
	case *networkingv1.Sidecar:
		if o != nil {
			return byLevel(o.Namespace, o.Spec.GetWorkloadSelector() != nil)
		}
	case *networkingv1.DestinationRule:
		if o == nil {
			break
		}
		h := resolveHost(o.Spec.GetHost(), o.Namespace, m.ClusterDomain)
		if _, ok := namespaceWildcard(h, ".svc."+m.ClusterDomain); ok {
			return ReachNamespace
		}
		if isWildcard(h) {
			return ReachMesh
		}
		return ReachService
	case *networkingv1.ServiceEntry:
		if o != nil {
			return ReachService
		}
	}
	return ReachWorkload
}

func rank(r Reach) int {
	switch r {
	case ReachService:
		return 1
	case ReachNamespace:
		return 2
	case ReachMesh:
		return 3
	}
	return 0
}
