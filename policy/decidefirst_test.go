package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// wideMesh is a mixed sidecar and ambient mesh big enough that decisions run on several workers
// (more than parallelAbove services) and that most rows of a wide write
// fall behind the first ones a limited decision keeps.
func wideMesh(t *testing.T, seed uint64) *State {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 11))
	modes := []securityapi.PeerAuthentication_MutualTLS_Mode{securityapi.PeerAuthentication_MutualTLS_UNSET, securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, securityapi.PeerAuthentication_MutualTLS_STRICT, securityapi.PeerAuthentication_MutualTLS_DISABLE}
	tls := []networkingapi.ClientTLSSettings_TLSmode{networkingapi.ClientTLSSettings_DISABLE, networkingapi.ClientTLSSettings_ISTIO_MUTUAL}
	snap := Snapshot{}
	snap.PeerAuthentications = append(snap.PeerAuthentications, pa("istio-system", "default", securityapi.PeerAuthentication_MutualTLS_STRICT))
	snap.DestinationRules = append(snap.DestinationRules, dr("istio-system", "default", "*.local", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)))
	for n := 0; n < 130; n++ {
		ns := fmt.Sprintf("ns%03d", n)
		if n%4 == 3 { // ambient namespaces: ztunnel clients and captured servers
			snap.Namespaces = append(snap.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{DataplaneModeLabel: "ambient"}}})
		}
		for a := 0; a < 4; a++ {
			app := fmt.Sprintf("app%d", a)
			snap.Services = append(snap.Services, svc(ns, app, 80, intstrInt(8080)))
			for p := 0; p < 2; p++ {
				snap.Pods = append(snap.Pods, podOf(ns, fmt.Sprintf("%s-%d", app, p), app, r.IntN(5) != 0, nil))
			}
		}
		if r.IntN(4) == 0 {
			snap.PeerAuthentications = append(snap.PeerAuthentications, pa(ns, "default", modes[r.IntN(4)]))
		}
		if r.IntN(4) == 0 {
			snap.PeerAuthentications = append(snap.PeerAuthentications, pa(ns, "app1", modes[r.IntN(4)], paSelector(map[string]string{"app": "app1"}), paPort(8080, modes[r.IntN(4)])))
		}
		if r.IntN(3) == 0 {
			host := []string{"app2", "*." + ns + ".svc.cluster.local", fmt.Sprintf("app0.ns%03d.svc.cluster.local", r.IntN(130))}[r.IntN(3)]
			snap.DestinationRules = append(snap.DestinationRules, dr(ns, "r", host, drTLS(tls[r.IntN(2)])))
		}
	}
	return mustState(t, snap)
}

// TestDecideFirstIsAPrefixOfDecide: a limited decision, which only counts
// the rows it cannot keep, reports the same first rows and the same totals
// as the full one, for the widest writes.
func TestDecideFirstIsAPrefixOfDecide(t *testing.T) {
	strict, permissive, disable := securityapi.PeerAuthentication_MutualTLS_STRICT, securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, securityapi.PeerAuthentication_MutualTLS_DISABLE
	changes := map[string]Change{
		"mesh STRICT to DISABLE":            {Old: pa("istio-system", "default", strict), New: pa("istio-system", "default", disable)},
		"mesh STRICT to PERMISSIVE":         {Old: pa("istio-system", "default", strict), New: pa("istio-system", "default", permissive)},
		"mesh rule ISTIO_MUTUAL to DISABLE": {Old: dr("istio-system", "default", "*.local", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)), New: dr("istio-system", "default", "*.local", drTLS(networkingapi.ClientTLSSettings_DISABLE))},
		"mesh rule deleted":                 {Old: dr("istio-system", "default", "*.local", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL))},
		"namespace STRICT":                  {New: pa("ns007", "default", strict)},
	}
	for seed := uint64(1); seed <= 3; seed++ {
		st := wideMesh(t, seed)
		if n := st.servicesByHost.len(); n <= parallelAbove {
			t.Fatalf("the mesh has %d services: too few to split a decision among workers", n)
		}
		for name, ch := range changes {
			full, err := st.Decide(context.Background(), ch)
			if err != nil {
				t.Fatal(err)
			}
			if full.NewTotal != len(full.New) || full.ResolvedTotal != len(full.Resolved) {
				t.Fatalf("seed %d %s: a full decision counts %d/%d rows and lists %d/%d", seed, name, full.NewTotal, full.ResolvedTotal, len(full.New), len(full.Resolved))
			}
			for _, limit := range []int{0, 1, 3, 10} {
				first, err := st.DecideFirst(context.Background(), ch, limit)
				if err != nil {
					t.Fatal(err)
				}
				if first.NewTotal != full.NewTotal || first.ResolvedTotal != full.ResolvedTotal {
					t.Errorf("seed %d %s limit %d: totals %d/%d, want %d/%d", seed, name, limit, first.NewTotal, first.ResolvedTotal, full.NewTotal, full.ResolvedTotal)
				}
				compareFirst(t, fmt.Sprintf("seed %d %s limit %d: new", seed, name, limit), first.New, full.New, limit)
				compareFirst(t, fmt.Sprintf("seed %d %s limit %d: resolved", seed, name, limit), first.Resolved, full.Resolved, limit)
			}
		}
	}
}

func compareFirst(t *testing.T, what string, got, all []Group, limit int) {
	t.Helper()
	want := all[:min(limit, len(all))]
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
		return
	}
	for i := range want {
		if !reflect.DeepEqual(got[i].Row, want[i].Row) || !reflect.DeepEqual(viewKeys(got[i].Views), viewKeys(want[i].Views)) {
			t.Errorf("%s: row %d is %s for %v, want %s for %v", what, i, got[i].Row.HostPort(), viewKeys(got[i].Views), want[i].Row.HostPort(), viewKeys(want[i].Views))
		}
	}
}

func viewKeys(v ViewSet) []string {
	var out []string
	for _, cv := range v.List() {
		out = append(out, cv.String())
	}
	return out
}
