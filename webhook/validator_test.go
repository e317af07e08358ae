package webhook

import (
	"context"
	"net/http"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	networkingv1beta1 "istio.io/client-go/pkg/apis/networking/v1beta1"
	securityv1beta1 "istio.io/client-go/pkg/apis/security/v1beta1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

const badRuleDenial = `DestinationRule default/bad-rule would create 1 new mTLS conflict:
HOST:PORT                                  STATUS       SERVER     CLIENT     AUTHN POLICY             DESTINATION RULE     CLIENT NAMESPACES
httpbin.default.svc.cluster.local:8000     CONFLICT     mTLS       HTTP       default/istio-system     bad-rule/default     default`

const badRuleWarning = "httpbin.default:8000 CONFLICT server=mTLS client=HTTP authn=default/istio-system dr=bad-rule/default clients=default"

func TestResolveMode(t *testing.T) {
	scenarios := map[string]struct {
		ns      namespaceInfo
		def     Mode
		want    Mode
		warning string
	}{
		"no label, default enforce": {def: Enforce, want: Enforce},
		"no label, default audit":   {def: Audit, want: Audit},
		"label enforce":             {ns: namespaceInfo{mode: "enforce", hasMode: true}, def: Audit, want: Enforce},
		"label audit":               {ns: namespaceInfo{mode: "audit", hasMode: true}, def: Enforce, want: Audit},
		"label off":                 {ns: namespaceInfo{mode: "off", hasMode: true}, def: Enforce, want: Off},
		"label empty": {ns: namespaceInfo{mode: "", hasMode: true}, def: Audit, want: Audit,
			warning: `namespace label mtlsguard.io/mode="" is not enforce, audit or off; using audit`},
		"label unknown": {ns: namespaceInfo{mode: "Enforce", hasMode: true}, def: Enforce, want: Enforce,
			warning: `namespace label mtlsguard.io/mode="Enforce" is not enforce, audit or off; using enforce`},
		"label too long": {ns: namespaceInfo{mode: strings.Repeat("x", 63), hasMode: true}, def: Enforce, want: Enforce,
			warning: `namespace label mtlsguard.io/mode="` + strings.Repeat("x", 63) + `" is not enforce, ...`},
	}
	for name, s := range scenarios {
		t.Run(name, func(t *testing.T) {
			got, warning := resolveMode(s.ns, s.def)
			if got != s.want || warning != s.warning {
				t.Errorf("resolveMode = %q, %q; want %q, %q", got, warning, s.want, s.warning)
			}
			if len(warning) > maxWarning {
				t.Errorf("warning has %d characters", len(warning))
			}
		})
	}
}

func TestValidator(t *testing.T) {
	// legacy: a DISABLE rule for its services, shielded by a namespace-level
	// PERMISSIVE policy from the mesh's STRICT one.
	legacy := []runtime.Object{
		namespace("legacy", nil),
		service("legacy", "db", 80, 0),
		sidecarPod("legacy", "db-1", "db"),
		sidecarPod("legacy", "client-1", "client"),
		peerAuth("legacy", "permissive", securityapi.PeerAuthentication_MutualTLS_PERMISSIVE),
		destRule("legacy", "plaintext", "*.legacy.svc.cluster.local", networkingapi.ClientTLSSettings_DISABLE),
	}
	existingBadRule := badRule()
	existingBadRule.CreationTimestamp = created
	fixed := existingBadRule.DeepCopy()
	fixed.Spec.TrafficPolicy.Tls.Mode = networkingapi.ClientTLSSettings_ISTIO_MUTUAL
	relabelled := existingBadRule.DeepCopy()
	relabelled.Labels = map[string]string{"team": "a"}
	unknownMode := badRule()
	unknownMode.Spec.TrafficPolicy.Tls.Mode = 9

	type want struct {
		allowed  bool
		code     int32
		message  string // exact, or prefix when it ends in "..."
		warnings []string
		result   string
	}
	denied := want{code: http.StatusForbidden, message: badRuleDenial, result: resultDenied}
	warned := want{allowed: true, code: http.StatusOK, warnings: []string{badRuleWarning}, result: resultWarned}
	ok := want{allowed: true, code: http.StatusOK, result: resultAllowed}
	scenarios := map[string]struct {
		store   func(t *testing.T) *Store
		kind    kind
		options func(*Options)
		req     func(t *testing.T) admission.Request
		want    want
	}{
		"bad-rule denied": {
			req:  func(t *testing.T) admission.Request { return request(t, admissionv1.Create, badRule(), nil) },
			want: denied,
		},
		"bad-rule dry-run denied the same": {
			req: func(t *testing.T) admission.Request {
				r := request(t, admissionv1.Create, badRule(), nil)
				r.DryRun = new(bool)
				*r.DryRun = true
				return r
			},
			want: denied,
		},
		"bad-rule v1beta1 denied the same": {
			req: func(t *testing.T) admission.Request {
				b := badRule()
				o := &networkingv1beta1.DestinationRule{ObjectMeta: b.ObjectMeta}
				b.Spec.DeepCopyInto(&o.Spec)
				o.APIVersion, o.Kind = "networking.istio.io/v1beta1", "DestinationRule"
				return request(t, admissionv1.Create, o, nil)
			},
			want: denied,
		},
		"bad-rule v1alpha3 denied the same": {
			req: func(t *testing.T) admission.Request {
				b := badRule()
				o := &networkingv1alpha3.DestinationRule{ObjectMeta: b.ObjectMeta}
				b.Spec.DeepCopyInto(&o.Spec)
				o.APIVersion, o.Kind = "networking.istio.io/v1alpha3", "DestinationRule"
				return request(t, admissionv1.Create, o, nil)
			},
			want: denied,
		},
		"bad-rule with --default-mode=audit warned": {
			options: func(o *Options) { o.DefaultMode = Audit },
			req:     func(t *testing.T) admission.Request { return request(t, admissionv1.Create, badRule(), nil) },
			want:    warned,
		},
		"bad-rule in an audit namespace warned": {
			store: func(t *testing.T) *Store {
				return deepDive(t, namespace("default", map[string]string{"istio-injection": "enabled", ModeLabel: "audit"}))
			},
			req:  func(t *testing.T) admission.Request { return request(t, admissionv1.Create, badRule(), nil) },
			want: warned,
		},
		"bad-rule in an off namespace allowed": {
			store: func(t *testing.T) *Store {
				return deepDive(t, namespace("default", map[string]string{ModeLabel: "off"}))
			},
			req:  func(t *testing.T) admission.Request { return request(t, admissionv1.Create, badRule(), nil) },
			want: ok,
		},
		"unknown mode label: default mode, with a warning": {
			store: func(t *testing.T) *Store {
				return deepDive(t, namespace("default", map[string]string{"istio-injection": "enabled", ModeLabel: "strict"}))
			},
			req: func(t *testing.T) admission.Request { return request(t, admissionv1.Create, badRule(), nil) },
			want: want{code: http.StatusForbidden, message: badRuleDenial, result: resultDenied,
				warnings: []string{`namespace label mtlsguard.io/mode="strict" is not enforce, audit or off; using enforce`}},
		},
		"fixing bad-rule allowed": {
			store: func(t *testing.T) *Store { return deepDive(t, existingBadRule) },
			req:   func(t *testing.T) admission.Request { return request(t, admissionv1.Update, fixed, existingBadRule) },
			want:  ok,
		},
		"deleting bad-rule allowed": {
			store: func(t *testing.T) *Store { return deepDive(t, existingBadRule) },
			req:   func(t *testing.T) admission.Request { return request(t, admissionv1.Delete, nil, existingBadRule) },
			want:  ok,
		},
		"relabelling bad-rule allowed": {
			store: func(t *testing.T) *Store { return deepDive(t, existingBadRule) },
			req: func(t *testing.T) admission.Request {
				return request(t, admissionv1.Update, relabelled, existingBadRule)
			},
			want: ok,
		},
		"breaking an ISTIO_MUTUAL rule denied": {
			store: func(t *testing.T) *Store { return deepDive(t, fixed) },
			req:   func(t *testing.T) admission.Request { return request(t, admissionv1.Update, existingBadRule, fixed) },
			want: want{code: http.StatusForbidden, result: resultDenied,
				message: "DestinationRule default/bad-rule would create 1 new mTLS conflict:\n..."},
		},
		"unrelated rule allowed while bad-rule conflicts": {
			store: func(t *testing.T) *Store { return deepDive(t, existingBadRule, namespace("other", nil)) },
			req: func(t *testing.T) admission.Request {
				return request(t, admissionv1.Create, destRule("other", "sleep", "sleep.default.svc.cluster.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL), nil)
			},
			want: ok,
		},
		"deleting the PERMISSIVE policy that shields DISABLE clients denied": {
			store: func(t *testing.T) *Store { return deepDive(t, legacy...) },
			kind:  peerAuthentications,
			req: func(t *testing.T) admission.Request {
				return request(t, admissionv1.Delete, nil, peerAuth("legacy", "permissive", securityapi.PeerAuthentication_MutualTLS_PERMISSIVE))
			},
			want: want{code: http.StatusForbidden, result: resultDenied,
				message: "deleting PeerAuthentication legacy/permissive would create 1 new mTLS conflict:\n" +
					"HOST:PORT                          STATUS       SERVER     CLIENT     AUTHN POLICY             DESTINATION RULE     CLIENT NAMESPACES\n" +
					"db.legacy.svc.cluster.local:80     CONFLICT     mTLS       HTTP       default/istio-system     plaintext/legacy     default, legacy"},
		},
		"deleting it v1beta1 denied the same": {
			store: func(t *testing.T) *Store { return deepDive(t, legacy...) },
			kind:  peerAuthentications,
			req: func(t *testing.T) admission.Request {
				p := peerAuth("legacy", "permissive", securityapi.PeerAuthentication_MutualTLS_PERMISSIVE)
				o := &securityv1beta1.PeerAuthentication{ObjectMeta: p.ObjectMeta}
				p.Spec.DeepCopyInto(&o.Spec)
				o.APIVersion, o.Kind = "security.istio.io/v1beta1", "PeerAuthentication"
				return request(t, admissionv1.Delete, nil, o)
			},
			want: want{code: http.StatusForbidden, result: resultDenied,
				message: "deleting PeerAuthentication legacy/permissive would create 1 new mTLS conflict:\n..."},
		},
		"deleting it while the namespace terminates allowed": {
			store: func(t *testing.T) *Store {
				ns := namespace("legacy", nil)
				ns.Status.Phase = corev1.NamespaceTerminating
				return deepDive(t, append(legacy, ns)...)
			},
			kind: peerAuthentications,
			req: func(t *testing.T) admission.Request {
				return request(t, admissionv1.Delete, nil, peerAuth("legacy", "permissive", securityapi.PeerAuthentication_MutualTLS_PERMISSIVE))
			},
			want: ok,
		},
		"unknown TLS mode rejected as a bad request": {
			req: func(t *testing.T) admission.Request { return request(t, admissionv1.Create, unknownMode, nil) },
			want: want{code: http.StatusBadRequest, result: resultInvalid,
				message: "DestinationRule default/bad-rule: spec.trafficPolicy.tls.mode: unknown mode 9"},
		},
		"undecodable object rejected as a bad request": {
			req: func(t *testing.T) admission.Request {
				r := request(t, admissionv1.Create, badRule(), nil)
				r.Object.Raw = []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","spec":{"host":7}}`)
				return r
			},
			want: want{code: http.StatusBadRequest, result: resultInvalid, message: "DestinationRule default/bad-rule: object: ..."},
		},
		"deleting an unreadable rule allowed": {
			req:  func(t *testing.T) admission.Request { return request(t, admissionv1.Delete, nil, unknownMode) },
			want: ok,
		},
		"deleting an undecodable rule allowed": {
			req: func(t *testing.T) admission.Request {
				r := request(t, admissionv1.Delete, nil, badRule())
				r.OldObject.Raw = []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","spec":{"host":7}}`)
				return r
			},
			want: ok,
		},
		"relabelling an unreadable rule allowed": {
			req: func(t *testing.T) admission.Request {
				relabelled := unknownMode.DeepCopy()
				relabelled.Labels = map[string]string{"team": "a"}
				return request(t, admissionv1.Update, relabelled, unknownMode)
			},
			want: ok,
		},
		"repairing an unreadable rule judged as a create": {
			req: func(t *testing.T) admission.Request {
				repaired := existingBadRule.DeepCopy()
				return request(t, admissionv1.Update, repaired, unknownMode)
			},
			want: want{code: http.StatusForbidden, message: badRuleDenial, result: resultDenied},
		},
		"unsynced allowed with a warning": {
			store: func(t *testing.T) *Store { s := deepDive(t); s.synced.Store(false); return s },
			req:   func(t *testing.T) admission.Request { return request(t, admissionv1.Create, badRule(), nil) },
			want: want{allowed: true, code: http.StatusOK, result: resultUnsyncedAllowed,
				warnings: []string{"mtlsguard: cache not synced, not checked"}},
		},
		"unsynced denied": {
			store:   func(t *testing.T) *Store { s := deepDive(t); s.synced.Store(false); return s },
			options: func(o *Options) { o.Unsynced = UnsyncedDeny },
			req:     func(t *testing.T) admission.Request { return request(t, admissionv1.Create, badRule(), nil) },
			want: want{code: http.StatusServiceUnavailable, result: resultUnsyncedDenied,
				message: "mtlsguard: cache not synced, not checked"},
		},
		"another kind on the path allowed": {
			kind: peerAuthentications,
			req:  func(t *testing.T) admission.Request { return request(t, admissionv1.Create, badRule(), nil) },
			want: ok,
		},
	}
	for name, s := range scenarios {
		t.Run(name, func(t *testing.T) {
			store := func(t *testing.T) *Store { return deepDive(t) }
			if s.store != nil {
				store = s.store
			}
			k := s.kind
			if k.path == "" {
				k = destinationRules
			}
			var opts []func(*Options)
			if s.options != nil {
				opts = append(opts, s.options)
			}
			v := testValidator(t, k, store(t), opts...)
			reach := reachNone
			resp, _, result := v.handle(context.Background(), s.req(t), &reach)
			if resp.Allowed != s.want.allowed || result != s.want.result {
				t.Errorf("allowed = %v, result %q; want %v, %q", resp.Allowed, result, s.want.allowed, s.want.result)
			}
			var code int32
			var message string
			if resp.Result != nil {
				code, message = resp.Result.Code, resp.Result.Message
			}
			if code == 0 {
				code = http.StatusOK
			}
			if code != s.want.code {
				t.Errorf("code = %d, want %d", code, s.want.code)
			}
			if prefix, ok := strings.CutSuffix(s.want.message, "..."); ok && strings.HasPrefix(message, prefix) {
				// matched
			} else if message != s.want.message {
				t.Errorf("message:\n%s\nwant:\n%s", message, s.want.message)
			}
			if strings.Join(resp.Warnings, "\n") != strings.Join(s.want.warnings, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(resp.Warnings, "\n"), strings.Join(s.want.warnings, "\n"))
			}
			if s.want.result == resultDenied && resp.Result.Reason != metav1.StatusReasonForbidden {
				t.Errorf("reason = %q, want Forbidden", resp.Result.Reason)
			}
		})
	}
}

func TestValidatorAuditAnnotations(t *testing.T) {
	v := testValidator(t, destinationRules, deepDive(t), func(o *Options) { o.DefaultMode = Audit })
	resp := v.Handle(context.Background(), request(t, admissionv1.Create, badRule(), nil))
	want := map[string]string{
		"decision":  "audit-allowed",
		"conflicts": "httpbin.default.svc.cluster.local:8000 CONFLICT server=mTLS client=HTTP authn=default/istio-system dr=bad-rule/default clients=default",
	}
	if len(resp.AuditAnnotations) != len(want) {
		t.Errorf("audit annotations = %v, want %v", resp.AuditAnnotations, want)
	}
	for k, w := range want {
		if got := resp.AuditAnnotations[k]; got != w {
			t.Errorf("audit annotation %s = %q, want %q", k, got, w)
		}
	}
}

// TestValidatorConcurrent runs decisions while events update the store;
// run with -race.
func TestValidatorConcurrent(t *testing.T) {
	s := deepDive(t)
	v := testValidator(t, destinationRules, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			p := sidecarPod("default", "sleep-x", "sleep")
			p.Labels["gen"] = string(rune('a' + i%26))
			if err := s.Apply(p); err != nil {
				t.Error(err)
			}
			if err := s.Remove(destRule("default", "tmp", "sleep", networkingapi.ClientTLSSettings_DISABLE)); err != nil {
				t.Error(err)
			}
		}
	}()
	for range 50 {
		resp := v.Handle(context.Background(), request(t, admissionv1.Create, badRule(), nil))
		if resp.Allowed || !strings.Contains(resp.Result.Message, "would create 1 new mTLS conflict") {
			t.Fatalf("unexpected response %+v", resp.Result)
		}
	}
	<-done
}
