package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtlsguard/mtlsguard/internal/seam"
	"github.com/mtlsguard/mtlsguard/webhook"
)

const (
	// decisionTimeout is the webhook's --decision-timeout in these tests;
	// the webhook configuration gives it 10 s.
	decisionTimeout = 500 * time.Millisecond

	timeoutWarning = "mtlsguard: too large to check in 500ms, admitted unchecked; check later: tls-check or kubectl apply --dry-run=server"
)

// timeoutDenial is the message of a write refused by --on-timeout=deny.
func timeoutDenial(name string) string {
	return denied + "mtlsguard: DestinationRule slow/" + name + " could not be checked in 500ms and is refused unchecked (--on-timeout=deny); " +
		"retry when the cluster is quieter, or check the change with tls-check"
}

// TestDecisionTimeout runs the webhook with an engine that is still deciding
// long after --decision-timeout: every write is answered at the deadline,
// per --on-timeout, and never waits for the engine or the API server's
// timeout.
func TestDecisionTimeout(t *testing.T) {
	c := newCluster(t)
	c.ensureNamespace(t, "slow", nil)
	for _, onTimeout := range []webhook.OnTimeout{webhook.OnTimeoutAllow, webhook.OnTimeoutDeny} {
		t.Run(string(onTimeout), func(t *testing.T) {
			// The stall ignores its context, as an engine deep in one large
			// service would: only the webhook's own deadline can answer.
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			r := startWebhook(t, func(o *webhook.Options) {
				o.DecisionTimeout, o.OnTimeout = decisionTimeout, onTimeout
				seam.SlowDecisions(o, func(context.Context) { <-release })
			})
			series := `mtlsguard_decisions_total{dry_run="false",kind="DestinationRule",mode="enforce",operation="CREATE",result="timeout"}`
			before := counter(t, r.metrics(t), series)

			rule := badRule()
			rule.Namespace, rule.Name = "slow", "client-"+string(onTimeout)
			start := time.Now()
			w, err := c.do(func(ctx context.Context) error { return c.Create(ctx, rule.DeepCopy()) })
			took := time.Since(start)
			t.Logf("create answered in %v: %v, warnings %q", took.Round(time.Millisecond), err, w)
			if took < decisionTimeout || took > decisionTimeout+3*time.Second {
				t.Errorf("create answered in %v, want soon after the %v deadline", took, decisionTimeout)
			}
			var code int32
			switch onTimeout {
			case webhook.OnTimeoutAllow:
				code = http.StatusCreated
				if err != nil || !equal(w, []string{timeoutWarning}) {
					t.Fatalf("create: %v, warnings %q; want admitted with %q", err, w, timeoutWarning)
				}
				c.deleteAtCleanup(t, rule)
				if err := c.Get(context.Background(), client.ObjectKeyFromObject(rule), &networkingv1.DestinationRule{}); err != nil {
					t.Errorf("admitted but not stored: %v", err)
				}
			case webhook.OnTimeoutDeny:
				code = http.StatusServiceUnavailable
				if !apierrors.IsServiceUnavailable(err) || err.Error() != timeoutDenial(rule.Name) {
					t.Fatalf("create: %v\nwant 503 %s", err, timeoutDenial(rule.Name))
				}
				if err := c.Get(context.Background(), client.ObjectKeyFromObject(rule), &networkingv1.DestinationRule{}); !apierrors.IsNotFound(err) {
					t.Errorf("refused but stored: %v", err)
				}
			}
			if a := audited(t, "create", "slow", rule.Name, code); a["destinationrules.mtlsguard.io/decision"] != "timeout" {
				t.Errorf("audit annotations %v, want destinationrules.mtlsguard.io/decision: timeout", a)
			}

			// What a user sees.
			kubectlRule := rule.DeepCopy()
			kubectlRule.Name = "kubectl-" + string(onTimeout)
			file := filepath.Join(t.TempDir(), "rule.yaml")
			if err := os.WriteFile(file, []byte(fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: %s
  namespace: slow
spec:
  host: httpbin.default.svc.cluster.local
  trafficPolicy:
    tls:
      mode: DISABLE
`, kubectlRule.Name)), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, err := kubectl(t, "apply", "-f", file)
			t.Logf("kubectl apply -f rule.yaml\n%s%s", stderr, stdout)
			switch onTimeout {
			case webhook.OnTimeoutAllow:
				c.deleteAtCleanup(t, kubectlRule)
				if err != nil || stderr != "Warning: "+timeoutWarning+"\n" {
					t.Errorf("kubectl apply: %v\nstderr: %s\nwant: Warning: %s", err, stderr, timeoutWarning)
				}
			case webhook.OnTimeoutDeny:
				if err == nil || !strings.Contains(stderr, "Error from server (ServiceUnavailable)") || !strings.Contains(stderr, timeoutDenial(kubectlRule.Name)) {
					t.Errorf("kubectl apply: %v\nstderr: %s\nwant: Error from server (ServiceUnavailable): ...%s", err, stderr, timeoutDenial(kubectlRule.Name))
				}
			}

			if after := counter(t, r.metrics(t), series); after != before+2 {
				t.Errorf("%s went from %v to %v, want +2", series, before, after)
			}
		})
	}
}

// counter returns the value of one series in a Prometheus exposition, 0 if
// it is absent.
func counter(t *testing.T, exposition, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}
