package webhook

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mtlsguard/mtlsguard/policy"
)

const (
	testTimeout = 100 * time.Millisecond

	timeoutWarningText = "mtlsguard: too large to check in 100ms, admitted unchecked; check later: tls-check or kubectl apply --dry-run=server"
	timeoutDenialText  = "mtlsguard: DestinationRule default/bad-rule could not be checked in 100ms and is refused unchecked (--on-timeout=deny); " +
		"retry when the cluster is quieter, or check the change with tls-check"
)

// TestDecisionTimeout runs bad-rule, which enforce mode denies, through an
// engine that is still deciding at the deadline: the answer comes at the
// deadline, per --on-timeout, and the abandoned decision stops on its own.
func TestDecisionTimeout(t *testing.T) {
	type want struct {
		allowed  bool
		code     int32
		message  string
		warnings []string
	}
	admitted := want{allowed: true, code: http.StatusOK, warnings: []string{timeoutWarningText}}
	refused := want{code: http.StatusServiceUnavailable, message: timeoutDenialText}
	auditNamespace := func(t *testing.T) *Store {
		return deepDive(t, namespace("default", map[string]string{"istio-injection": "enabled", ModeLabel: "audit"}))
	}
	scenarios := map[string]struct {
		store   func(t *testing.T) *Store
		options func(*Options)
		mode    Mode // of the metric
		want    want
	}{
		"--on-timeout=allow admits with a warning": {
			mode: Enforce,
			want: admitted,
		},
		"--on-timeout=deny refuses with 503": {
			options: func(o *Options) { o.OnTimeout = OnTimeoutDeny },
			mode:    Enforce,
			want:    refused,
		},
		"--on-timeout=allow admits in audit mode": {
			store: auditNamespace,
			mode:  Audit,
			want:  admitted,
		},
		"--on-timeout=deny admits in --default-mode=audit": {
			options: func(o *Options) { o.OnTimeout, o.DefaultMode = OnTimeoutDeny, Audit },
			mode:    Audit,
			want:    admitted,
		},
		"--on-timeout=deny admits in a namespace labelled audit": {
			store:   auditNamespace,
			options: func(o *Options) { o.OnTimeout = OnTimeoutDeny },
			mode:    Audit,
			want:    admitted,
		},
		"the warning about an unknown mode label is kept": {
			store: func(t *testing.T) *Store {
				return deepDive(t, namespace("default", map[string]string{"istio-injection": "enabled", ModeLabel: "strict"}))
			},
			options: func(o *Options) { o.OnTimeout = OnTimeoutDeny },
			mode:    Enforce,
			want: want{code: http.StatusServiceUnavailable, message: timeoutDenialText,
				warnings: []string{`namespace label mtlsguard.io/mode="strict" is not enforce, audit or off; using enforce`}},
		},
	}
	for name, s := range scenarios {
		t.Run(name, func(t *testing.T) {
			store := func(t *testing.T) *Store { return deepDive(t) }
			if s.store != nil {
				store = s.store
			}
			// The stall ignores its context: it stands for an engine busy
			// inside one large service, where it does not check ctx.
			release := make(chan struct{})
			v := testValidator(t, destinationRules, store(t), func(o *Options) {
				o.DecisionTimeout = testTimeout
				o.slow = &slowEngine{stall: func(context.Context) { <-release }}
				if s.options != nil {
					s.options(o)
				}
			})
			finished := make(chan error, 1)
			decide := v.decide
			v.decide = func(ctx context.Context, ch policy.Change) (verdict, error) {
				vd, err := decide(ctx, ch)
				finished <- err
				return vd, err
			}
			labels := map[string]string{"kind": "DestinationRule", "operation": "CREATE", "mode": string(s.mode), "dry_run": "false", "result": resultTimeout}
			before := decisionCount(t, labels)

			start := time.Now()
			resp := v.Handle(context.Background(), request(t, admissionv1.Create, badRule(), nil))
			took := time.Since(start)
			close(release)

			if took < testTimeout || took > testTimeout+time.Second {
				t.Errorf("answered after %v, want at the %v deadline", took, testTimeout)
			}
			code := int32(http.StatusOK)
			var message string
			if resp.Result != nil && resp.Result.Code != 0 {
				code, message = resp.Result.Code, resp.Result.Message
			}
			if resp.Allowed != s.want.allowed || code != s.want.code || message != s.want.message {
				t.Errorf("allowed %v, code %d, message %q; want %v, %d, %q", resp.Allowed, code, message, s.want.allowed, s.want.code, s.want.message)
			}
			if strings.Join(resp.Warnings, "\n") != strings.Join(s.want.warnings, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(resp.Warnings, "\n"), strings.Join(s.want.warnings, "\n"))
			}
			if len(resp.AuditAnnotations) != 1 || resp.AuditAnnotations[annotationDecision] != "timeout" {
				t.Errorf("audit annotations %v, want decision: timeout", resp.AuditAnnotations)
			}
			if got := decisionCount(t, labels); got != before+1 {
				t.Errorf("mtlsguard_decisions_total%v = %v, want %v", labels, got, before+1)
			}
			select {
			case err := <-finished:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("the abandoned decision returned %v, want the deadline's error", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("the abandoned decision did not stop")
			}
		})
	}
}

// decisionCount reads mtlsguard_decisions_total with these labels from the
// registry /metrics serves.
func decisionCount(t *testing.T, labels map[string]string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "mtlsguard_decisions_total" {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestDecisionTimeoutEngines covers the ways a decision can end near its
// deadline.
func TestDecisionTimeoutEngines(t *testing.T) {
	scenarios := map[string]struct {
		stall  func(ctx context.Context)
		result string
	}{
		"a decision in time is answered": {
			stall:  func(context.Context) {},
			result: resultDenied,
		},
		"an engine that stops at the deadline times out": {
			stall:  func(ctx context.Context) { <-ctx.Done() },
			result: resultTimeout,
		},
		"an engine panic is an error, not a crash": {
			stall:  func(context.Context) { panic("engine bug") },
			result: resultError,
		},
	}
	for name, s := range scenarios {
		t.Run(name, func(t *testing.T) {
			v := testValidator(t, destinationRules, deepDive(t), func(o *Options) {
				o.DecisionTimeout = testTimeout
				o.slow = &slowEngine{stall: s.stall}
			})
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var reach string
			resp, _, result := v.handle(ctx, request(t, admissionv1.Create, badRule(), nil), &reach)
			if result != s.result {
				t.Errorf("result %q, want %q (response %+v)", result, s.result, resp.Result)
			}
			if reach != "service" {
				t.Errorf("reach label %q, want service (the rule names one host)", reach)
			}
			if result == resultError && !strings.Contains(resp.Result.Message, "engine panic: engine bug") {
				t.Errorf("message %q does not report the panic", resp.Result.Message)
			}
		})
	}
}
