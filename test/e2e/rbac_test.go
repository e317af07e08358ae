package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// access is one question to the authorizer: may the ServiceAccount do verb
// on resource (resource.group; name after a slash) in namespace ("" = in
// every namespace)?
type access struct{ verb, resource, namespace string }

// mayDoNothingMore checks what ServiceAccount sa in the release namespace
// may and may not do, installed from manifests/ or the chart: what the
// cache reads and what the audit writes, and nothing next to it. It asks
// the API server's authorizer (SubjectAccessReview) directly, so it needs
// no CRD for the report APIs.
func mayDoNothingMore(ctx context.Context, t *testing.T, c *cluster, sa string) {
	t.Helper()
	user := "system:serviceaccount:" + namespace + ":" + sa
	for _, q := range []access{
		{"watch", "pods", ""},
		{"list", "destinationrules.networking.istio.io", ""},
		{"watch", "serviceentries.networking.istio.io", ""},
		{"watch", "workloadentries.networking.istio.io", ""},
		{"list", "sidecars.networking.istio.io", ""},
		{"watch", "configmaps/istio", "istio-system"},
		// The audit (manifests/base/rbac-audit.yaml).
		{"create", "reports.openreports.io", "default"},
		{"list", "reports.openreports.io", ""},
		{"delete", "reports.openreports.io", "default"},
		{"patch", "events.events.k8s.io", "default"},
		{"update", "leases.coordination.k8s.io", namespace},
		{"create", "leases.coordination.k8s.io", namespace},
		// What a denial may name (manifests/base/rbac-disclosure.yaml).
		{"create", "subjectaccessreviews.authorization.k8s.io", ""},
	} {
		if !allowed(ctx, t, c, user, q) {
			t.Errorf("%s may not %s %s in %q; want it may", user, q.verb, q.resource, q.namespace)
		}
	}
	for _, q := range []access{
		{"list", "secrets", ""},
		{"list", "configmaps", "istio-system"}, // only the one named istio
		{"get", "configmaps/istio", "default"},
		{"create", "destinationrules.networking.istio.io", "default"},
		{"update", "sidecars.networking.istio.io", "default"},
		{"list", "virtualservices.networking.istio.io", ""},
		{"update", "peerauthentications.security.istio.io", "istio-system"},
		{"create", "events", namespace},
		{"watch", "reports.openreports.io", ""},
		{"create", "policyreports.wgpolicyk8s.io", "default"}, // only with --report-api=wgpolicyk8s
		{"get", "events.events.k8s.io", "default"},
		{"create", "leases.coordination.k8s.io", "default"},
		{"delete", "leases.coordination.k8s.io", namespace},
		{"create", "localsubjectaccessreviews.authorization.k8s.io", "default"},
		{"create", "tokenreviews.authentication.k8s.io", ""},
	} {
		if allowed(ctx, t, c, user, q) {
			t.Errorf("%s may %s %s in %q; want it may not", user, q.verb, q.resource, q.namespace)
		}
	}
}

// holdsLease waits until the running webhook has acquired the leader
// election Lease in the release namespace: its RBAC is enough to lead the
// audit.
func holdsLease(ctx context.Context, t *testing.T, c *cluster) {
	t.Helper()
	eventually(t, "the webhook to hold Lease "+namespace+"/"+leaderElectionLease, func() bool {
		l, err := c.client.CoordinationV1().Leases(namespace).Get(ctx, leaderElectionLease, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != ""
	})
}

// allowed asks the API server whether user may do q.
func allowed(ctx context.Context, t *testing.T, c *cluster, user string, q access) bool {
	t.Helper()
	resource, name, _ := strings.Cut(q.resource, "/")
	resource, group, _ := strings.Cut(resource, ".")
	r, err := c.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: q.namespace, Verb: q.verb, Group: group, Resource: resource, Name: name,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("may %s %s %s: %v", user, q.verb, q.resource, err)
	}
	return r.Status.Allowed
}

// eachRuleIsNeeded proves the shipped RBAC has nothing to spare: for every
// resource it grants, a webhook running as a ServiceAccount that has the same
// ClusterRole and Role minus that one resource is refused the list of that
// resource and does not turn ready (its cache cannot sync). The installed
// webhook turning ready as the real ServiceAccount proves the other half: the
// rules are enough.
func eachRuleIsNeeded(ctx context.Context, t *testing.T, c *cluster, certDir string) {
	clusterRole, err := c.client.RbacV1().ClusterRoles().Get(ctx, serviceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role, err := c.client.RbacV1().Roles("istio-system").Get(ctx, serviceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	type variant struct {
		name               string // the resource left out
		clusterRules, role []rbacv1.PolicyRule
	}
	var variants []variant
	for i, rule := range clusterRole.Rules {
		for _, res := range rule.Resources {
			variants = append(variants, variant{res, without(clusterRole.Rules, i, res), role.Rules})
		}
	}
	for i, rule := range role.Rules {
		for _, res := range rule.Resources {
			variants = append(variants, variant{res, clusterRole.Rules, without(role.Rules, i, res)})
		}
	}

	for _, v := range variants {
		t.Run("without "+v.name, func(t *testing.T) {
			t.Parallel()
			sa := "mtlsguard-without-" + v.name
			grant(ctx, t, c, sa, v.clusterRules, v.role)
			w := c.startWebhook(t, sa, certDir, c.impersonatingKubeconfig(t, namespace, sa), freePort(t))
			w.forbiddenAndUnready(t, v.name, time.Minute)
		})
	}
}

// without is rules with resource res dropped from rules[i] (and rules[i]
// dropped if that leaves it empty).
func without(rules []rbacv1.PolicyRule, i int, res string) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, 0, len(rules))
	for j, r := range rules {
		if j == i {
			r = *r.DeepCopy()
			r.Resources = slices.DeleteFunc(r.Resources, func(s string) bool { return s == res })
			if len(r.Resources) == 0 {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// grant creates ServiceAccount sa with a ClusterRole and a Role in
// istio-system holding the given rules, bound the way manifests/base binds
// the real ones.
func grant(ctx context.Context, t *testing.T, c *cluster, sa string, clusterRules, roleRules []rbacv1.PolicyRule) {
	t.Helper()
	meta := metav1.ObjectMeta{Name: sa}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: namespace}}
	rbac := c.client.RbacV1()
	var errs []error
	_, err := c.client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta}, metav1.CreateOptions{})
	errs = append(errs, err)
	_, err = rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta, Rules: clusterRules}, metav1.CreateOptions{})
	errs = append(errs, err)
	_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: meta, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: sa},
	}, metav1.CreateOptions{})
	errs = append(errs, err)
	if len(roleRules) > 0 {
		nsMeta := metav1.ObjectMeta{Name: sa, Namespace: "istio-system"}
		_, err = rbac.Roles("istio-system").Create(ctx, &rbacv1.Role{ObjectMeta: nsMeta, Rules: roleRules}, metav1.CreateOptions{})
		errs = append(errs, err)
		_, err = rbac.RoleBindings("istio-system").Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: nsMeta, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
		}, metav1.CreateOptions{})
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(fmt.Errorf("granting %s: %w", sa, err))
		}
	}
}
