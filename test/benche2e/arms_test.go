package benche2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// arm is one side of the comparison: a webhook server the shipped webhook
// configuration can point at, and a way to tell that a request reached it.
type arm struct {
	name string
	port int
	seen func() (float64, error) // requests answered so far
}

// webhookConfig is the shipped ValidatingWebhookConfiguration with each
// webhook's Service replaced by https://127.0.0.1:port/<same path> and the
// CA filled in, as hack/localcp does for the demo. Timeout, failure policy,
// rules and selectors stay as shipped.
type webhookConfig struct {
	kube    kubernetes.Interface
	istio   istioclient.Interface
	name    string
	current *arm
}

func registerWebhook(ctx context.Context, t *testing.T, root string, kube kubernetes.Interface, istio istioclient.Interface, c *certs, first *arm) *webhookConfig {
	t.Helper()
	path := filepath.Join(root, "manifests", "base", "webhook.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &vwc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	delete(vwc.Annotations, "cert-manager.io/inject-ca-from")
	for i, w := range vwc.Webhooks {
		if w.ClientConfig.Service == nil || w.ClientConfig.Service.Path == nil {
			t.Fatalf("%s: webhook %s has no service path", path, w.Name)
		}
		url := fmt.Sprintf("https://127.0.0.1:%d%s", first.port, *w.ClientConfig.Service.Path)
		vwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: c.caPEM}
	}
	if _, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &vwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("registering %s: %v", path, err)
	}
	w := &webhookConfig{kube: kube, istio: istio, name: vwc.Name}
	if err := w.confirm(ctx, first); err != nil {
		t.Fatal(err)
	}
	w.current = first
	return w
}

// webhookTimeout is the shipped timeoutSeconds of the webhook for kind
// (the API server's deadline for an answer).
func (w *webhookConfig) timeout(ctx context.Context) (time.Duration, error) {
	vwc, err := w.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, w.name, metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	var longest int32
	for _, h := range vwc.Webhooks {
		if h.TimeoutSeconds != nil && *h.TimeoutSeconds > longest {
			longest = *h.TimeoutSeconds
		}
	}
	return time.Duration(longest) * time.Second, nil
}

// switchTo points every webhook of the configuration at a's port and waits
// until the API server calls a.
func (w *webhookConfig) switchTo(ctx context.Context, a *arm) error {
	if w.current == a {
		return nil
	}
	vwc, err := w.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, w.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", w.name, err)
	}
	for i, h := range vwc.Webhooks {
		u := *h.ClientConfig.URL
		u = replacePort(u, a.port)
		vwc.Webhooks[i].ClientConfig.URL = &u
	}
	if _, err := w.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, vwc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("pointing ValidatingWebhookConfiguration %s at %s: %w", w.name, a.name, err)
	}
	if err := w.confirm(ctx, a); err != nil {
		return err
	}
	w.current = a
	return nil
}

// confirm sends dry-run DestinationRule creates until a sees one: the API
// server picks up a changed webhook configuration from its own informer, a
// moment after the update.
func (w *webhookConfig) confirm(ctx context.Context, a *arm) error {
	probe := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-0", Name: "arm-probe"}}
	probe.Spec.Host = "arm-probe"
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		before, err := a.seen()
		if err != nil {
			return err
		}
		_, err = w.istio.NetworkingV1().DestinationRules(probe.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return fmt.Errorf("dry-run create of the probe rule: %w", err)
		}
		after, err := a.seen()
		if err != nil {
			return err
		}
		if after > before {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the API server did not call %s within 60s of the configuration change", a.name)
}

// replacePort replaces the port of https://127.0.0.1:PORT/path.
func replacePort(url string, port int) string {
	const prefix = "https://127.0.0.1:"
	rest := url[len(prefix):]
	for i, r := range rest {
		if r == '/' {
			return fmt.Sprintf("%s%d%s", prefix, port, rest[i:])
		}
	}
	return fmt.Sprintf("%s%d", prefix, port)
}
