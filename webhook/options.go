package webhook

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mtlsguard/mtlsguard/audit"
	"github.com/mtlsguard/mtlsguard/policy"
)

// Mode is what the webhook does with a write that creates new conflicts.
type Mode string

const (
	// Enforce denies the write.
	Enforce Mode = "enforce"
	// Audit admits the write with one warning per new conflict and audit
	// annotations.
	Audit Mode = "audit"
	// Off admits every write unchecked. Only the namespace label can set it.
	Off Mode = "off"
)

// ModeLabel on a namespace overrides the default mode for writes of
// DestinationRules and PeerAuthentications in that namespace.
const ModeLabel = "mtlsguard.io/mode"

// Unsynced is what the webhook answers before every informer has synced.
type Unsynced string

const (
	// UnsyncedAllow admits the write unchecked, with a warning.
	UnsyncedAllow Unsynced = "allow"
	// UnsyncedDeny rejects the write with 503 Service Unavailable.
	UnsyncedDeny Unsynced = "deny"
)

// OnTimeout is what the webhook answers when a decision is not finished
// by the decision timeout.
type OnTimeout string

const (
	// OnTimeoutAllow admits the write unchecked, with a warning that says
	// how to check it later.
	OnTimeoutAllow OnTimeout = "allow"
	// OnTimeoutDeny rejects the write with 503 Service Unavailable, in
	// enforce mode; audit mode never rejects a write.
	OnTimeoutDeny OnTimeout = "deny"
)

// Disclose is what a denial or a warning names.
type Disclose string

const (
	// DisclosePermitted names only the namespaces, services and policies
	// the requester may get (SubjectAccessReview); the others are counted.
	DisclosePermitted Disclose = "permitted"
	// DiscloseAll names everything, as tls-check does for a cluster admin.
	DiscloseAll Disclose = "all"
)

// Options configures the webhook. DefaultOptions returns the defaults; a
// zero string or port is also defaulted, by Options.Validate.
type Options struct {
	// Host is the address the webhook server listens on. Defaults to "", all
	// addresses.
	Host string
	// Port is the webhook server's port. Defaults to 9443.
	Port int
	// CertDir holds the serving certificate, tls.crt and tls.key. Changes to
	// the files are picked up without a restart. Defaults to
	// controller-runtime's <temp-dir>/k8s-webhook-server/serving-certs.
	CertDir string
	// HealthProbeBindAddress serves /healthz and /readyz. Defaults to
	// ":8081"; "0" turns it off.
	HealthProbeBindAddress string
	// MetricsBindAddress serves Prometheus /metrics over HTTP. Defaults to
	// ":8080"; "0" turns it off.
	MetricsBindAddress string
	// PprofBindAddress serves Go's /debug/pprof profiles over HTTP, to find
	// where a slow decision spends its time. Off ("" or "0") by default:
	// profiles show the cluster's names.
	PprofBindAddress string
	// DefaultMode is the mode of namespaces without a valid ModeLabel:
	// Enforce or Audit. Defaults to Enforce.
	DefaultMode Mode
	// Unsynced is the answer to a request that arrives before every
	// informer has synced. Defaults to UnsyncedAllow.
	Unsynced Unsynced
	// DecisionTimeout bounds the time from a request's arrival to its
	// answer; a decision not finished by then is abandoned and answered
	// per OnTimeout. Keep it below the webhook configuration's
	// timeoutSeconds, so that mtlsguard answers before the API server gives
	// up and applies its failurePolicy. Defaults to 2s.
	DecisionTimeout time.Duration
	// OnTimeout is the answer to a decision past DecisionTimeout. Defaults
	// to OnTimeoutAllow.
	OnTimeout OnTimeout
	// RootNamespace is Istio's root namespace: mesh-wide policies and the
	// istio ConfigMap live there. Defaults to istio-system. The ConfigMap's
	// rootNamespace, when set, wins over it.
	RootNamespace string
	// AutoMTLS is MeshConfig.enableAutoMtls unless the istio ConfigMap sets
	// it. DefaultOptions sets it to true, Istio's default.
	AutoMTLS bool
	// ClusterDomain is the DNS suffix of services. Defaults to cluster.local.
	ClusterDomain string
	// ClientCAFile, when set, is a PEM bundle of the CAs whose client
	// certificates the webhook server requires: the API server's
	// (AdmissionConfiguration). Read at start.
	ClientCAFile string
	// ShutdownDelay is how long the webhook server reports unready and
	// serves on after the process is told to stop, so that the API server
	// sends to the other replicas before this one closes. Defaults to 5s.
	ShutdownDelay time.Duration
	// Disclose is what a denial or warning names: DiscloseAll, or
	// DisclosePermitted (only what the requester may read). Defaults to
	// DisclosePermitted.
	Disclose Disclose
	// Audit configures the background audit and its leader election.
	Audit audit.Options

	// limits, set only by this package's tests, replaces the webhook
	// server's timeouts and body limit.
	limits *serverLimits

	// slow, set only by this module's tests (see seam.go), makes every
	// decision slow. A pointer keeps Options comparable.
	slow *slowEngine
}

// DefaultOptions returns the options the mtlsguard command starts from.
func DefaultOptions() Options {
	m := policy.DefaultMesh()
	return Options{
		Port:                   9443,
		HealthProbeBindAddress: ":8081",
		MetricsBindAddress:     ":8080",
		DefaultMode:            Enforce,
		Unsynced:               UnsyncedAllow,
		DecisionTimeout:        2 * time.Second,
		OnTimeout:              OnTimeoutAllow,
		ShutdownDelay:          5 * time.Second,
		Disclose:               DisclosePermitted,
		RootNamespace:          m.RootNamespace,
		AutoMTLS:               m.AutoMTLS,
		ClusterDomain:          m.ClusterDomain,
		Audit:                  audit.DefaultOptions(),
	}
}

// AddFlags binds the options to command-line flags, with the values in o
// as defaults.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Host, "webhook-host", o.Host, `address the webhook server listens on ("" = all addresses)`)
	fs.IntVar(&o.Port, "webhook-port", o.Port, "port of the webhook server (HTTPS, TLS 1.2 or later, HTTP/1.1 only)")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory with the serving certificate tls.crt and key tls.key; reloaded when the files change (default: <temp-dir>/k8s-webhook-server/serving-certs)")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, `address of /healthz and /readyz (ready once every informer has synced); "0" disables`)
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, `address of the Prometheus /metrics endpoint (HTTP); "0" disables`)
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", o.PprofBindAddress, `address of Go's /debug/pprof profiles (HTTP, unauthenticated: bind it to 127.0.0.1 and port-forward); "" or "0" disables`)
	fs.Var(&enumFlag[Mode]{&o.DefaultMode, []Mode{Enforce, Audit}}, "default-mode", "what to do with a write that creates new mTLS conflicts: enforce (deny) or audit (admit with warnings); the namespace label "+ModeLabel+" (enforce, audit, off) overrides it")
	fs.Var(&enumFlag[Unsynced]{&o.Unsynced, []Unsynced{UnsyncedAllow, UnsyncedDeny}}, "unsynced", "answer to requests that arrive before the cache has synced: allow (unchecked, with a warning) or deny (503)")
	fs.Var((*positiveDuration)(&o.DecisionTimeout), "decision-timeout", "time to answer a request; a decision not finished by then is answered by --on-timeout (keep below the webhook's timeoutSeconds)")
	fs.Var(&enumFlag[OnTimeout]{&o.OnTimeout, []OnTimeout{OnTimeoutAllow, OnTimeoutDeny}}, "on-timeout", "answer to a decision past --decision-timeout: allow (unchecked, with a warning) or deny (503; audit-mode namespaces are still admitted)")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "PEM file of the CAs whose client certificate the webhook server requires (the API server's, see README); empty: no client certificate asked")
	fs.Var((*positiveDuration)(&o.ShutdownDelay), "shutdown-delay", "on SIGTERM, how long the webhook server reports unready and keeps serving before it stops accepting requests")
	fs.Var(&enumFlag[Disclose]{&o.Disclose, []Disclose{DisclosePermitted, DiscloseAll}}, "disclose", "what a denial or warning names: permitted (only the namespaces, services and policies the requester may get; the rest are counted) or all")
	fs.StringVar(&o.RootNamespace, "root-namespace", o.RootNamespace, "Istio's root namespace (mesh-wide policies and the istio ConfigMap); the ConfigMap's rootNamespace wins")
	fs.BoolVar(&o.AutoMTLS, "auto-mtls", o.AutoMTLS, "Istio's enableAutoMtls, unless the istio ConfigMap sets it")
	fs.StringVar(&o.ClusterDomain, "cluster-domain", o.ClusterDomain, "DNS domain of services")
	o.Audit.AddFlags(fs)
}

// Validate fills in zero values with defaults and rejects invalid options.
func (o *Options) Validate() error {
	d := DefaultOptions()
	if o.Port == 0 {
		o.Port = d.Port
	}
	if o.HealthProbeBindAddress == "" {
		o.HealthProbeBindAddress = d.HealthProbeBindAddress
	}
	if o.MetricsBindAddress == "" {
		o.MetricsBindAddress = d.MetricsBindAddress
	}
	if o.DefaultMode == "" {
		o.DefaultMode = d.DefaultMode
	}
	if o.Unsynced == "" {
		o.Unsynced = d.Unsynced
	}
	if o.DecisionTimeout == 0 {
		o.DecisionTimeout = d.DecisionTimeout
	}
	if o.OnTimeout == "" {
		o.OnTimeout = d.OnTimeout
	}
	if o.ShutdownDelay == 0 {
		o.ShutdownDelay = d.ShutdownDelay
	}
	if o.Disclose == "" {
		o.Disclose = d.Disclose
	}
	if o.RootNamespace == "" {
		o.RootNamespace = d.RootNamespace
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = d.ClusterDomain
	}
	switch {
	case o.Port < 1 || o.Port > 65535:
		return fmt.Errorf("webhook port %d: must be between 1 and 65535", o.Port)
	case o.DefaultMode != Enforce && o.DefaultMode != Audit:
		return fmt.Errorf("default mode %q: must be enforce or audit", o.DefaultMode)
	case o.Unsynced != UnsyncedAllow && o.Unsynced != UnsyncedDeny:
		return fmt.Errorf("unsynced %q: must be allow or deny", o.Unsynced)
	case o.DecisionTimeout < 0:
		return fmt.Errorf("decision timeout %v: must be positive", o.DecisionTimeout)
	case o.OnTimeout != OnTimeoutAllow && o.OnTimeout != OnTimeoutDeny:
		return fmt.Errorf("on timeout %q: must be allow or deny", o.OnTimeout)
	case o.ShutdownDelay < 0:
		return fmt.Errorf("shutdown delay %v: must be positive", o.ShutdownDelay)
	case o.Disclose != DisclosePermitted && o.Disclose != DiscloseAll:
		return fmt.Errorf("disclose %q: must be permitted or all", o.Disclose)
	}
	return o.Audit.Validate()
}

// mesh returns the mesh settings the flags describe, before the istio
// ConfigMap is read.
func (o *Options) mesh() policy.Mesh {
	m := policy.DefaultMesh()
	m.RootNamespace, m.AutoMTLS, m.ClusterDomain = o.RootNamespace, o.AutoMTLS, o.ClusterDomain
	return m
}

// enumFlag parses a flag that takes one of a few words, such as
// --default-mode (enforce, audit) and --unsynced (allow, deny).
type enumFlag[T ~string] struct {
	value   *T
	allowed []T
}

func (f *enumFlag[T]) String() string {
	if f.value == nil {
		return ""
	}
	return string(*f.value)
}

func (f *enumFlag[T]) Set(s string) error {
	if !slices.Contains(f.allowed, T(s)) {
		return fmt.Errorf("must be %s", f.words(" or "))
	}
	*f.value = T(s)
	return nil
}

func (f *enumFlag[T]) Type() string { return f.words("|") }

func (f *enumFlag[T]) words(sep string) string {
	w := make([]string, len(f.allowed))
	for i, a := range f.allowed {
		w[i] = string(a)
	}
	return strings.Join(w, sep)
}

// positiveDuration parses a flag that takes a duration above zero, such as
// --decision-timeout: 0 would not mean "no limit", so it is refused rather
// than defaulted.
type positiveDuration time.Duration

func (d *positiveDuration) String() string { return time.Duration(*d).String() }

func (d *positiveDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration such as 2s or 500ms")
	}
	if v <= 0 {
		return fmt.Errorf("must be above zero")
	}
	*d = positiveDuration(v)
	return nil
}

func (d *positiveDuration) Type() string { return "duration" }
