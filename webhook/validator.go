package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/mtlsguard/mtlsguard/internal/load"
	mtlsscheme "github.com/mtlsguard/mtlsguard/internal/scheme"
	"github.com/mtlsguard/mtlsguard/policy"
)

// kind is a kind the webhook checks, and where it is served.
type kind struct {
	gk       schema.GroupKind
	resource string
	path     string
}

var (
	destinationRules = kind{
		gk:       schema.GroupKind{Group: networkingv1.SchemeGroupVersion.Group, Kind: "DestinationRule"},
		resource: "destinationrules",
		path:     "/validate/destinationrules",
	}
	peerAuthentications = kind{
		gk:       schema.GroupKind{Group: securityv1.SchemeGroupVersion.Group, Kind: "PeerAuthentication"},
		resource: "peerauthentications",
		path:     "/validate/peerauthentications",
	}
	// ServiceEntries and WorkloadEntries make services and endpoints;
	// Sidecars decide which services a client has clusters for.
	serviceEntries = kind{
		gk:       schema.GroupKind{Group: networkingv1.SchemeGroupVersion.Group, Kind: "ServiceEntry"},
		resource: "serviceentries",
		path:     "/validate/serviceentries",
	}
	workloadEntries = kind{
		gk:       schema.GroupKind{Group: networkingv1.SchemeGroupVersion.Group, Kind: "WorkloadEntry"},
		resource: "workloadentries",
		path:     "/validate/workloadentries",
	}
	sidecars = kind{
		gk:       schema.GroupKind{Group: networkingv1.SchemeGroupVersion.Group, Kind: "Sidecar"},
		resource: "sidecars",
		path:     "/validate/sidecars",
	}
)

// kinds are the kinds the webhook checks.
var kinds = []kind{destinationRules, peerAuthentications, serviceEntries, workloadEntries, sidecars}

// validator answers admission requests for the writes of one kind, in every
// served version, from a Store.
type validator struct {
	kind      kind
	store     *Store
	mode      Mode
	unsynced  Unsynced
	timeout   time.Duration
	onTimeout OnTimeout
	decide    decideFunc
	// disclose and access decide what a response names (disclosure.go).
	disclose Disclose
	access   AccessReviewer
	decoder  runtime.Decoder
	now      func() time.Time
}

// decideFunc asks the engine which conflicts a change creates. It should
// stop when ctx is done, but the validator does not count on it.
type decideFunc func(ctx context.Context, ch policy.Change) (verdict, error)

var _ admission.Handler = &validator{}

func newValidator(k kind, store *Store, o Options) *validator {
	v := &validator{
		kind:      k,
		store:     store,
		mode:      o.DefaultMode,
		unsynced:  o.Unsynced,
		timeout:   o.DecisionTimeout,
		onTimeout: o.OnTimeout,
		decide:    store.decide,
		disclose:  o.Disclose,
		decoder:   serializer.NewCodecFactory(mtlsscheme.New()).UniversalDeserializer(),
		now:       time.Now,
	}
	if o.slow != nil {
		v.decide = o.slow.wrap(v.decide)
	}
	return v
}

// Handle answers one admission request, within the decision timeout, and
// records its metrics.
func (v *validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	reach := reachNone
	resp, mode, result := v.handle(ctx, req, &reach)
	observe(v.kind.gk.Kind, string(req.Operation), mode, req.DryRun != nil && *req.DryRun, result, reach, time.Since(start))
	switch result {
	case resultError, resultInvalid:
		logf.FromContext(ctx).Info("request rejected", "result", result, "message", resp.Result.Message)
	case resultTimeout:
		logf.FromContext(ctx).Info("decision abandoned at the deadline", "timeout", v.timeout,
			"onTimeout", v.onTimeout, "mode", mode, "allowed", resp.Allowed)
	}
	return resp
}

// handle decides before ctx is done; it returns the response, and the mode
// and result labels of the metrics, and sets the reach label once it has
// read the objects.
func (v *validator) handle(ctx context.Context, req admission.Request, reach *string) (admission.Response, string, string) {
	if req.Kind.Group != v.kind.gk.Group || req.Kind.Kind != v.kind.gk.Kind || req.SubResource != "" {
		// A webhook configuration that sends us something else: never block it.
		return allowed(), modeNone, resultAllowed
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete:
	default:
		return allowed(), modeNone, resultAllowed
	}
	o := object{kind: v.kind, namespace: req.Namespace, name: req.Name, operation: req.Operation}
	if !v.store.Synced() {
		result := resultUnsyncedAllowed
		if v.unsynced == UnsyncedDeny {
			result = resultUnsyncedDenied
		}
		return unsynced(v.unsynced), modeNone, result
	}

	ns := v.store.namespace(req.Namespace)
	mode, warning := resolveMode(ns, v.mode)
	var warnings []string
	if warning != "" {
		warnings = append(warnings, warning)
	}
	if mode == Off {
		return allowed(warnings...), string(mode), resultAllowed
	}
	if req.Operation == admissionv1.Delete && ns.terminating {
		// The namespace controller is emptying the namespace: blocking it
		// would leave the namespace Terminating forever.
		return allowed(warnings...), string(mode), resultAllowed
	}

	ch, err := v.change(req, &o)
	if err != nil {
		if mode == Audit {
			// Audit mode never blocks a write, not even one it cannot read
			// (say, a mode of a newer Istio); it says so instead.
			return allowed(append(warnings, uncheckedWarning(err))...), string(mode), resultInvalid
		}
		return badRequest(err), string(mode), resultInvalid
	}
	if ch.Old == nil && ch.New == nil {
		return allowed(warnings...), string(mode), resultAllowed
	}
	*reach = string(v.store.reach(ch))
	verdict, err := v.decideBy(ctx, ch)
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return timedOut(o, v.timeout, v.onTimeout == OnTimeoutDeny && mode == Enforce, warnings), string(mode), resultTimeout
	case err != nil:
		return errored(o, err), string(mode), resultError
	}
	if verdict.total == 0 {
		return allowed(warnings...), string(mode), resultAllowed
	}
	shown := v.shown(ctx, req, verdict)
	if mode == Audit {
		return audited(shown, verdict.capped(), warnings, v.store.clusterDomain()), string(mode), resultWarned
	}
	return forbidden(o, shown, verdict.capped(), warnings), string(mode), resultDenied
}

// shown is the verdict as the requester may see it (--disclose).
func (v *validator) shown(ctx context.Context, req admission.Request, full verdict) verdict {
	if v.disclose == DiscloseAll {
		return full.capped()
	}
	d := disclosure{access: v.access, user: req.UserInfo, namespace: req.Namespace, object: req.Name, domain: v.store.clusterDomain()}
	return d.filter(ctx, full)
}

// decideBy runs the decision and returns by the time ctx is done, with
// ctx's error if the decision has not finished. The engine checks ctx only
// between services, so a large service could keep it past the deadline:
// it runs on, abandoned, until its next check.
func (v *validator) decideBy(ctx context.Context, ch policy.Change) (verdict, error) {
	type answer struct {
		verdict verdict
		err     error
	}
	done := make(chan answer, 1) // an abandoned decision never blocks on it
	go func() {
		defer func() {
			// The handler's goroutine recovers a panic; this one must,
			// or a bug in the engine would stop the process.
			if r := recover(); r != nil {
				done <- answer{err: fmt.Errorf("engine panic: %v", r)}
			}
		}()
		v.store.decisions.begin()
		defer v.store.decisions.end()
		vd, err := v.decide(ctx, ch)
		done <- answer{vd, err}
	}()
	select {
	case a := <-done:
		return a.verdict, a.err
	case <-ctx.Done():
		select {
		case a := <-done: // finished in time after all
			return a.verdict, a.err
		default:
			return verdict{}, fmt.Errorf("decision not finished: %w", ctx.Err())
		}
	}
}

// resolveMode returns the mode of writes in a namespace, and a warning when
// its ModeLabel has a value it does not know.
func resolveMode(ns namespaceInfo, def Mode) (Mode, string) {
	if !ns.hasMode {
		return def, ""
	}
	switch m := Mode(ns.mode); m {
	case Enforce, Audit, Off:
		return m, ""
	}
	return def, modeWarning(ns.mode, def)
}

// change decodes the request into the engine's Change. A new object that
// does not decode or that the engine cannot read is an error. An old one is
// left out instead, as the engine's state left it out: deleting or
// repairing it is never blocked. Objects that are not the one the request
// names are an error: the API server never sends them, and the decision
// would be about another object than the write. A write that changes no
// spec is no change.
func (v *validator) change(req admission.Request, o *object) (policy.Change, error) {
	var stored, old, upd runtime.Object
	if req.Operation != admissionv1.Create {
		if obj, err := v.decode(req.OldObject); err == nil {
			if err := sameIdentity(req, "oldObject", obj); err != nil {
				return policy.Change{}, fmt.Errorf("%s: %w", o, err)
			}
			stored = obj
			if readable(obj) == nil {
				old = obj
			}
		}
	}
	if req.Operation != admissionv1.Delete {
		var err error
		if upd, err = v.decode(req.Object); err != nil {
			return policy.Change{}, fmt.Errorf("%s: object: %w", o, err)
		}
		if err := sameIdentity(req, "object", upd); err != nil {
			return policy.Change{}, fmt.Errorf("%s: %w", o, err)
		}
		meta := upd.(metav1.Object) // decode returns the engine's types
		o.namespace, o.name = meta.GetNamespace(), meta.GetName()
		if stored != nil && sameSpec(stored, upd) {
			// Metadata only: labels, annotations, finalizers.
			return policy.Change{}, nil
		}
		if meta.GetCreationTimestamp().Time.IsZero() {
			// Istio's oldest-wins rules read it: a write not yet stored is
			// the newest, unless it replaces an object that has one.
			t := metav1.NewTime(v.now())
			if old, ok := old.(metav1.Object); ok && !old.GetCreationTimestamp().Time.IsZero() {
				t = old.GetCreationTimestamp()
			}
			meta.SetCreationTimestamp(t)
		}
		if err := readable(upd); err != nil {
			return policy.Change{}, err
		}
	}
	return policy.Change{Old: old, New: upd}, nil
}

// sameIdentity checks that an object of the request (field names it) is
// the object the request names. The request's name is empty for a create
// with generateName.
func sameIdentity(req admission.Request, field string, obj runtime.Object) error {
	meta := obj.(metav1.Object)
	if meta.GetNamespace() != req.Namespace {
		return fmt.Errorf("%s: metadata.namespace %q is not the request's namespace %q", field, meta.GetNamespace(), req.Namespace)
	}
	if req.Name != "" && meta.GetName() != req.Name {
		return fmt.Errorf("%s: metadata.name %q is not the request's name %q", field, meta.GetName(), req.Name)
	}
	return nil
}

// decode reads an object of the validator's kind, in any served version,
// and converts it to the version the engine reads.
func (v *validator) decode(raw runtime.RawExtension) (runtime.Object, error) {
	if len(raw.Raw) == 0 {
		return nil, fmt.Errorf("missing")
	}
	obj, gvk, err := v.decoder.Decode(raw.Raw, nil, nil)
	if err != nil {
		return nil, load.DescribeDecodeError(v.kind.gk.Kind, err, raw.Raw)
	}
	if gvk.GroupKind() != v.kind.gk {
		return nil, fmt.Errorf("got %s, want %s", gvk.GroupKind(), v.kind.gk)
	}
	return policy.Normalize(obj)
}

// readable asks the engine whether it can read obj. Its error names the
// object and the field, e.g. "DestinationRule default/r:
// spec.trafficPolicy.tls.mode: unknown mode 9".
func readable(obj runtime.Object) error {
	var s policy.Snapshot
	switch o := obj.(type) {
	case *networkingv1.DestinationRule:
		s.DestinationRules = []*networkingv1.DestinationRule{o}
	case *securityv1.PeerAuthentication:
		s.PeerAuthentications = []*securityv1.PeerAuthentication{o}
	case *networkingv1.ServiceEntry:
		s.ServiceEntries = []*networkingv1.ServiceEntry{o}
	case *networkingv1.WorkloadEntry:
		s.WorkloadEntries = []*networkingv1.WorkloadEntry{o}
	case *networkingv1.Sidecar:
		s.Sidecars = []*networkingv1.Sidecar{o}
	default:
		return fmt.Errorf("unexpected %T", obj)
	}
	_, err := policy.NewState(s)
	return err
}

// sameSpec reports whether two versions of an object have the same spec:
// the engine reads nothing else that can change (but a WorkloadEntry's
// labels).
func sameSpec(a, b runtime.Object) bool {
	switch a := a.(type) {
	case *networkingv1.DestinationRule:
		b, ok := b.(*networkingv1.DestinationRule)
		return ok && proto.Equal(&a.Spec, &b.Spec)
	case *securityv1.PeerAuthentication:
		b, ok := b.(*securityv1.PeerAuthentication)
		return ok && proto.Equal(&a.Spec, &b.Spec)
	case *networkingv1.ServiceEntry:
		b, ok := b.(*networkingv1.ServiceEntry)
		return ok && proto.Equal(&a.Spec, &b.Spec)
	case *networkingv1.Sidecar:
		b, ok := b.(*networkingv1.Sidecar)
		return ok && proto.Equal(&a.Spec, &b.Spec)
	case *networkingv1.WorkloadEntry:
		// The engine also reads a WorkloadEntry's metadata labels.
		b, ok := b.(*networkingv1.WorkloadEntry)
		return ok && proto.Equal(&a.Spec, &b.Spec) && maps.Equal(a.Labels, b.Labels)
	}
	return false
}
