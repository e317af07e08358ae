// Package integration runs the mtlsguard webhook against a real
// kube-apiserver and etcd (controller-runtime's envtest, binaries built from
// source into bin/ by `make bin`), with Istio's CRDs from the istio.io/api
// module and the webhook registered the way manifests/ ship it.
package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"go.uber.org/zap/zapcore"

	"github.com/mtlsguard/mtlsguard/internal/testcrds"
)

var (
	// env is the control plane every test shares; cfg is its admin config.
	env *envtest.Environment
	cfg *rest.Config
	// repoRoot is the mtlsguard checkout.
	repoRoot string
	// auditLog is the API server's audit log of Istio writes (metadata).
	auditLog string
)

// auditPolicy logs Istio writes at the Metadata level, which carries the
// webhook's audit annotations.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources:
  - group: networking.istio.io
  - group: security.istio.io
  verbs: [create, update, patch, delete]
- level: None
`

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Errors only: the manager is chatty, and t.Log is not available here.
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	var err error
	if repoRoot, err = findRepoRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	assets, err := binaryAssets()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	crds, err := testcrds.Istio(repoRoot)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: Istio CRDs: %v\n", err)
		return 1
	}
	reports, err := testcrds.Reports(repoRoot, filepath.Join(repoRoot, "test", "integration", "testdata", "wgpolicyk8s.io_policyreports.yaml"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: report CRDs: %v\n", err)
		return 1
	}
	crds = append(crds, reports...)
	tmp, err := os.MkdirTemp("", "mtlsguard-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	policyFile := filepath.Join(tmp, "audit-policy.yaml")
	auditLog = filepath.Join(tmp, "audit.log")
	if err := os.WriteFile(policyFile, []byte(auditPolicy), 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	// The webhook's address is fixed before the API server starts, so that
	// its webhook kubeconfig can name it (webhookClientCertificate).
	port, err := freeLocalPort()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	admissionConfig, err := webhookClientCertificate(tmp, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: webhook client certificate: %v\n", err)
		return 1
	}
	env = &envtest.Environment{
		// A loaded CI machine can take well over envtest\'s 20 s default
		// to start kube-apiserver.
		ControlPlaneStartTimeout: 3 * time.Minute,
		BinaryAssetsDirectory:    assets,
		CRDs:                     crds,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			LocalServingHost:   "127.0.0.1",
			LocalServingPort:   port,
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{webhookConfiguration()},
		},
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policyFile).
		Set("audit-log-path", auditLog).
		Set("admission-control-config-file", admissionConfig)
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: start the control plane from %s: %v\n", assets, err)
		return 1
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: stop the control plane: %v\n", err)
	}
	return code
}

func freeLocalPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// binaryAssets returns the directory holding kube-apiserver, etcd and
// kubectl: $KUBEBUILDER_ASSETS (relative to the repository root), else
// bin/. A missing binary is an error, never a skip.
func binaryAssets() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = "bin"
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repoRoot, dir)
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s/%s is missing: run make bin (it builds kube-apiserver, etcd and kubectl from source)", dir, b)
		}
	}
	return dir, nil
}

// findRepoRoot walks up from the package directory to the module's go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/mtlsguard/mtlsguard\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/mtlsguard/mtlsguard above the test directory")
		}
		dir = parent
	}
}

// webhookConfiguration is manifests/base/webhook.yaml with
// failurePolicy Fail (manifests/overlays/fail-closed) and a longer timeout:
// with Ignore, a webhook that is down would look like one that allows.
// TestWebhookConfigurationMatchesManifests keeps the two in step.
func webhookConfiguration() *admissionregistrationv1.ValidatingWebhookConfiguration {
	hook := func(name, group, resource, path string, versions ...string) admissionregistrationv1.ValidatingWebhook {
		fail := admissionregistrationv1.Fail
		equivalent := admissionregistrationv1.Equivalent
		none := admissionregistrationv1.SideEffectClassNone
		scope := admissionregistrationv1.NamespacedScope
		timeout := int32(10)
		port := int32(443)
		return admissionregistrationv1.ValidatingWebhook{
			Name: name,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Name: "mtlsguard", Namespace: "mtlsguard-system", Path: &path, Port: &port},
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{group}, APIVersions: versions, Resources: []string{resource}, Scope: &scope,
				},
			}},
			MatchPolicy: &equivalent,
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "mtlsguard-system"},
			}}},
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          &timeout,
			FailurePolicy:           &fail,
		}
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mtlsguard"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			hook("destinationrules.mtlsguard.io", "networking.istio.io", "destinationrules", "/validate/destinationrules", "v1", "v1beta1", "v1alpha3"),
			hook("peerauthentications.mtlsguard.io", "security.istio.io", "peerauthentications", "/validate/peerauthentications", "v1", "v1beta1"),
			hook("serviceentries.mtlsguard.io", "networking.istio.io", "serviceentries", "/validate/serviceentries", "v1", "v1beta1", "v1alpha3"),
			hook("workloadentries.mtlsguard.io", "networking.istio.io", "workloadentries", "/validate/workloadentries", "v1", "v1beta1", "v1alpha3"),
			hook("sidecars.mtlsguard.io", "networking.istio.io", "sidecars", "/validate/sidecars", "v1", "v1beta1", "v1alpha3"),
		},
	}
}
