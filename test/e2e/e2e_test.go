// Package e2e installs mtlsguard from manifests/, and with bin/helm from
// charts/mtlsguard, into a local control plane (etcd and kube-apiserver from
// bin/), lets cert-manager's own controllers, run in this process, issue its
// serving certificate and inject the CA, runs bin/mtlsguard as its
// ServiceAccount, and walks Istio's "Mutual TLS Deep-Dive" with the real
// kubectl, checking exit codes and stderr. It also lints and renders the
// chart and fails when the chart and manifests/ drift apart.
//
// It is its own module (cert-manager v1.21 pins k8s.io v0.36 and
// controller-runtime v0.24; mtlsguard is on v0.37 and v0.25) and drives the
// mtlsguard binaries as processes instead of importing them.
//
// Run it with -count=1: what it tests (bin/, manifests/, charts/, examples/)
// lies outside this module, where `go test` does not look when it decides
// that a cached result is still good.
package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	namespace      = "mtlsguard-system"
	serviceAccount = "mtlsguard"
	servingSecret  = "mtlsguard-serving-tls"
	webhookConfig  = "mtlsguard"

	badRule = "examples/deep-dive/bad-rule/bad-rule.yaml"
)

func TestInstallAndDeepDive(t *testing.T) {
	// Cleanups run last-in first-out: the processes and cert-manager stop
	// before the control plane (registered by startCluster) does. Whatever
	// outlives one step belongs to top, not to the subtest that made it.
	top := t
	c := startCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	startCertManager(ctx, t, c)
	port := freePort(t)
	certDir := t.TempDir()

	// The Role for the mesh ConfigMap lives in Istio's root namespace, which
	// exists wherever Istio runs.
	c.mustKubectl(t, "create", "namespace", "istio-system")

	must(t, t.Run("every object in manifests passes server-side dry-run", func(t *testing.T) {
		// Create the webhook's namespace first, so every other object is
		// checked as the create it will be.
		c.mustKubectl(t, "apply", "-f", "manifests/base/namespace.yaml")
		for _, dir := range []string{"manifests/default", "manifests/overlays/fail-closed"} {
			r := c.mustKubectl(t, "apply", "--dry-run=server", "-k", dir)
			want := len(strings.Split(c.kustomize(t, dir), "\n---\n"))
			if got := strings.Count(r.stdout, "(server dry run)"); got != want {
				t.Errorf("%s: %d objects passed server-side dry-run, want %d", dir, got, want)
			}
			// Pod Security "restricted" is enforced and warned on in the
			// namespace: a warning means the Deployment's pods would be rejected.
			if r.stderr != "" {
				t.Errorf("%s: want no warnings, got:\n%s", dir, r.stderr)
			}
		}
	}))

	must(t, t.Run("kubectl apply -k installs mtlsguard", func(t *testing.T) {
		r := c.mustKubectl(t, "apply", "-k", localOverlay(t, c.root, port))
		if r.stderr != "" {
			t.Errorf("want no warnings, got:\n%s", r.stderr)
		}
	}))

	must(t, t.Run("cert-manager issues the serving certificate and injects the CA", func(t *testing.T) {
		waitForCertificate(ctx, t, c, certDir)
	}))

	var w *webhook
	must(t, t.Run("the webhook syncs every informer as its ServiceAccount", func(t *testing.T) {
		kc := c.impersonatingKubeconfig(top, namespace, serviceAccount)
		w = c.startWebhook(top, "mtlsguard", certDir, kc, port)
		t.Logf("ready after %s", w.waitReady(t, 90*time.Second).Round(time.Millisecond))
	}))

	must(t, t.Run("Deep-Dive", func(t *testing.T) { deepDive(t, c) }))

	t.Run("cert-manager reissues the serving certificate: served without a restart, no admission fails", func(t *testing.T) {
		c.mustKubectl(t, "label", "namespace", "default", "mtlsguard.io/mode=enforce", "--overwrite")
		eventually(t, "the webhook to deny bad-rule again", func() bool {
			return c.kubectl(t, "apply", "--dry-run=server", "-f", badRule).code != 0
		})
		certificateRotation(ctx, t, c, w, certDir)
	})

	t.Run("the ServiceAccount may do nothing more", func(t *testing.T) {
		mayDoNothingMore(ctx, t, c, serviceAccount)
		holdsLease(ctx, t, c)
	})

	t.Run("each RBAC rule is needed", func(t *testing.T) {
		eachRuleIsNeeded(ctx, t, c, certDir)
	})

	t.Run("the SubjectAccessReview rule is needed to name what the requester may read", func(t *testing.T) {
		theDisclosureRuleIsNeeded(ctx, t, c, w, certDir)
	})
}

// deepDive is the walkthrough of Istio's Mutual TLS Deep-Dive task with the
// real kubectl, against the webhook installed from manifests/.
func deepDive(t *testing.T, c *cluster) {
	c.mustKubectl(t, "apply", "-f", "examples/deep-dive/workloads.yaml")
	c.mustKubectl(t, "apply", "-f", "examples/deep-dive/mesh-mtls.yaml")

	// The webhook answers from its informer cache; give it a moment to see the
	// writes above. Dry-run has no side effects, so polling with it is free.
	eventually(t, "the webhook to deny bad-rule", func() bool {
		return c.kubectl(t, "apply", "--dry-run=server", "-f", badRule).code != 0
	})

	denied := func(t *testing.T, r result) {
		t.Helper()
		if r.code == 0 {
			t.Fatalf("%s: exit 0, want a denial", r.cmd)
		}
		// default/istio-system, the mesh-wide PeerAuthentication, is named
		// only if the webhook may ask whether the requester may read it
		// (--disclose=permitted: manifests/base/rbac-disclosure.yaml).
		for _, want := range []string{`admission webhook "destinationrules.mtlsguard.io" denied the request`, "CONFLICT", "bad-rule", "default/istio-system"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: stderr does not contain %q:\n%s", r.cmd, want, r.stderr)
			}
		}
		if r := c.kubectl(t, "get", "destinationrule", "bad-rule", "-n", "default"); r.code == 0 {
			t.Errorf("bad-rule was stored after %s", r.cmd)
		}
	}
	t.Run("enforce: apply bad-rule is denied", func(t *testing.T) {
		denied(t, c.kubectl(t, "apply", "-f", badRule))
	})
	t.Run("enforce: server-side dry-run is denied the same way", func(t *testing.T) {
		denied(t, c.kubectl(t, "apply", "--dry-run=server", "-f", badRule))
	})

	t.Run("audit: apply bad-rule is admitted with a warning", func(t *testing.T) {
		c.mustKubectl(t, "label", "namespace", "default", "mtlsguard.io/mode=audit", "--overwrite")
		eventually(t, "the webhook to see namespace default in audit mode", func() bool {
			return c.kubectl(t, "apply", "--dry-run=server", "-f", badRule).code == 0
		})
		r := c.mustKubectl(t, "apply", "-f", badRule)
		if !strings.Contains(r.stdout, "destinationrule.networking.istio.io/bad-rule created") {
			t.Errorf("%s: want bad-rule created, got:\n%s", r.cmd, r.stdout)
		}
		var warnings []string
		for _, line := range strings.Split(r.stderr, "\n") {
			if strings.HasPrefix(line, "Warning: ") {
				warnings = append(warnings, line)
			}
		}
		if len(warnings) == 0 || !strings.Contains(strings.Join(warnings, "\n"), "CONFLICT") {
			t.Errorf("%s: want a Warning: line with the CONFLICT, got stderr:\n%s", r.cmd, r.stderr)
		}
		c.mustKubectl(t, "get", "destinationrule", "bad-rule", "-n", "default")
		c.mustKubectl(t, "delete", "-f", badRule)
	})
}

// localOverlay writes a kustomization that installs manifests/default as
// shipped, except for what a control plane without pods needs: the API server
// calls the webhook process on 127.0.0.1 instead of the Service, so the
// serving certificate must also be valid for 127.0.0.1. The "test" ops make
// the patch fail if the webhooks are ever reordered.
func localOverlay(t *testing.T, root string, port int) string {
	t.Helper()
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(root, "manifests", "default"))
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/validate/", port)
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
patches:
- target:
    kind: ValidatingWebhookConfiguration
    name: mtlsguard
  patch: |-
    - op: test
      path: /webhooks/0/name
      value: destinationrules.mtlsguard.io
    - op: replace
      path: /webhooks/0/clientConfig
      value: {url: "%sdestinationrules"}
    - op: test
      path: /webhooks/1/name
      value: peerauthentications.mtlsguard.io
    - op: replace
      path: /webhooks/1/clientConfig
      value: {url: "%speerauthentications"}
    - op: test
      path: /webhooks/2/name
      value: serviceentries.mtlsguard.io
    - op: replace
      path: /webhooks/2/clientConfig
      value: {url: "%sserviceentries"}
    - op: test
      path: /webhooks/3/name
      value: workloadentries.mtlsguard.io
    - op: replace
      path: /webhooks/3/clientConfig
      value: {url: "%sworkloadentries"}
    - op: test
      path: /webhooks/4/name
      value: sidecars.mtlsguard.io
    - op: replace
      path: /webhooks/4/clientConfig
      value: {url: "%ssidecars"}
- target:
    kind: Certificate
    name: mtlsguard-serving
  patch: |-
    - op: add
      path: /spec/ipAddresses
      value: ["127.0.0.1"]
`, filepath.ToSlash(base), url, url, url, url, url)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitForCertificate waits until cert-manager has issued the serving
// certificate and injected its CA into every webhook, checks the certificate,
// and writes tls.crt and tls.key into dir, for --cert-dir.
func waitForCertificate(ctx context.Context, t *testing.T, c *cluster, dir string) {
	t.Helper()
	var crt, key, ca []byte
	eventually(t, "Secret "+servingSecret+" with tls.crt, tls.key and ca.crt", func() bool {
		s, err := c.client.CoreV1().Secrets(namespace).Get(ctx, servingSecret, metav1.GetOptions{})
		if err != nil {
			return false
		}
		crt, key, ca = s.Data["tls.crt"], s.Data["tls.key"], s.Data["ca.crt"]
		return len(crt) > 0 && len(key) > 0 && len(ca) > 0
	})
	eventually(t, "caBundle injected into every webhook", func() bool {
		vwc, err := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhookConfig, metav1.GetOptions{})
		if err != nil || len(vwc.Webhooks) != webhookCount {
			return false
		}
		for _, w := range vwc.Webhooks {
			if string(w.ClientConfig.CABundle) != string(ca) {
				return false
			}
		}
		return true
	})
	c.mustKubectl(t, "get", "issuers,certificates", "-n", namespace)

	// The leaf must chain to the injected CA and carry the Service's names
	// (and the 127.0.0.1 this test adds).
	block, _ := pem.Decode(crt)
	if block == nil {
		t.Fatal("tls.crt holds no PEM block")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("ca.crt holds no certificate")
	}
	for _, name := range []string{"mtlsguard.mtlsguard-system.svc", "mtlsguard.mtlsguard-system.svc.cluster.local", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if leaf.IsCA {
		t.Error("the serving certificate is a CA")
	}

	for name, data := range map[string][]byte{"tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// eventually polls cond for up to a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// must stops the test when a step that later steps build on has failed.
func must(t *testing.T, ok bool) {
	t.Helper()
	if !ok {
		t.FailNow()
	}
}

// webhookCount is the number of webhooks the shipped configuration holds:
// DestinationRules, PeerAuthentications, ServiceEntries, WorkloadEntries and
// Sidecars.
const webhookCount = 5
