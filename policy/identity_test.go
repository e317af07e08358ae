package policy

import (
	"context"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func drSANs(m networkingapi.ClientTLSSettings_TLSmode, sans ...string) drOpt {
	return func(d *networkingv1.DestinationRule) {
		if d.Spec.TrafficPolicy == nil {
			d.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{}
		}
		d.Spec.TrafficPolicy.Tls = &networkingapi.ClientTLSSettings{Mode: m, SubjectAltNames: sans}
	}
}

func withAccount(p *corev1.Pod, sa string) *corev1.Pod {
	p.Spec.ServiceAccountName = sa
	return p
}

// identityState is httpbin in foo (pod of account httpbin) under a STRICT
// mesh, a sleep client, and rule r for httpbin.
func identityState(t *testing.T, r *networkingv1.DestinationRule) *State {
	t.Helper()
	return mustState(t, Snapshot{
		Namespaces:          []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "foo"}}},
		Services:            []*corev1.Service{svc("foo", "httpbin", 8000, intstrInt(8080))},
		Pods:                []*corev1.Pod{withAccount(podOf("foo", "httpbin-1", "httpbin", true, nil), "httpbin"), podOf("foo", "sleep", "sleep", true, nil)},
		PeerAuthentications: []*securityv1.PeerAuthentication{pa("istio-system", "default", strict)},
		DestinationRules:    []*networkingv1.DestinationRule{r},
	})
}

func httpbinRow(t *testing.T, st *State) *Row {
	t.Helper()
	groups, err := st.Table(Query{Namespace: "foo", Host: "httpbin.foo.svc.cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].Row.Endpoints) != 1 {
		t.Fatalf("want one row with one endpoint, got %d groups", len(groups))
	}
	return groups[0].Row
}

func TestIdentityFollowsTheStoredServiceAccount(t *testing.T) {
	want := "spiffe://cluster.local/ns/foo/sa/httpbin"
	st := identityState(t, dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_ISTIO_MUTUAL, want)))
	if r := httpbinRow(t, st); r.Status != OK || r.Endpoints[0].Identity != want {
		t.Fatalf("before: status %v identity %q, want OK %q", r.Status, r.Endpoints[0].Identity, want)
	}
	// The same pod recreated under another account: Apply must carry the
	// account into the State, not keep the old one.
	next := st.Clone()
	if err := next.Apply(withAccount(podOf("foo", "httpbin-1", "httpbin", true, nil), "httpbin-v2")); err != nil {
		t.Fatal(err)
	}
	r := httpbinRow(t, next)
	ep := r.Endpoints[0]
	if r.Status != Conflict || ep.Identity != "spiffe://cluster.local/ns/foo/sa/httpbin-v2" {
		t.Fatalf("after: status %v identity %q", r.Status, ep.Identity)
	}
	if !strings.Contains(ep.Reason, "spiffe://cluster.local/ns/foo/sa/httpbin-v2") || !strings.Contains(ep.Reason, want) {
		t.Errorf("reason does not name both identities: %s", ep.Reason)
	}
	if r := httpbinRow(t, st); r.Status != OK {
		t.Errorf("the original State changed: %v", r.Status)
	}
}

func TestIdentityTrustDomainFromTheMeshConfigMap(t *testing.T) {
	st := identityState(t, dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_ISTIO_MUTUAL, "spiffe://example.org/ns/foo/sa/httpbin")))
	if r := httpbinRow(t, st); r.Status != Conflict {
		t.Fatalf("cluster.local pod against an example.org SAN: %v, want CONFLICT", r.Status)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: MeshConfigMapName},
		Data: map[string]string{"mesh": "trustDomain: example.org\ntrustDomainAliases: [cluster.local]"}}
	if err := st.Apply(cm); err != nil {
		t.Fatal(err)
	}
	r := httpbinRow(t, st)
	if r.Status != OK || r.Endpoints[0].Identity != "spiffe://example.org/ns/foo/sa/httpbin" {
		t.Errorf("after trustDomain example.org: %v %q", r.Status, r.Endpoints[0].Identity)
	}
	if got := st.Mesh().TrustDomainAliases; len(got) != 1 || got[0] != "cluster.local" {
		t.Errorf("aliases = %v", got)
	}
	if err := st.Remove(cm); err != nil {
		t.Fatal(err)
	}
	if r := httpbinRow(t, st); r.Status != Conflict {
		t.Errorf("after removing the ConfigMap: %v, want CONFLICT again", r.Status)
	}
}

func TestIdentityCheckedOnlyWhereTheClientChecksIt(t *testing.T) {
	wrong := "spiffe://cluster.local/ns/foo/sa/nobody"
	tests := map[string]struct {
		rule       *networkingv1.DestinationRule
		wantStatus Status
		wantSANs   bool
	}{
		"ISTIO_MUTUAL without SANs checks the service's own accounts": {
			dr("foo", "r", "httpbin", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)), OK, false,
		},
		"ISTIO_MUTUAL with a wrong SAN fails": {
			dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_ISTIO_MUTUAL, wrong)), Conflict, true,
		},
		"DISABLE ignores SANs": {
			dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_DISABLE, wrong)), Conflict, false, // STRICT refuses plaintext
		},
		"port-level ISTIO_MUTUAL with SANs replaces the top level": {
			dr("foo", "r", "httpbin", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL),
				drPort(8000, &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL, SubjectAltNames: []string{wrong}})),
			Conflict, true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := httpbinRow(t, identityState(t, tc.rule))
			if r.Status != tc.wantStatus || (r.SubjectAltNames != nil) != tc.wantSANs {
				t.Errorf("status %v SANs %v, want %v and SANs %v", r.Status, r.SubjectAltNames, tc.wantStatus, tc.wantSANs)
			}
			if tc.wantSANs && !strings.Contains(r.Endpoints[0].Reason, wrong) {
				t.Errorf("reason does not name the rule's SAN: %s", r.Endpoints[0].Reason)
			}
		})
	}
}

func TestDecideReportsAnAddedWrongSAN(t *testing.T) {
	old := dr("foo", "r", "httpbin", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL))
	st := identityState(t, old)
	upd := dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_ISTIO_MUTUAL, "spiffe://cluster.local/ns/foo/sa/other"))
	d, err := st.Decide(context.Background(), Change{Old: old, New: upd})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.New) != 1 || d.New[0].Row.Status != Conflict {
		t.Fatalf("NEW = %d, want 1 conflict", len(d.New))
	}
	// Fixing the SAN resolves it.
	fixed := dr("foo", "r", "httpbin", drSANs(networkingapi.ClientTLSSettings_ISTIO_MUTUAL, "spiffe://cluster.local/ns/foo/sa/httpbin"))
	next := st.Clone()
	if err := next.Apply(upd); err != nil {
		t.Fatal(err)
	}
	d, err = next.Decide(context.Background(), Change{Old: upd, New: fixed})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.New) != 0 || len(d.Resolved) != 1 {
		t.Errorf("NEW %d RESOLVED %d, want 0 and 1", len(d.New), len(d.Resolved))
	}
}

func TestSpiffeIDSanitizesTheTrustDomain(t *testing.T) {
	if got, want := SpiffeID("td@corp", "ns", "sa"), "spiffe://td.corp/ns/ns/sa/sa"; got != want {
		t.Errorf("SpiffeID = %q, want %q", got, want)
	}
}
