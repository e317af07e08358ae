package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	mtlsscheme "github.com/mtlsguard/mtlsguard/internal/scheme"
	"github.com/mtlsguard/mtlsguard/policy"
)

// servedVersions are the versions of the Istio kinds the webhook can read,
// most preferred first.
var servedVersions = map[schema.GroupKind][]string{
	destinationRules.gk:    {"v1", "v1beta1", "v1alpha3"},
	peerAuthentications.gk: {"v1", "v1beta1"},
	serviceEntries.gk:      {"v1", "v1beta1", "v1alpha3"},
	workloadEntries.gk:     {"v1", "v1beta1", "v1alpha3"},
	sidecars.gk:            {"v1", "v1beta1", "v1alpha3"},
}

// Run builds the manager and runs it until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	mgr, err := New(ctx, cfg, o)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// New builds the mtlsguard manager: an informer cache that keeps a Store
// current, the admission webhooks on a TLS server, health probes and
// metrics. It reads the API server's discovery to pick the version of the
// Istio kinds to watch, so Istio's CRDs must be installed.
//
// The cache watches one version of each Istio kind: every served version of
// a CRD shows the same objects, so a second informer would only double the
// memory and the events. It prefers v1, then the older versions for clusters
// whose Istio does not serve v1 yet. Admission requests are read in every
// version.
func New(ctx context.Context, cfg *rest.Config, o Options) (manager.Manager, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	store, err := NewStore(o.mesh())
	if err != nil {
		return nil, err
	}
	tlsOpts := []func(*tls.Config){secureTLS}
	// Closed when the manager begins to stop: the webhook server drains.
	drain := make(chan struct{})
	access, err := newAccessReviewer(cfg, o)
	if err != nil {
		return nil, err
	}
	scheme := mtlsscheme.New()
	mgr, err := manager.New(cfg, manager.Options{
		Scheme: scheme,
		Cache: cache.Options{
			// The Istio kinds are watched unstructured and decoded here,
			// one object at a time (decode.go).
			DefaultTransform: chain(decodeTyped(scheme), stripMeta),
			NewInformer:      store.newInformer(logf.Log.WithName("mtlsguard").WithName("state")),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}: {Transform: StripPod},
				// Only the istio ConfigMap of the root namespace.
				&corev1.ConfigMap{}: {
					Namespaces: map[string]cache.Config{o.RootNamespace: {}},
					Field:      fields.OneTermEqualSelector("metadata.name", policy.MeshConfigMapName),
				},
			},
		},
		WebhookServer:          newServer(o, drain),
		Metrics:                metricsserver.Options{BindAddress: o.MetricsBindAddress, TLSOpts: tlsOpts},
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		PprofBindAddress:       o.PprofBindAddress,
		// Every replica answers admission requests from its own cache; the
		// leader alone runs the audit (reports, events).
		LeaderElection:                o.Audit.LeaderElect,
		LeaderElectionID:              "mtlsguard-audit",
		LeaderElectionNamespace:       o.Audit.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := watch(ctx, mgr, store); err != nil {
		return nil, err
	}
	// Runnables that need no leader stop first, before the webhook server.
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		<-ctx.Done()
		close(drain)
		return nil
	})); err != nil {
		return nil, err
	}
	if err := addAudit(mgr, store, o); err != nil {
		return nil, err
	}
	if err := Register(mgr.GetWebhookServer(), store, o, access); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("informers-synced", store.ReadyCheck); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook-server", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, err
	}
	return mgr, nil
}

// Register serves the admission webhooks from store on srv, at
// /validate/destinationrules, /validate/peerauthentications,
// /validate/serviceentries, /validate/workloadentries and /validate/sidecars.
// access answers what a requester may read, for --disclose=permitted; nil
// names nothing a requester may not have written themselves.
func Register(srv ctrlwebhook.Server, store *Store, o Options, access AccessReviewer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, k := range kinds {
		v := newValidator(k, store, o)
		v.access = access
		srv.Register(k.path, &admission.Webhook{Handler: v})
	}
	return nil
}

// watch registers the informers that feed the store, and marks the store
// synced once every one of them has delivered its initial list.
func watch(ctx context.Context, mgr manager.Manager, store *Store) error {
	objs := []client.Object{&corev1.Namespace{}, &corev1.Service{}, &corev1.Pod{}, &corev1.ConfigMap{}}
	for _, k := range kinds {
		obj, err := servedObject(mgr.GetRESTMapper(), mgr.GetScheme(), k.gk)
		if err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	log := logf.Log.WithName("mtlsguard").WithName("state")
	var synced []toolscache.InformerSynced
	for _, obj := range objs {
		inf, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("informer for %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(store.eventHandler(log))
		if err != nil {
			return fmt.Errorf("event handler for %T: %w", obj, err)
		}
		synced = append(synced, reg.HasSynced)
	}
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		if toolscache.WaitForCacheSync(ctx.Done(), synced...) {
			store.markSynced()
			log.Info("informers synced")
		}
		return nil
	}))
}

// servedObject returns an empty unstructured object of the first version
// of gk, in servedVersions order, that the API server serves and the scheme
// has a type for: the cache decodes each object into that type (decode.go).
func servedObject(mapper meta.RESTMapper, scheme *runtime.Scheme, gk schema.GroupKind) (client.Object, error) {
	var errs []error
	for _, v := range servedVersions[gk] {
		m, err := mapper.RESTMapping(gk, v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !scheme.Recognizes(m.GroupVersionKind) {
			return nil, fmt.Errorf("%s: served, but not in the scheme", m.GroupVersionKind)
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(m.GroupVersionKind)
		return u, nil
	}
	return nil, fmt.Errorf("%s: the API server serves none of %v (are Istio's CRDs installed?): %w",
		gk, servedVersions[gk], errors.Join(errs...))
}

// secureTLS sets TLS 1.2 as the minimum and turns HTTP/2 off (the HTTP/2
// Rapid Reset and stream-cancellation attacks, CVE-2023-44487 and
// CVE-2023-39325): the API server calls webhooks over HTTP/1.1 just as well.
func secureTLS(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = []string{"http/1.1"}
}
