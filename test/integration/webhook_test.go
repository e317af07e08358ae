package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	networkingv1beta1 "istio.io/client-go/pkg/apis/networking/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	securityv1beta1 "istio.io/client-go/pkg/apis/security/v1beta1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/mtlsguard/mtlsguard/policy"
	"github.com/mtlsguard/mtlsguard/webhook"
)

const (
	denied = `admission webhook "destinationrules.mtlsguard.io" denied the request: `

	badRuleDenial = denied + `DestinationRule default/bad-rule would create 1 new mTLS conflict:
HOST:PORT                                  STATUS       SERVER     CLIENT     AUTHN POLICY             DESTINATION RULE     CLIENT NAMESPACES
httpbin.default.svc.cluster.local:8000     CONFLICT     mTLS       HTTP       default/istio-system     bad-rule/default     default`

	badRuleWarning = "httpbin.default:8000 CONFLICT server=mTLS client=HTTP authn=default/istio-system dr=bad-rule/default clients=default"

	badRuleFile = "examples/deep-dive/bad-rule/bad-rule.yaml"
)

// badRule is the Deep-Dive's bad-rule in networking.istio.io/v1.
func badRule() *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "bad-rule"}}
	dr.Spec.Host = "httpbin.default.svc.cluster.local"
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_DISABLE}}
	return dr
}

// badRuleIn returns bad-rule in another served version.
func badRuleIn(version string) client.Object {
	b := badRule()
	switch version {
	case "v1beta1":
		o := &networkingv1beta1.DestinationRule{ObjectMeta: b.ObjectMeta}
		b.Spec.DeepCopyInto(&o.Spec)
		return o
	case "v1alpha3":
		o := &networkingv1alpha3.DestinationRule{ObjectMeta: b.ObjectMeta}
		b.Spec.DeepCopyInto(&o.Spec)
		return o
	}
	return b
}

// deepDive creates the workloads and the global mutual TLS policies of
// Istio's Mutual TLS Deep-Dive (examples/deep-dive), asserting that the
// webhook admits them without a warning, and removes them when the test
// ends.
func deepDive(t *testing.T, c *cluster) {
	t.Helper()
	for _, f := range []string{"examples/deep-dive/workloads.yaml", "examples/deep-dive/mesh-mtls.yaml"} {
		for _, obj := range loadYAML(t, f) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				c.ensureNamespace(t, ns.Name, ns.Labels)
				continue
			}
			c.mustCreate(t, obj)
		}
	}
}

// statusCode is the HTTP code of an API error.
func statusCode(err error) int32 {
	if s, ok := err.(apierrors.APIStatus); ok {
		return s.Status().Code
	}
	return 0
}

func TestDeepDive(t *testing.T) {
	top := t // objects that outlive a subtest are cleaned up with it
	r := startWebhook(t)
	c := newCluster(t)
	deepDive(t, c)
	// The webhook's cache follows the API server: wait until it has the
	// workloads and policies, probing with a dry-run that stores nothing.
	eventually(t, 30*time.Second, func() error {
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRule(), client.DryRunAll) })
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("dry-run create of bad-rule: %v", err)
		}
		return nil
	})

	t.Run("bad-rule is denied with the CONFLICT row", func(t *testing.T) {
		w, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRule()) })
		if !apierrors.IsForbidden(err) || statusCode(err) != http.StatusForbidden || err.Error() != badRuleDenial {
			t.Fatalf("create bad-rule: %v (code %d)\nwant 403:\n%s", err, statusCode(err), badRuleDenial)
		}
		if len(w) > 0 {
			t.Errorf("warnings %q on a denial", w)
		}
		t.Logf("denial:\n%s", err)
		a := audited(t, "create", "default", "bad-rule", http.StatusForbidden)
		if got := a["destinationrules.mtlsguard.io/decision"]; got != "enforce-denied" {
			t.Errorf("audit annotation decision = %q, want enforce-denied (all: %v)", got, a)
		}
	})

	t.Run("bad-rule with DryRunAll is denied the same and not stored", func(t *testing.T) {
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRule(), client.DryRunAll) })
		if err == nil || err.Error() != badRuleDenial {
			t.Fatalf("dry-run create: %v\nwant:\n%s", err, badRuleDenial)
		}
		err = c.Get(context.Background(), client.ObjectKeyFromObject(badRule()), &networkingv1.DestinationRule{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("get bad-rule after a denied dry-run: %v, want NotFound", err)
		}
	})

	t.Run("v1beta1 and v1alpha3 creates are denied the same", func(t *testing.T) {
		for _, v := range []string{"v1beta1", "v1alpha3"} {
			_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRuleIn(v)) })
			if err == nil || err.Error() != badRuleDenial {
				t.Errorf("create bad-rule %s: %v\nwant:\n%s", v, err, badRuleDenial)
			}
		}
	})

	t.Run("kubectl apply shows the denial", func(t *testing.T) {
		_, stderr, err := kubectl(t, "apply", "-f", filepath.Join(repoRoot, badRuleFile))
		if err == nil || !strings.Contains(stderr, "Error from server (Forbidden)") || !strings.Contains(stderr, badRuleDenial) {
			t.Fatalf("kubectl apply: %v\n%s", err, stderr)
		}
		t.Logf("kubectl apply -f %s\n%s", badRuleFile, stderr)
	})

	t.Run("bad-rule in a namespace labelled audit is admitted with a warning", func(t *testing.T) {
		c.label(t, "default", values(map[string]string{webhook.ModeLabel: "audit"}))
		eventually(t, 30*time.Second, func() error {
			w, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRule(), client.DryRunAll) })
			if err != nil || len(w) == 0 {
				return fmt.Errorf("dry-run create: %v, warnings %q", err, w)
			}
			return nil
		})
		stdout, stderr, err := kubectl(t, "apply", "-f", filepath.Join(repoRoot, badRuleFile))
		if err != nil || stderr != "Warning: "+badRuleWarning+"\n" {
			t.Fatalf("kubectl apply: %v\nstdout: %s\nstderr: %s\nwant stderr: Warning: %s", err, stdout, stderr, badRuleWarning)
		}
		c.deleteAtCleanup(top, badRule())
		t.Logf("kubectl apply -f %s\n%s%s", badRuleFile, stderr, stdout)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(badRule()), &networkingv1.DestinationRule{}); err != nil {
			t.Errorf("bad-rule was admitted but is not stored: %v", err)
		}
	})

	// bad-rule now exists and conflicts; default goes back to enforce.
	t.Run("back to enforce", func(t *testing.T) {
		c.label(t, "default", map[string]*string{webhook.ModeLabel: nil})
		probe := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "probe"}}
		probe.Spec.Host = "sleep"
		probe.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_DISABLE}}
		eventually(t, 30*time.Second, func() error {
			_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, probe.DeepCopy(), client.DryRunAll) })
			if !apierrors.IsForbidden(err) {
				return fmt.Errorf("dry-run create of a conflicting rule: %v", err)
			}
			return nil
		})
	})

	t.Run("an unrelated rule in another namespace is admitted while bad-rule conflicts", func(t *testing.T) {
		// Clients in other get their own rule for httpbin; bad-rule still
		// breaks the clients in default. The objects stay until the test
		// ends, when bad-rule no longer conflicts.
		c.ensureNamespace(t, "other", nil)
		sleep := sidecarPod("other", "sleep-0", "sleep")
		c.create(t, sleep)
		c.deleteAtCleanup(top, sleep)
		dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "httpbin-mtls"}}
		dr.Spec.Host = "httpbin.default.svc.cluster.local"
		dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}}
		c.create(t, dr)
		c.deleteAtCleanup(top, dr)

		// Deleting it would hand the clients in other to bad-rule.
		_, err := c.do(func(ctx context.Context) error { return c.Delete(ctx, dr.DeepCopy(), client.DryRunAll) })
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "deleting DestinationRule other/httpbin-mtls would create 1 new mTLS conflict:") ||
			!strings.HasSuffix(err.Error(), "bad-rule/default     other") {
			t.Errorf("dry-run delete of other/httpbin-mtls: %v", err)
		}
	})

	t.Run("updating bad-rule to ISTIO_MUTUAL is admitted", func(t *testing.T) {
		dr := &networkingv1.DestinationRule{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(badRule()), dr); err != nil {
			t.Fatal(err)
		}
		dr.Spec.TrafficPolicy.Tls.Mode = networkingapi.ClientTLSSettings_ISTIO_MUTUAL
		if w, err := c.do(func(ctx context.Context) error { return c.Update(ctx, dr) }); err != nil || len(w) > 0 {
			t.Fatalf("update: %v, warnings %q", err, w)
		}
	})

	t.Run("deleting the PERMISSIVE policy that shields DISABLE clients is denied", func(t *testing.T) {
		// legacy speaks plaintext (a DISABLE rule for its services), which
		// its namespace-level PERMISSIVE policy accepts despite the mesh's
		// STRICT one. Without that policy STRICT applies: the clients in
		// default, legacy and other would send plaintext to an mTLS-only
		// server.
		c.ensureNamespace(t, "legacy", nil)
		for _, p := range []*corev1.Pod{sidecarPod("legacy", "db-0", "db"), sidecarPod("legacy", "client-0", "client")} {
			c.mustCreate(t, p)
		}
		c.mustCreate(t, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "legacy", Name: "db"},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432}}},
		})
		pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: "legacy", Name: "permissive"}}
		pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_PERMISSIVE}
		c.mustCreate(t, pa)
		plaintext := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "legacy", Name: "plaintext"}}
		plaintext.Spec.Host = "*.legacy.svc.cluster.local"
		plaintext.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_DISABLE}}
		// Admitted once the webhook has seen the PERMISSIVE policy.
		eventually(t, 30*time.Second, func() error {
			_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, plaintext.DeepCopy()) })
			return err
		})
		c.deleteAtCleanup(t, plaintext)

		want := `admission webhook "peerauthentications.mtlsguard.io" denied the request: deleting PeerAuthentication legacy/permissive would create 1 new mTLS conflict:
HOST:PORT                            STATUS       SERVER     CLIENT     AUTHN POLICY             DESTINATION RULE     CLIENT NAMESPACES
db.legacy.svc.cluster.local:5432     CONFLICT     mTLS       HTTP       default/istio-system     plaintext/legacy     default, legacy, other`
		for _, obj := range []client.Object{pa.DeepCopy(), &securityv1beta1.PeerAuthentication{ObjectMeta: pa.ObjectMeta}} {
			_, err := c.do(func(ctx context.Context) error { return c.Delete(ctx, obj) })
			if !apierrors.IsForbidden(err) || err.Error() != want {
				t.Errorf("delete %T: %v\nwant:\n%s", obj, err, want)
			}
		}
		_, err := c.do(func(ctx context.Context) error { return c.Delete(ctx, pa.DeepCopy(), client.DryRunAll) })
		if err == nil || err.Error() != want {
			t.Errorf("dry-run delete: %v\nwant:\n%s", err, want)
		}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(pa), &securityv1.PeerAuthentication{}); err != nil {
			t.Errorf("the policy is gone after denied deletes: %v", err)
		}
	})

	t.Run("v1beta1 and v1alpha3 writes that create no conflict are admitted", func(t *testing.T) {
		dr := &networkingv1beta1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "sleep-mtls"}}
		dr.Spec.Host = "sleep.default.svc.cluster.local"
		dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}}
		c.mustCreate(t, dr)
		old := &networkingv1alpha3.DestinationRule{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(dr), old); err != nil {
			t.Fatal(err)
		}
		old.Labels = map[string]string{"team": "a"}
		old.Spec.ExportTo = []string{"."}
		if w, err := c.do(func(ctx context.Context) error { return c.Update(ctx, old) }); err != nil || len(w) > 0 {
			t.Errorf("v1alpha3 update: %v, warnings %q", err, w)
		}
		pa := &securityv1beta1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "strict"}}
		pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
		c.mustCreate(t, pa)
	})

	t.Run("metrics", func(t *testing.T) {
		m := r.metrics(t)
		for _, want := range []string{
			`mtlsguard_decisions_total{dry_run="false",kind="DestinationRule",mode="enforce",operation="CREATE",result="denied"}`,
			`mtlsguard_decisions_total{dry_run="true",kind="DestinationRule",mode="enforce",operation="CREATE",result="denied"}`,
			`mtlsguard_decisions_total{dry_run="false",kind="DestinationRule",mode="audit",operation="CREATE",result="warned"}`,
			`mtlsguard_decisions_total{dry_run="false",kind="PeerAuthentication",mode="enforce",operation="DELETE",result="denied"}`,
			// reach: the rules for one host, the namespace-wide rule of
			// legacy and its namespace policy.
			`mtlsguard_decision_duration_seconds_bucket{kind="DestinationRule",operation="CREATE",reach="service",le="0.0005"}`,
			`mtlsguard_decision_duration_seconds_bucket{kind="DestinationRule",operation="CREATE",reach="namespace",le="0.0005"}`,
			`mtlsguard_decision_duration_seconds_bucket{kind="PeerAuthentication",operation="DELETE",reach="namespace",le="0.0005"}`,
			`controller_runtime_webhook_requests_total{code="200",webhook="/validate/destinationrules"}`,
			`controller_runtime_webhook_requests_in_flight{webhook="/validate/peerauthentications"}`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// TestDefaultModeAudit runs the webhook with --default-mode=audit.
func TestDefaultModeAudit(t *testing.T) {
	startWebhook(t, func(o *webhook.Options) { o.DefaultMode = webhook.Audit })
	c := newCluster(t)
	deepDive(t, c)
	eventually(t, 30*time.Second, func() error {
		w, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRule(), client.DryRunAll) })
		if err != nil || len(w) == 0 {
			return fmt.Errorf("dry-run create: %v, warnings %q", err, w)
		}
		return nil
	})
	w, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRule()) })
	if err != nil || !equal(w, []string{badRuleWarning}) {
		t.Fatalf("create bad-rule: %v, warnings %q; want admitted with %q", err, w, badRuleWarning)
	}
	c.deleteAtCleanup(t, badRule())
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(badRule()), &networkingv1.DestinationRule{}); err != nil {
		t.Errorf("bad-rule was admitted but is not stored: %v", err)
	}
	a := audited(t, "create", "default", "bad-rule", http.StatusCreated)
	want := map[string]string{
		"destinationrules.mtlsguard.io/decision":  "audit-allowed",
		"destinationrules.mtlsguard.io/conflicts": "httpbin.default.svc.cluster.local:8000 CONFLICT server=mTLS client=HTTP authn=default/istio-system dr=bad-rule/default clients=default",
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("audit annotation %s = %q, want %q", k, a[k], v)
		}
	}
	t.Logf("audit annotations: %v", a)
}

// TestUnsynced serves the real handlers from a store whose informers never
// sync: requests are answered per --unsynced, never decided.
func TestUnsynced(t *testing.T) {
	c := newCluster(t)
	c.ensureNamespace(t, "unsynced", nil)
	rule := func() *networkingv1.DestinationRule {
		dr := badRule()
		dr.Namespace = "unsynced"
		return dr
	}
	for _, u := range []webhook.Unsynced{webhook.UnsyncedAllow, webhook.UnsyncedDeny} {
		t.Run(string(u), func(t *testing.T) {
			store := serveUnsynced(t, u)
			if store.ReadyCheck(nil) == nil {
				t.Error("an unsynced store is ready")
			}
			w, err := c.do(func(ctx context.Context) error { return c.Create(ctx, rule()) })
			switch u {
			case webhook.UnsyncedAllow:
				if err != nil || !equal(w, []string{"mtlsguard: cache not synced, not checked"}) {
					t.Fatalf("create: %v, warnings %q", err, w)
				}
				c.deleteAtCleanup(t, rule())
			case webhook.UnsyncedDeny:
				want := denied + "mtlsguard: cache not synced, not checked"
				if !apierrors.IsServiceUnavailable(err) || err.Error() != want {
					t.Fatalf("create: %v, want 503 %q", err, want)
				}
			}
		})
	}
}

// serveUnsynced serves the webhook from a store no informer feeds.
func serveUnsynced(t *testing.T, u webhook.Unsynced) *webhook.Store {
	t.Helper()
	store, err := webhook.NewStore(policy.DefaultMesh())
	if err != nil {
		t.Fatal(err)
	}
	w := env.WebhookInstallOptions
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir})
	o := webhook.DefaultOptions()
	o.Unsynced = u
	if err := webhook.Register(srv, store, o, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	eventually(t, 10*time.Second, func() error { return srv.StartedChecker()(nil) })
	return store
}

// TestServerTLS checks the webhook server's TLS: 1.2 at least, no HTTP/2.
func TestServerTLS(t *testing.T) {
	r := startWebhook(t)
	addr := r.options.Host + ":" + strconv.Itoa(r.options.Port)
	if conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Errorf("negotiated %q", p)
	}
}

// TestWebhookConfigurationMatchesManifests keeps the test's webhook
// configuration in step with manifests/base/webhook.yaml: only
// failurePolicy, timeoutSeconds and the CA injection may differ.
func TestWebhookConfigurationMatchesManifests(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "manifests/base/webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	shipped := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := yaml.Unmarshal(b, shipped); err != nil {
		t.Fatal(err)
	}
	ours := webhookConfiguration()
	if len(shipped.Webhooks) != len(ours.Webhooks) {
		t.Fatalf("manifests ship %d webhooks, the test registers %d", len(shipped.Webhooks), len(ours.Webhooks))
	}
	for i := range ours.Webhooks {
		s, o := shipped.Webhooks[i], ours.Webhooks[i]
		s.FailurePolicy, s.TimeoutSeconds, s.ClientConfig.CABundle = o.FailurePolicy, o.TimeoutSeconds, nil
		if !reflect.DeepEqual(s, o) {
			t.Errorf("webhook %d differs:\nmanifests: %+v\ntest:      %+v", i, s, o)
		}
	}
}

func sidecarPod(ns, name, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels:      map[string]string{"app": app, policy.TLSModeLabel: "istio"},
			Annotations: map[string]string{policy.SidecarStatusAnnotation: `{"containers":["istio-proxy"]}`},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: app}, {Name: "istio-proxy", Image: "istio/proxyv2"}}},
	}
}

// TestCertReload replaces the serving certificate in --cert-dir and expects
// the running server to serve the new one, without a restart.
func TestCertReload(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"tls.crt", "tls.key"} {
		b, err := os.ReadFile(filepath.Join(env.WebhookInstallOptions.LocalServingCertDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := startWebhook(t, func(o *webhook.Options) { o.CertDir = dir })
	addr := r.options.Host + ":" + strconv.Itoa(r.options.Port)
	served := func() *big.Int {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	before := served()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: "mtlsguard"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(r.options.Host)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if got := served(); got.Cmp(tmpl.SerialNumber) != 0 {
			return fmt.Errorf("serves serial %v (before: %v), want %v", got, before, tmpl.SerialNumber)
		}
		return nil
	})
}
