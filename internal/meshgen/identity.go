package meshgen

import (
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// Identity in generated meshes (semantics doc part 2, §4): pods run as
// the default, their app's or a shared service account; the mesh may move
// to another trust domain, keeping cluster.local as an alias; rules may
// list subjectAltNames, right or wrong.

// meshConfig returns the mesh ConfigMap's mesh key, "" for none.
func (g *Gen) meshConfig() string {
	g.trustDomain = "cluster.local"
	var b strings.Builder
	if g.chance(0.25) {
		b.WriteString("enableAutoMtls: false\n")
	}
	if g.chance(0.2) {
		g.trustDomain = "td.example"
		b.WriteString("trustDomain: td.example\n")
		if g.chance(0.5) {
			b.WriteString("trustDomainAliases: [cluster.local]\n")
		}
	}
	return b.String()
}

// serviceAccount gives pod of app in ns a service account, and remembers
// it for subjectAltNames.
func (g *Gen) serviceAccount(pod *corev1.Pod, ns, app string) {
	sa := "default"
	switch g.intn(4) {
	case 2:
		sa = app
		pod.Spec.ServiceAccountName = sa
	case 3:
		sa = "shared"
		pod.Spec.ServiceAccountName = sa
	}
	if g.accounts == nil {
		g.accounts = map[string][]string{}
	}
	g.accounts[ns+"/"+app] = append(g.accounts[ns+"/"+app], sa)
}

// subjectAltNames adds, to some of the TLS settings of d, a list naming
// identities of the pods of app a in ns (the rule's target), of nobody, of
// the cluster.local domain, or without the spiffe:// scheme.
func (g *Gen) subjectAltNames(d *networkingv1.DestinationRule, ns string, a app) {
	add := func(tls *networkingapi.ClientTLSSettings) {
		if tls == nil || !g.chance(0.4) {
			return
		}
		for n := 1 + g.intn(2); n > 0; n-- {
			tls.SubjectAltNames = append(tls.SubjectAltNames, g.san(ns, a))
		}
	}
	policies := []*networkingapi.TrafficPolicy{d.Spec.TrafficPolicy}
	for _, s := range d.Spec.Subsets {
		policies = append(policies, s.TrafficPolicy)
	}
	for _, tp := range policies {
		add(tp.GetTls())
		for _, pl := range tp.GetPortLevelSettings() {
			add(pl.GetTls())
		}
	}
}

func (g *Gen) san(ns string, a app) string {
	sa := "nobody"
	if accounts := g.accounts[ns+"/"+a.name]; len(accounts) > 0 && g.chance(0.7) {
		sa = pick(g, accounts)
	}
	switch g.intn(5) {
	case 0:
		return SpiffeID("cluster.local", ns, sa) // the old domain, when the mesh moved
	case 1:
		return strings.TrimPrefix(SpiffeID(g.trustDomain, ns, sa), "spiffe://")
	}
	return SpiffeID(g.trustDomain, ns, sa)
}

// SpiffeID is policy.SpiffeID, which this package cannot import: policy's
// tests import it. TestMeshgenNamesAreTheEngines checks that both agree.
func SpiffeID(trustDomain, ns, sa string) string {
	return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa
}
