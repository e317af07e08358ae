package policy

import (
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestResolveHost(t *testing.T) {
	tests := map[string]struct{ host, want string }{
		"short name is relative to the rule's namespace": {"reviews", "reviews.default.svc.cluster.local"},
		"a dotted name is taken as a FQDN":               {"reviews.prod", "reviews.prod"},
		"FQDN unchanged":                                 {"reviews.prod.svc.cluster.local", "reviews.prod.svc.cluster.local"},
		"star unchanged":                                 {"*", "*"},
		"IP unchanged":                                   {"10.0.0.1", "10.0.0.1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := resolveHost(tc.host, "default", "cluster.local"); got != tc.want {
				t.Errorf("resolveHost(%q) = %q, want %q", tc.host, got, tc.want)
			}
		})
	}
}

func TestMostSpecificHostMatch(t *testing.T) {
	hr := hostRules{}
	for _, h := range []string{"*.local", "*.default.svc.cluster.local", "*", "reviews.default.svc.cluster.local"} {
		hr.merge(&destRule{namespace: "x", name: h, host: h, spec: &networkingapi.DestinationRule{}}, map[string]bool{})
	}
	hr.seal()
	tests := map[string]struct{ needle, want string }{
		"exact beats wildcard":  {"reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local"},
		"longest wildcard wins": {"ratings.default.svc.cluster.local", "*.default.svc.cluster.local"},
		"mesh wildcard":         {"ratings.prod.svc.cluster.local", "*.local"},
		"star matches the rest": {"example.com", "*"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l, ok := hr.lookup(tc.needle)
			if !ok || l[0].first.host != tc.want {
				t.Fatalf("lookup(%q) = %v, want %q", tc.needle, l, tc.want)
			}
		})
	}
}

// TestDestinationRuleLookupWithExportTo is Istio's
// TestSetDestinationRuleWithExportTo (push_context_test.go), scenario 16.
func TestDestinationRuleLookupWithExportTo(t *testing.T) {
	st := mustState(t, Snapshot{DestinationRules: []*networkingv1.DestinationRule{
		dr("test1", "rule1", "httpbin.org", drExport(".", "ns1"), drCreated(1)),
		dr("test2", "rule2", "httpbin.org", drExport("test2", "ns1", "test1", "newNS"), drCreated(2)),
		dr("test3", "rule3", "httpbin.org", drExport("test1", "test2", "*"), drCreated(3)),
		dr("test4", "rule4-local", "httpbin.org", drExport("test4"), drCreated(4)),
		dr("istio-system", "rule4", "httpbin.org", drCreated(5)),
		dr("istio-system", "rule1", "httpbin.org", drExport("."), drCreated(6)),
		dr("istio-system", "api-rule", "api.test.com", drExport("."), drCreated(7)),
	}})
	e := &env{st: st}
	tests := []struct{ client, svcNS, host, want string }{
		{"test1", "test2", "httpbin.org", "rule1/test1"},
		{"test2", "test1", "httpbin.org", "rule2/test2"},
		{"newNS", "test2", "httpbin.org", "rule2/test2"},
		{"test3", "test1", "httpbin.org", "rule3/test3"},
		{"test5", "test4", "httpbin.org", "rule4/istio-system"},
		{"ns1", "test1", "httpbin.org", "rule1/test1"},
		{"ns1", "random", "httpbin.org", "rule4/istio-system"},
		{"istio-system", "random", "httpbin.org", "rule1/istio-system"},
		{"istio-system", "test7", "api.test.com", "api-rule/istio-system"},
		{"test7", "test7", "api.test.com", "-"},
	}
	for _, tc := range tests {
		t.Run(tc.client+"->"+tc.svcNS, func(t *testing.T) {
			s := &service{namespace: tc.svcNS, host: tc.host}
			if got := e.destinationRule(ClientView{Namespace: tc.client}, s).ref(); got != tc.want {
				t.Errorf("client %s, service ns %s: rule %s, want %s", tc.client, tc.svcNS, got, tc.want)
			}
		})
	}
}

func TestDestinationRuleLookup(t *testing.T) {
	host := "reviews.default.svc.cluster.local"
	s := &service{namespace: "default", host: host}
	tests := map[string]struct {
		drs    []*networkingv1.DestinationRule
		client ClientView
		want   string
	}{
		"client namespace rule beats a more specific service namespace rule": {
			drs:    []*networkingv1.DestinationRule{dr("default", "exact", host), dr("client", "wide", "*.local")},
			client: ClientView{Namespace: "client"}, want: "wide/client",
		},
		"a rule off the lookup path is not applied": {
			drs:    []*networkingv1.DestinationRule{dr("ns1", "r", host)},
			client: ClientView{Namespace: "ns2"}, want: "-",
		},
		"service namespace before root namespace": {
			drs:    []*networkingv1.DestinationRule{dr("default", "svc", host), dr("istio-system", "mesh", "*.local")},
			client: ClientView{Namespace: "client"}, want: "svc/default",
		},
		"the most specific service namespace rule is not exported: no fallback within the namespace": {
			drs:    []*networkingv1.DestinationRule{dr("default", "private", host, drExport(".")), dr("default", "wide", "*.default.svc.cluster.local")},
			client: ClientView{Namespace: "client"}, want: "wide/default",
		},
		"exported rule named for another namespace only": {
			drs:    []*networkingv1.DestinationRule{dr("default", "other", host, drExport("other")), dr("istio-system", "mesh", "*.local")},
			client: ClientView{Namespace: "client"}, want: "mesh/istio-system",
		},
		"a rule exported only elsewhere is not visible in its own namespace": {
			drs:    []*networkingv1.DestinationRule{dr("default", "other", host, drExport("other")), dr("istio-system", "mesh", "*.local")},
			client: ClientView{Namespace: "default"}, want: "mesh/istio-system",
		},
		"selector rule applies to matching clients of its namespace": {
			drs: []*networkingv1.DestinationRule{
				dr("client", "sel", host, drSelector(map[string]string{"app": "a"})),
				dr("client", "plain", host, drCreated(5)),
			},
			client: ClientView{Namespace: "client", labels: map[string]string{"app": "a"}}, want: "sel/client",
		},
		"selector rule does not apply to other clients": {
			drs: []*networkingv1.DestinationRule{
				dr("client", "sel", host, drSelector(map[string]string{"app": "a"})),
				dr("client", "plain", host, drCreated(5)),
			},
			client: ClientView{Namespace: "client", labels: map[string]string{"app": "b"}}, want: "plain/client",
		},
		"only selector rules for the host: non-matching clients get no rule at all": {
			drs: []*networkingv1.DestinationRule{
				dr("client", "sel", host, drSelector(map[string]string{"app": "a"})),
				dr("istio-system", "mesh", "*.local"),
			},
			client: ClientView{Namespace: "client", labels: map[string]string{"app": "b"}}, want: "-",
		},
		"selector rules are not exported": {
			drs:    []*networkingv1.DestinationRule{dr("default", "sel", host, drSelector(map[string]string{})), dr("istio-system", "mesh", "*.local")},
			client: ClientView{Namespace: "client"}, want: "mesh/istio-system",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := mustState(t, Snapshot{DestinationRules: tc.drs})
			if got := (&env{st: st}).destinationRule(tc.client, s).ref(); got != tc.want {
				t.Errorf("rule %s, want %s", got, tc.want)
			}
		})
	}
}

// TestMergingSameHost is TestSetDestinationRuleMerging, scenario 18: rules
// for one host in one namespace merge (first traffic policy wins, subsets
// unioned); one with a different exportTo stays apart.
func TestMergingSameHost(t *testing.T) {
	host := "foo.test.svc.cluster.local"
	sub := func(n string) drOpt { return drSubset(n, nil, nil) }
	st := mustState(t, Snapshot{DestinationRules: []*networkingv1.DestinationRule{
		dr("test", "rule1", host, sub("subset1"), sub("subset2"), drCreated(1), drTLS(networkingapi.ClientTLSSettings_DISABLE)),
		dr("test", "rule2", host, sub("subset3"), sub("subset4"), sub("subset1"), drCreated(2), drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)),
		dr("test", "rule3", host, sub("subset5"), sub("subset6"), drExport("istio-system"), drCreated(3)),
	}})
	local := st.ns("test").drIdx.local.specific[host]
	if len(local) != 1 {
		t.Fatalf("local entries = %d, want 1", len(local))
	}
	m := local[0]
	if m.ref() != "rule1/test" || len(m.subsets) != 4 || m.trafficPolicy.GetTls().GetMode() != networkingapi.ClientTLSSettings_DISABLE {
		t.Errorf("merged = %s with %d subsets and tls %v; want rule1/test, 4 subsets, DISABLE", m.ref(), len(m.subsets), m.trafficPolicy.GetTls().GetMode())
	}
	if len(m.from) != 2 {
		t.Errorf("from = %v, want rule1 and rule2", m.from)
	}
	exported := st.ns("test").drIdx.exported.specific[host]
	if len(exported) != 2 {
		t.Fatalf("exported entries = %d, want 2 (merged rule1+rule2, rule3 apart)", len(exported))
	}
}

func TestNewerRuleTLSIgnoredWhenOlderHasTrafficPolicy(t *testing.T) {
	host := "foo.test.svc.cluster.local"
	older := dr("test", "pool", host, drCreated(1))
	older.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{ConnectionPool: &networkingapi.ConnectionPoolSettings{}}
	st := mustState(t, Snapshot{DestinationRules: []*networkingv1.DestinationRule{
		older, dr("test", "tls", host, drCreated(2), drTLS(networkingapi.ClientTLSSettings_DISABLE)),
	}})
	got := (&env{st: st}).destinationRule(ClientView{Namespace: "test"}, &service{namespace: "test", host: host})
	if got.ref() != "pool/test" || got.trafficPolicy.GetTls() != nil {
		t.Errorf("rule %s tls %v, want pool/test without tls", got.ref(), got.trafficPolicy.GetTls())
	}
}

func TestClusterPolicy(t *testing.T) {
	mutual := tlsOf(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
	simple := tlsOf(networkingapi.ClientTLSSettings_SIMPLE)
	tests := map[string]struct {
		rule        *networkingv1.DestinationRule
		subset      string
		wantCluster ClientTLS
		wantChecker string
	}{
		"top level": {
			rule: dr("d", "r", "h", drTLS(networkingapi.ClientTLSSettings_DISABLE)), wantCluster: TLSDisable, wantChecker: "DISABLE",
		},
		"port level replaces, it does not inherit": {
			rule:        dr("d", "r", "h", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL), drPort(8080, nil)),
			wantCluster: Auto, wantChecker: "ISTIO_MUTUAL",
		},
		"port level TLS": {
			rule:        dr("d", "r", "h", drTLS(networkingapi.ClientTLSSettings_DISABLE), drPort(8080, mutual)),
			wantCluster: TLSIstioMutual, wantChecker: "ISTIO_MUTUAL",
		},
		"subset without policy inherits": {
			rule:   dr("d", "r", "h", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL), drSubset("v1", nil, nil)),
			subset: "v1", wantCluster: TLSIstioMutual, wantChecker: "ISTIO_MUTUAL",
		},
		"subset TLS overrides": {
			rule:   dr("d", "r", "h", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL), drSubset("v1", nil, &networkingapi.TrafficPolicy{Tls: simple})),
			subset: "v1", wantCluster: TLSSimple, wantChecker: "SIMPLE",
		},
		"subset port level without TLS is auto": {
			rule: dr("d", "r", "h", drTLS(networkingapi.ClientTLSSettings_ISTIO_MUTUAL), drSubset("v1", nil, &networkingapi.TrafficPolicy{
				PortLevelSettings: []*networkingapi.TrafficPolicy_PortTrafficPolicy{{Port: &networkingapi.PortSelector{Number: 8080}}},
			})),
			subset: "v1", wantCluster: Auto, wantChecker: "ISTIO_MUTUAL",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, err := newDestRule(tc.rule, "cluster.local")
			if err != nil {
				t.Fatal(err)
			}
			m := &mergedRule{first: d, trafficPolicy: d.spec.TrafficPolicy, subsets: d.spec.Subsets}
			got := Auto
			if tls, _ := clusterTLS(m, tc.subset, 8080); tls != nil {
				got = convertTLS(tls.Mode)
			}
			checker := "<nil>"
			if c := checkerMode(m, tc.subset, 8080); c != nil {
				checker = c.String()
			}
			if got != tc.wantCluster || checker != tc.wantChecker {
				t.Errorf("cluster %v checker %s, want %v %s", got, checker, tc.wantCluster, tc.wantChecker)
			}
		})
	}
}

func TestCredentialNameWithoutSelectorSendsPlaintext(t *testing.T) {
	tls := &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_SIMPLE, CredentialName: "secret"}
	plain := &mergedRule{first: &destRule{}}
	if w := explicitWire(tls, plain); w != Plaintext {
		t.Errorf("SIMPLE with credentialName, no selector: %v, want plaintext", w)
	}
	sel := &mergedRule{first: &destRule{hasSelector: true}}
	if w := explicitWire(tls, sel); w != SimpleTLS {
		t.Errorf("SIMPLE with credentialName and selector: %v, want simple_tls", w)
	}
}

func TestUnknownModesAreErrors(t *testing.T) {
	bad := dr("ns", "bad", "h", drTLS(networkingapi.ClientTLSSettings_TLSmode(9)))
	if _, err := NewState(Snapshot{Mesh: DefaultMesh(), DestinationRules: []*networkingv1.DestinationRule{bad}}); err == nil ||
		err.Error() != "DestinationRule ns/bad: spec.trafficPolicy.tls.mode: unknown mode 9" {
		t.Errorf("err = %v", err)
	}
	p := pa("ns", "bad", 7)
	st := mustState(t, Snapshot{})
	if err := st.Apply(p); err == nil || err.Error() != "PeerAuthentication ns/bad: spec.mtls.mode: unknown mode 7" {
		t.Errorf("err = %v", err)
	}
}

// TestAutoMTLS covers the endpoint verdicts of auto mTLS (scenarios 7, 13,
// 14, 15, 29).
func TestAutoMTLS(t *testing.T) {
	target := func() *corev1.Service { return svc("foo", "httpbin", 8000, intstrInt(8080)) }
	headless := target()
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	tests := map[string]struct {
		svc     *corev1.Service
		pods    []*corev1.Pod
		pas     []*securityv1PA
		mesh    func(*Mesh)
		want    []Wire
		wantOK  []bool
		wantCol string
	}{
		"sidecar endpoint under namespace STRICT gets mTLS": {
			svc: target(), pods: []*corev1.Pod{podOf("foo", "a", "httpbin", true, nil)},
			pas:  []*securityv1PA{pa("foo", "default", strict)},
			want: []Wire{IstioMutual}, wantOK: []bool{true}, wantCol: "AUTO",
		},
		"workload DISABLE under namespace STRICT gets plaintext": {
			svc: target(), pods: []*corev1.Pod{podOf("foo", "a", "httpbin", true, nil)},
			pas:  []*securityv1PA{pa("foo", "default", strict), pa("foo", "wl", disable, paSelector(map[string]string{"app": "httpbin"}))},
			want: []Wire{Plaintext}, wantOK: []bool{true}, wantCol: "AUTO",
		},
		"endpoint without sidecar gets plaintext": {
			svc: target(), pods: []*corev1.Pod{podOf("foo", "a", "httpbin", true, nil), podOf("foo", "b", "httpbin", false, nil)},
			want: []Wire{IstioMutual, Plaintext}, wantOK: []bool{true, true}, wantCol: "AUTO",
		},
		"namespace DISABLE makes the whole cluster plaintext, breaking workload STRICT (istio#56084)": {
			svc: target(), pods: []*corev1.Pod{podOf("foo", "a", "httpbin", true, nil)},
			pas:  []*securityv1PA{pa("istio-system", "default", disable), pa("foo", "wl", strict, paSelector(map[string]string{"app": "httpbin"}))},
			want: []Wire{Plaintext}, wantOK: []bool{false}, wantCol: "AUTO",
		},
		"auto mTLS off sends plaintext to STRICT": {
			svc: target(), pods: []*corev1.Pod{podOf("foo", "a", "httpbin", true, nil)},
			pas:  []*securityv1PA{pa("foo", "default", strict)},
			mesh: func(m *Mesh) { m.AutoMTLS = false },
			want: []Wire{Plaintext}, wantOK: []bool{false}, wantCol: "HTTP",
		},
		"headless with an endpoint without sidecar is plaintext for all": {
			svc: headless, pods: []*corev1.Pod{podOf("foo", "a", "httpbin", true, nil), podOf("foo", "b", "httpbin", false, nil)},
			pas:  []*securityv1PA{pa("foo", "default", strict)},
			want: []Wire{Plaintext, Plaintext}, wantOK: []bool{false, true}, wantCol: "AUTO",
		},
		"headless with sidecars only is mTLS for all, even a workload DISABLE": {
			svc: headless, pods: []*corev1.Pod{podOf("foo", "a", "httpbin", true, nil), podOf("foo", "b", "httpbin", true, map[string]string{"plain": "yes"})},
			pas:  []*securityv1PA{pa("foo", "wl", disable, paSelector(map[string]string{"plain": "yes"}))},
			want: []Wire{IstioMutual, IstioMutual}, wantOK: []bool{true, false}, wantCol: "AUTO",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := DefaultMesh()
			if tc.mesh != nil {
				tc.mesh(&m)
			}
			st := mustState(t, Snapshot{Mesh: m, Services: []*corev1.Service{tc.svc}, Pods: tc.pods, PeerAuthentications: tc.pas})
			groups, err := st.Table(Query{})
			if err != nil {
				t.Fatal(err)
			}
			if len(groups) != 1 {
				t.Fatalf("groups = %d, want 1", len(groups))
			}
			r := groups[0].Row
			if r.ClientColumn != tc.wantCol {
				t.Errorf("CLIENT = %s, want %s", r.ClientColumn, tc.wantCol)
			}
			for i, ep := range r.Endpoints {
				if ep.ClientSends != tc.want[i] || ep.OK != tc.wantOK[i] {
					t.Errorf("%s: sends %v ok %v, want %v %v", ep.Pod, ep.ClientSends, ep.OK, tc.want[i], tc.wantOK[i])
				}
			}
		})
	}
}

type securityv1PA = securityv1.PeerAuthentication

func TestMeshConfigMap(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data: map[string]string{"mesh": "enableAutoMtls: false\nrootNamespace: mesh-root\n"}}
	m, err := DefaultMesh().WithConfigMap(cm)
	if err != nil || m.AutoMTLS || m.RootNamespace != "mesh-root" {
		t.Errorf("mesh = %+v, %v", m, err)
	}
	cm.Data["mesh"] = "enableAutoMtls: [oops"
	if _, err := DefaultMesh().WithConfigMap(cm); err == nil {
		t.Error("malformed mesh config accepted")
	}
}
