package policy

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// render prints the full table with every endpoint verdict, the form the
// golden scenarios compare.
func render(t *testing.T, st *State) string {
	t.Helper()
	groups, err := st.Table(Query{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, r := range Expand(groups) {
		fmt.Fprintf(&b, "%s %s\n", r.View, strings.Join(r.Columns(), " "))
		for _, ep := range r.Endpoints {
			fmt.Fprintf(&b, "  %+v\n", ep)
		}
	}
	return b.String()
}

// randomObject is one object of a small universe in which every kind of
// event collides often: three namespaces, three apps, pods with and
// without sidecars, policies and rules at every level.
func randomObject(r *rand.Rand) runtime.Object {
	ns := fmt.Sprintf("ns%d", r.IntN(3))
	app := fmt.Sprintf("app%d", r.IntN(3))
	modes := []securityapi.PeerAuthentication_MutualTLS_Mode{securityapi.PeerAuthentication_MutualTLS_UNSET, securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, securityapi.PeerAuthentication_MutualTLS_STRICT, securityapi.PeerAuthentication_MutualTLS_DISABLE}
	tls := []networkingapi.ClientTLSSettings_TLSmode{networkingapi.ClientTLSSettings_DISABLE, networkingapi.ClientTLSSettings_ISTIO_MUTUAL}
	switch r.IntN(6) {
	case 0:
		labels := map[string]string{InjectionLabel: []string{"enabled", "disabled"}[r.IntN(2)]}
		if r.IntN(2) == 0 {
			labels[DataplaneModeLabel] = "ambient"
		}
		if r.IntN(4) == 0 {
			labels[UseWaypointLabel] = "waypoint"
		}
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}
	case 1:
		s := svc(ns, app, 80, intstrInt(8080))
		if r.IntN(3) == 0 {
			s.Spec.Selector = map[string]string{"app": fmt.Sprintf("app%d", r.IntN(3))}
		}
		return s
	case 2:
		extra := map[string]string{}
		if r.IntN(2) == 0 {
			extra["version"] = "v1"
		}
		switch r.IntN(6) {
		case 0:
			extra[DataplaneModeLabel] = "ambient"
		case 1:
			extra[DataplaneModeLabel] = "none"
		case 2:
			extra[TunnelLabel] = "http"
		}
		return podOf(ns, fmt.Sprintf("%s-%d", app, r.IntN(4)), app, r.IntN(4) != 0, extra)
	case 3:
		if r.IntN(2) == 0 {
			return pa(ns, "default", modes[r.IntN(4)])
		}
		return pa(ns, app, modes[r.IntN(4)], paSelector(map[string]string{"app": app}), paPort(8080, modes[r.IntN(4)]))
	default:
		host := []string{app, "*.local", "*." + ns + ".svc.cluster.local"}[r.IntN(3)]
		opts := []drOpt{drTLS(tls[r.IntN(2)])}
		if r.IntN(3) == 0 {
			opts = append(opts, drSelector(map[string]string{"app": app}))
		}
		if r.IntN(3) == 0 {
			opts = append(opts, drSubset("v1", map[string]string{"version": "v1"}, nil))
		}
		return dr(ns, "r-"+app, host, opts...)
	}
}

func key(o runtime.Object) string {
	m := o.(metav1.Object)
	return fmt.Sprintf("%T/%s/%s", o, m.GetNamespace(), m.GetName())
}

// TestClonedStatesStayIndependent applies random events one by one, each
// to a Clone of the previous state, and checks that every state reads
// exactly like a state built from scratch from its objects, and that no
// later event changes an earlier state: what lets decisions read a state
// while the cache moves on.
func TestClonedStatesStayIndependent(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		live := map[string]runtime.Object{}
		st := mustState(t, Snapshot{})
		type version struct {
			st    *State
			table string
		}
		var versions []version
		for step := 0; step < 60; step++ {
			next := st.Clone()
			o := randomObject(r)
			if old, ok := live[key(o)]; ok && r.IntN(3) == 0 {
				delete(live, key(o))
				if err := next.Remove(old); err != nil {
					t.Fatal(err)
				}
			} else {
				live[key(o)] = o
				if err := next.Apply(o); err != nil {
					t.Fatal(err)
				}
			}
			var snap Snapshot
			for _, o := range live {
				switch o := o.(type) {
				case *corev1.Namespace:
					snap.Namespaces = append(snap.Namespaces, o)
				case *corev1.Service:
					snap.Services = append(snap.Services, o)
				case *corev1.Pod:
					snap.Pods = append(snap.Pods, o)
				case *securityv1.PeerAuthentication:
					snap.PeerAuthentications = append(snap.PeerAuthentications, o)
				case *networkingv1.DestinationRule:
					snap.DestinationRules = append(snap.DestinationRules, o)
				}
			}
			got, want := render(t, next), render(t, mustState(t, snap))
			if got != want {
				t.Fatalf("seed %d step %d: incremental state differs from a fresh one\n--- incremental\n%s--- fresh\n%s", seed, step, got, want)
			}
			if next.totalViews != mustState(t, snap).totalViews {
				t.Fatalf("seed %d step %d: %d views counted, want %d", seed, step, next.totalViews, mustState(t, snap).totalViews)
			}
			if got, want := next.totalZtunnelViews, mustState(t, snap).totalZtunnelViews; got != want {
				t.Fatalf("seed %d step %d: %d ztunnel views counted, want %d", seed, step, got, want)
			}
			versions = append(versions, version{next, got})
			st = next
		}
		for i, v := range versions {
			if got := render(t, v.st); got != v.table {
				t.Fatalf("seed %d: version %d changed after later events", seed, i)
			}
		}
	}
}
