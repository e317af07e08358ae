package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestServiceEntryAndSidecarWritesThatBreakMTLSAreDenied runs the webhook
// against the real API server with the Deep-Dive (mesh STRICT, a *.local
// ISTIO_MUTUAL rule) and checks that a ServiceEntry write and a Sidecar
// write that create new conflicts are denied, with the conflicting row,
// while writes that break nothing are admitted.
func TestServiceEntryAndSidecarWritesThatBreakMTLSAreDenied(t *testing.T) {
	startWebhook(t)
	c := newCluster(t)
	deepDive(t, c)

	// A VM with a sidecar (it names a serviceAccount), and a rule of
	// default's clients that sends its future host plaintext: no service
	// has that host yet, so both are admitted.
	vm := &networkingv1.WorkloadEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm-1"}}
	vm.Spec.Address, vm.Spec.ServiceAccount = "10.0.0.1", "vm"
	vm.Spec.Labels = map[string]string{"app": "vm"}
	c.mustCreate(t, vm)
	plaintext := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm-plaintext"}}
	plaintext.Spec.Host = "vm.internal"
	plaintext.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_DISABLE}}
	c.mustCreate(t, plaintext)

	entry := func(location networkingapi.ServiceEntry_Location) *networkingv1.ServiceEntry {
		se := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm"}}
		se.Spec.Hosts = []string{"vm.internal"}
		se.Spec.Location = location
		se.Spec.Resolution = networkingapi.ServiceEntry_STATIC
		se.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": "vm"}}
		se.Spec.Ports = []*networkingapi.ServicePort{{Number: 8080, Name: "http", Protocol: "HTTP"}}
		return se
	}
	const seDenied = `admission webhook "serviceentries.mtlsguard.io" denied the request: ServiceEntry default/vm would create 1 new mTLS conflict:`
	// Wait for the webhook's cache to hold the VM and the rule, probing
	// with a dry-run that stores nothing.
	eventually(t, 30*time.Second, func() error {
		_, err := c.do(func(ctx context.Context) error {
			return c.Create(ctx, entry(networkingapi.ServiceEntry_MESH_INTERNAL), client.DryRunAll)
		})
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("dry-run create of the ServiceEntry: %v", err)
		}
		return nil
	})

	t.Run("a MESH_INTERNAL ServiceEntry that exposes the STRICT VM to a DISABLE rule is denied", func(t *testing.T) {
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, entry(networkingapi.ServiceEntry_MESH_INTERNAL)) })
		if !apierrors.IsForbidden(err) || !strings.HasPrefix(err.Error(), seDenied) ||
			!strings.Contains(err.Error(), "vm.internal:8080") || !strings.Contains(err.Error(), "vm-plaintext/default") {
			t.Fatalf("create: %v\nwant a denial starting %q naming vm.internal:8080 and vm-plaintext/default", err, seDenied)
		}
		t.Logf("denial:\n%s", err)
	})

	t.Run("the same ServiceEntry MESH_EXTERNAL is admitted", func(t *testing.T) {
		c.mustCreate(t, entry(networkingapi.ServiceEntry_MESH_EXTERNAL))
	})

	narrow := func() *networkingv1.Sidecar {
		sc := &networkingv1.Sidecar{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"}}
		sc.Spec.Egress = []*networkingapi.IstioEgressListener{{Hosts: []string{"./sleep.default.svc.cluster.local", "istio-system/*"}}}
		return sc
	}
	t.Run("a Sidecar that takes httpbin out of default's clusters is denied", func(t *testing.T) {
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, narrow()) })
		const denied = `admission webhook "sidecars.mtlsguard.io" denied the request: Sidecar default/default would create 1 new mTLS conflict:`
		if !apierrors.IsForbidden(err) || !strings.HasPrefix(err.Error(), denied) ||
			!strings.Contains(err.Error(), "httpbin.default.svc.cluster.local:8000") || !strings.Contains(err.Error(), "PassthroughCluster") {
			t.Fatalf("create: %v\nwant a denial starting %q naming httpbin and the PassthroughCluster", err, denied)
		}
		t.Logf("denial:\n%s", err)
	})

	t.Run("the same Sidecar with REGISTRY_ONLY is admitted: nothing reaches the server", func(t *testing.T) {
		sc := narrow()
		sc.Spec.OutboundTrafficPolicy = &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY}
		c.mustCreate(t, sc)
	})
}
