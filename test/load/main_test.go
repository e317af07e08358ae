// Package load runs mtlsguard's webhook, in this process and under the
// race detector, against a control plane of its own (kube-apiserver and
// etcd from bin/, as test/integration does) while 200 clients write to it
// for -duration: DestinationRule creates, updates and deletes mixed with
// pod churn that the webhook's cache follows. See docs/reliability.md.
package load

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/mtlsguard/mtlsguard/internal/testcrds"
)

var (
	env      *envtest.Environment
	cfg      *rest.Config
	repoRoot string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "load: stop the control plane: %v\n", err)
	}
	return code
}

func setup() error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	repoRoot = filepath.Join(wd, "..", "..")
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(repoRoot, "bin")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return fmt.Errorf("%s is missing from %s: run make bin", b, assets)
		}
	}
	crds, err := testcrds.Istio(repoRoot)
	if err != nil {
		return err
	}
	vwc, err := shippedWebhookConfiguration()
	if err != nil {
		return err
	}
	env = &envtest.Environment{
		ControlPlaneStartTimeout: 3 * time.Minute,
		BinaryAssetsDirectory:    assets,
		CRDs:                     crds,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{vwc},
		},
	}
	// 200 clients: lift the API server's in-flight limits above them.
	env.ControlPlane.GetAPIServer().Configure().
		Set("max-requests-inflight", "1000").
		Set("max-mutating-requests-inflight", "1000")
	cfg, err = env.Start()
	if err != nil {
		return fmt.Errorf("start the control plane: %w", err)
	}
	return nil
}

// shippedWebhookConfiguration is manifests/base/webhook.yaml with
// failurePolicy Fail, so that a failing webhook shows as an error here, and
// the longest timeout (30 s): 200 clients that write without pause keep 200
// requests queued, and on a small shared machine the queue, not a
// decision, can take longer than the shipped 3 s.
func shippedWebhookConfiguration() (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "manifests", "base", "webhook.yaml"))
	if err != nil {
		return nil, err
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(b, vwc); err != nil {
		return nil, fmt.Errorf("manifests/base/webhook.yaml: %w", err)
	}
	fail := admissionregistrationv1.Fail
	timeout := int32(30)
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].FailurePolicy = &fail
		vwc.Webhooks[i].TimeoutSeconds = &timeout
	}
	return vwc, nil
}
