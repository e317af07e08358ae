package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	"github.com/cert-manager/cert-manager/pkg/util"

	// Each controller package registers its constructor with
	// controllerpkg.Known() in init, and each issuer package registers its
	// issuer type, just as cert-manager's controller binary pulls them in.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// certManagerControllers are the controllers of cert-manager's controller
// binary that the Issuers and Certificates in manifests/certmanager need: the
// Issuer readiness loop, the approver (nothing is signed unapproved), the
// self-signed and CA signers, and the Certificate issuance pipeline
// (trigger -> key-manager -> request-manager -> issuing -> readiness).
var certManagerControllers = []string{
	"issuers",
	"certificaterequests-approver",
	"certificaterequests-issuer-selfsigned",
	"certificaterequests-issuer-ca",
	"certificates-trigger",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-issuing",
	"certificates-readiness",
}

// startCertManager runs cert-manager in this process until ctx is done: the
// controllers above, assembled as cmd/controller/app.Run assembles them, and
// the CA injector for ValidatingWebhookConfigurations, assembled as
// cmd/cainjector/app.Run does.
func startCertManager(ctx context.Context, t *testing.T, c *cluster) {
	t.Helper()
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig: c.kubeconfig,
		CertificateOptions: controllerpkg.CertificateOptions{
			// The controller binary's defaults.
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		t.Fatalf("cert-manager context: %v", err)
	}
	base, err := factory.Build()
	if err != nil {
		t.Fatalf("cert-manager context: %v", err)
	}
	for _, name := range certManagerControllers {
		newController, ok := controllerpkg.Known()[name]
		if !ok {
			t.Fatalf("cert-manager has no controller %q", name)
		}
		ctl, err := newController(factory)
		if err != nil {
			t.Fatalf("cert-manager controller %s: %v", name, err)
		}
		go func() {
			if err := ctl.Run(1, ctx); err != nil && ctx.Err() == nil {
				t.Errorf("cert-manager controller %s: %v", name, err)
			}
		}()
	}
	// Start the informers only now: the controllers registered theirs above.
	base.SharedInformerFactory.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())

	startCAInjector(ctx, t, rest.CopyConfig(c.cfg))
}

// startCAInjector runs cert-manager's cainjector for
// ValidatingWebhookConfigurations, sourcing CAs from Certificates (the
// cert-manager.io/inject-ca-from annotation).
func startCAInjector(ctx context.Context, t *testing.T, cfg *rest.Config) {
	t.Helper()
	skipNameValidation := true
	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(util.RestConfigWithUserAgent(cfg, "cainjector"), ctrl.Options{
		Scheme: scheme,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true},
		Client: client.Options{Cache: &client.CacheOptions{
			// As in cainjector: read Secrets live, cache only their metadata.
			DisableFor: []client.Object{&corev1.Secret{}},
		}},
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Each install test starts its own cainjector in this one process;
		// the names are unique per manager, not per process.
		Controller: config.Controller{SkipNameValidation: &skipNameValidation},
	})
	if err != nil {
		t.Fatalf("cainjector manager: %v", err)
	}
	err = cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.ValidatingWebhookConfigurationName: true,
		},
	})
	if err != nil {
		t.Fatalf("cainjector: %v", err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("cainjector: %v", err)
		}
	}()
}
