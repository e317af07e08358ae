package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtlsguard/mtlsguard/policy"
)

// TestAmbientMixedMesh runs the webhook on a mesh that mixes a sidecar
// namespace and an ambient one (istio-mtls-semantics-extended.md §1.4,
// §1.7): the mesh-wide *.local ISTIO_MUTUAL rule is no conflict there,
// since sidecars send HBONE to captured pods; a namespace STRICT policy on
// sidecars that ztunnel reaches in plaintext is one, and the labels that
// decide both travel through the webhook's cache.
func TestAmbientMixedMesh(t *testing.T) {
	startWebhook(t)
	c := newCluster(t)
	const sc, amb = "ambmix-sc", "ambmix-amb"
	c.ensureNamespace(t, "istio-system", nil)
	c.ensureNamespace(t, sc, map[string]string{"istio-injection": "enabled"})
	c.ensureNamespace(t, amb, nil) // labelled ambient below
	c.mustCreate(t, sidecarPod(sc, "sleep-1", "sleep"))
	c.mustCreate(t, auditService(sc, "legacy", 8000, 8080))
	c.mustCreate(t, sidecarPod(sc, "legacy-1", "legacy")) // no networking.istio.io/tunnel label
	c.mustCreate(t, plainPod(amb, "sleep-1", "sleep"))
	c.mustCreate(t, auditService(amb, "httpbin", 8000, 8080))
	c.mustCreate(t, plainPod(amb, "httpbin-1", "httpbin"))

	strictSC := func() *securityv1.PeerAuthentication {
		pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: sc, Name: "default"}}
		pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
		return pa
	}
	dryRunStrict := func() ([]string, error) {
		return c.do(func(ctx context.Context) error { return c.Create(ctx, strictSC(), client.DryRunAll) })
	}

	// Before amb is ambient its pods are plain: nobody reaches legacy in
	// plaintext through a client view, so STRICT is admitted.
	eventually(t, 30*time.Second, func() error {
		if w, err := dryRunStrict(); err != nil || len(w) > 0 {
			return fmt.Errorf("dry-run STRICT before amb is ambient: %v, warnings %q", err, w)
		}
		return nil
	})

	// Labelling amb ambient reaches the webhook's state: its pods become
	// ztunnel clients, which send plaintext to legacy.
	c.label(t, amb, values(map[string]string{policy.DataplaneModeLabel: "ambient"}))
	t.Cleanup(func() { c.label(t, amb, map[string]*string{policy.DataplaneModeLabel: nil}) })
	eventually(t, 30*time.Second, func() error {
		if _, err := dryRunStrict(); !apierrors.IsForbidden(err) {
			return fmt.Errorf("dry-run STRICT once amb is ambient: %v, want a denial", err)
		}
		return nil
	})

	t.Run("the mesh-wide *.local ISTIO_MUTUAL rule is admitted without a warning", func(t *testing.T) {
		// The engine before ambient support denied this: ISTIO_MUTUAL
		// towards httpbin-1, a pod without a sidecar. Sidecars send HBONE
		// to it instead (cluster_tls.go applyHBONETransportSocketMatches).
		c.mustCreate(t, mutualRule("istio-system", "default", "*.local"))
	})

	t.Run("namespace STRICT on sidecars that ztunnel reaches in plaintext is denied", func(t *testing.T) {
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, strictSC()) })
		if !apierrors.IsForbidden(err) {
			t.Fatalf("create STRICT in %s: %v, want a denial", sc, err)
		}
		msg := err.Error()
		for _, want := range []string{
			`admission webhook "peerauthentications.mtlsguard.io" denied the request: PeerAuthentication ambmix-sc/default would create 1 new mTLS conflict:`,
			"legacy.ambmix-sc.svc.cluster.local:8000",
			"ZTUNNEL",
			amb,
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("denial lacks %q:\n%s", want, msg)
			}
		}
		if strings.Contains(msg, "httpbin") {
			t.Errorf("denial names the ambient service, which takes HBONE:\n%s", msg)
		}
		t.Logf("denial:\n%s", msg)
	})

	t.Run("once legacy advertises the HBONE tunnel, STRICT is admitted", func(t *testing.T) {
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{policy.TunnelLabel: "http"}}})
		if err != nil {
			t.Fatal(err)
		}
		legacy := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: sc, Name: "legacy-1"}}
		if err := c.Patch(context.Background(), legacy, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() error {
			if w, err := dryRunStrict(); err != nil || len(w) > 0 {
				return fmt.Errorf("dry-run STRICT once legacy has the tunnel label: %v, warnings %q", err, w)
			}
			return nil
		})
	})
}
