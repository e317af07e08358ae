package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestDenialToANamespaceScopedUserNamesOnlyWhatTheyCanRead: the clients of
// tenant-a's api live in three namespaces, and a rule in istio-system sends
// them plaintext. A developer of tenant-a, whose Role lets them edit Istio
// policies and read their own namespace and nothing else, writes a STRICT
// PeerAuthentication: the denial names their namespace, and counts the
// others without naming them or the rule in istio-system. An administrator
// writing the same sees every name.
func TestDenialToANamespaceScopedUserNamesOnlyWhatTheyCanRead(t *testing.T) {
	startWebhook(t) // --disclose=permitted, the default
	admin := newCluster(t)
	admin.ensureNamespace(t, "istio-system", nil)
	for _, ns := range []string{"tenant-a", "tenant-b", "tenant-c"} {
		admin.ensureNamespace(t, ns, map[string]string{"istio-injection": "enabled"})
		admin.mustCreate(t, sidecarPod(ns, "client-1", "client"))
	}
	admin.mustCreate(t, auditService("tenant-a", "api", 80, 8080))
	admin.mustCreate(t, sidecarPod("tenant-a", "api-1", "api"))
	plaintext := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "api-plaintext"}}
	plaintext.Spec.Host = "api.tenant-a.svc.cluster.local"
	plaintext.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_DISABLE}}
	admin.mustCreate(t, plaintext)

	const dev = "dev@tenant-a"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "istio-editor"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"security.istio.io"}, Resources: []string{"peerauthentications"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
			{APIGroups: []string{"networking.istio.io"}, Resources: []string{"destinationrules"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"services", "pods", "namespaces"}, Verbs: []string{"get", "list"}},
		},
	}
	admin.mustCreate(t, role)
	admin.mustCreate(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "istio-editor"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: dev}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "istio-editor"},
	})
	impersonated := rest.CopyConfig(cfg)
	impersonated.Impersonate = rest.ImpersonationConfig{UserName: dev, Groups: []string{"system:authenticated"}}
	user, err := client.New(impersonated, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// The Role is what it says: nothing outside tenant-a.
	if err := user.Get(context.Background(), client.ObjectKey{Namespace: "istio-system", Name: "api-plaintext"}, &networkingv1.DestinationRule{}); !apierrors.IsForbidden(err) {
		t.Fatalf("%s reads istio-system/api-plaintext: %v", dev, err)
	}

	strict := func() *securityv1.PeerAuthentication {
		pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "strict"}}
		pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
		return pa
	}
	row := func(err error) string {
		if err == nil {
			return "admitted"
		}
		lines := strings.Split(err.Error(), "\n")
		return strings.Join(strings.Fields(lines[len(lines)-1]), " ")
	}
	// The webhook's cache follows the API server: wait for all three
	// client namespaces, as the administrator sees them.
	const adminRow = "api.tenant-a.svc.cluster.local:80 CONFLICT mTLS HTTP strict/tenant-a api-plaintext/istio-system tenant-a, tenant-b, tenant-c"
	eventually(t, 30*time.Second, func() error {
		if got := row(admin.Create(context.Background(), strict(), client.DryRunAll)); got != adminRow {
			return fmt.Errorf("the administrator's dry-run: %q, want %q", got, adminRow)
		}
		return nil
	})

	err = user.Create(context.Background(), strict())
	if !apierrors.IsForbidden(err) {
		t.Fatalf("%s creates tenant-a/strict: %v, want a denial", dev, err)
	}
	t.Logf("denial to %s:\n%v", dev, err)
	got := row(err)
	for _, hidden := range []string{"tenant-b", "tenant-c", "istio-system", "api-plaintext", "default"} {
		if strings.Contains(err.Error(), hidden) {
			t.Errorf("the denial to %s names %q", dev, hidden)
		}
	}
	const want = "api.tenant-a.svc.cluster.local:80 CONFLICT mTLS HTTP strict/tenant-a (withheld) tenant-a and 2 more"
	if got != want {
		t.Errorf("the denial row to %s\n%q\nwant\n%q", dev, got, want)
	}
}
