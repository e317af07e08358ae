package policy

import (
	"fmt"
	"slices"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestTableYieldsBetweenServices proves Query.Yield is called while a whole
// table is built, between services (the audit waits in it while admissions
// are decided), and changes nothing in the table.
func TestTableYieldsBetweenServices(t *testing.T) {
	var snap Snapshot
	snap.Namespaces = []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"istio-injection": "enabled"}}}}
	snap.PeerAuthentications = []*securityv1.PeerAuthentication{pa("a", "default", securityapi.PeerAuthentication_MutualTLS_STRICT)}
	snap.DestinationRules = []*networkingv1.DestinationRule{dr("a", "bad", "svc1.a.svc.cluster.local", drTLS(networkingapi.ClientTLSSettings_DISABLE))}
	const services = 20
	for i := range services {
		name := fmt.Sprintf("svc%d", i)
		snap.Services = append(snap.Services, svc("a", name, 80, intstrInt(8080)))
		snap.Pods = append(snap.Pods, podOf("a", name+"-0", name, i%3 != 0, nil))
	}
	st := mustState(t, snap)
	for _, conflicts := range []bool{false, true} {
		yields := 0
		got := renderRows(t, st, Query{Conflicts: conflicts, Yield: func() { yields++ }}, false)
		if want := services / 8; yields != want {
			t.Errorf("Conflicts=%v: Yield called %d times for %d services, want %d (every eight)", conflicts, yields, services, want)
		}
		if len(got) == 0 {
			t.Fatalf("Conflicts=%v: no rows", conflicts)
		}
		if want := renderRows(t, st, Query{Conflicts: conflicts}, false); !slices.Equal(got, want) {
			t.Errorf("Conflicts=%v: a yielding table differs:\n%v\nwant\n%v", conflicts, got, want)
		}
	}
}
