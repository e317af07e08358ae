package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestSubjectAltNames writes DestinationRules whose subjectAltNames do and
// do not name the identity of httpbin's pod, which runs as the service
// account httpbin. The webhook's Pod cache must keep the account: without
// it the pod would be .../sa/default and the right rule would be denied.
func TestSubjectAltNames(t *testing.T) {
	startWebhook(t)
	c := newCluster(t)
	const ns = "identity"
	c.ensureNamespace(t, ns, map[string]string{"istio-injection": "enabled"})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "httpbin"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "httpbin"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8000, TargetPort: intstr.FromInt32(8080)}}}}
	c.mustCreate(t, svc)
	server := sidecarPod(ns, "httpbin-0", "httpbin")
	server.Spec.ServiceAccountName = "httpbin"
	c.mustCreate(t, server)
	c.mustCreate(t, sidecarPod(ns, "sleep-0", "sleep"))

	rule := func(sans ...string) *networkingv1.DestinationRule {
		dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "httpbin-identity"}}
		dr.Spec.Host = "httpbin"
		dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{
			Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL, SubjectAltNames: sans}}
		return dr
	}
	wrong, right := "spiffe://cluster.local/ns/identity/sa/other", "spiffe://cluster.local/ns/identity/sa/httpbin"
	// Wait until the webhook's cache holds the pods.
	eventually(t, 30*time.Second, func() error {
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, rule(wrong), client.DryRunAll) })
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("dry-run create with a wrong SAN: %v", err)
		}
		return nil
	})

	// Why the row is a CONFLICT: its columns (mTLS against mTLS) do not say.
	why := "httpbin.identity.svc.cluster.local:8000: server identity " + right + " not in subjectAltNames [" + wrong + "]"

	t.Run("a rule with a wrong SAN is denied, naming the server identity and the SANs", func(t *testing.T) {
		dr := rule(wrong)
		dr.Name = "httpbin-wrong-san"
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, dr) })
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), why) {
			t.Errorf("create with a wrong SAN: %v\nwant a denial containing %q", err, why)
		}
		got := &networkingv1.DestinationRule{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(dr), got); !apierrors.IsNotFound(err) {
			t.Errorf("the denied rule was stored: %v", err)
		}
		// The API server's audit log, for administrators, says it too.
		a := audited(t, "create", ns, dr.Name, http.StatusForbidden)["destinationrules.mtlsguard.io/conflicts"]
		if !strings.Contains(a, "server identity "+right+" not in subjectAltNames ["+wrong+"]") {
			t.Errorf("audit annotation conflicts = %q, want it to name both identities", a)
		}
	})

	t.Run("a rule naming the pod's identity is admitted", func(t *testing.T) {
		c.mustCreate(t, rule(right))
		t.Run("changing it to another identity is denied", func(t *testing.T) {
			dr := &networkingv1.DestinationRule{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(rule()), dr); err != nil {
				t.Fatal(err)
			}
			dr.Spec.TrafficPolicy.Tls.SubjectAltNames = []string{wrong}
			_, err := c.do(func(ctx context.Context) error { return c.Update(ctx, dr) })
			want := "DestinationRule identity/httpbin-identity would create 1 new mTLS conflict:"
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) ||
				!strings.Contains(err.Error(), "httpbin.identity.svc.cluster.local:8000     CONFLICT") ||
				!strings.Contains(err.Error(), why) {
				t.Errorf("update to a wrong SAN: %v\nwant a denial containing %q", err, want)
			}
		})
	})
}
