package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// faultRule is a DestinationRule that creates no conflict: the writes the
// fault tests time.
func faultRule(name string) *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "faults", Name: name}}
	dr.Spec.Host = name + ".faults.svc.cluster.local"
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}}
	return dr
}

// timedCreate creates obj and returns how long the API server took.
func timedCreate(c *cluster, obj client.Object) (time.Duration, error) {
	start := time.Now()
	_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, obj) })
	return time.Since(start), err
}

// waitDenies waits until the webhook denies bad-rule again (dry-run).
func waitDenies(t *testing.T, c *cluster) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRule(), client.DryRunAll) })
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("dry-run create of bad-rule: %v, want the denial", err)
		}
		return nil
	})
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestWebhookProcessStoppedAndKilled stops the webhook process (SIGSTOP:
// it accepts connections but never answers) and kills it (connection
// refused), under failurePolicy Ignore, as shipped, and Fail, as the
// fail-closed overlay sets it, both with the shipped timeoutSeconds 3.
// Ignore admits after the timeout (stopped) or at once (killed); Fail
// refuses with the API server's error and stores nothing, for a create and
// an update alike.
func TestWebhookProcessStoppedAndKilled(t *testing.T) {
	outer := t
	// Objects are deleted when the subtest ends, by the webhook the test
	// starts last, which outlives them.
	t.Run("faults", func(t *testing.T) { stoppedAndKilled(t, outer) })
}

func stoppedAndKilled(t, outer *testing.T) {
	const timeout = 3 // seconds, manifests/base/webhook.yaml
	p := startProcess(t)
	c := newCluster(t)
	c.ensureNamespace(t, "faults", nil)
	deepDive(t, c)
	waitDenies(t, c)

	n := 0
	create := func() (string, time.Duration, error) {
		n++
		name := fmt.Sprintf("fault-%d", n)
		took, err := timedCreate(c, faultRule(name))
		if err == nil {
			c.deleteAtCleanup(t, faultRule(name))
		}
		return name, took, err
	}
	var running []time.Duration
	for range 9 {
		_, took, err := create()
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, took)
	}
	base := median(running)
	t.Logf("running: median create %v", base)
	existing, _, err := create()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Ignore, stopped: admitted after the timeout", func(t *testing.T) {
		withFailurePolicy(t, admissionregistrationv1.Ignore, timeout)
		p.signal(t, syscall.SIGSTOP)
		defer p.signal(t, syscall.SIGCONT)
		_, took, err := create()
		if err != nil {
			t.Fatalf("create with the webhook stopped: %v", err)
		}
		// Unchecked: even bad-rule goes through.
		start := time.Now()
		_, err = c.do(func(ctx context.Context) error { return c.Create(ctx, badRule(), client.DryRunAll) })
		if err != nil {
			t.Errorf("dry-run bad-rule with the webhook stopped under Ignore: %v", err)
		}
		tooks := []time.Duration{took, time.Since(start)}
		for _, took := range tooks {
			if took < timeout*time.Second || took > (timeout+5)*time.Second {
				t.Errorf("create took %v, want the timeout %ds and a little", took, timeout)
			}
		}
		t.Logf("stopped, Ignore: creates took %v (added %v over running)", tooks, median(tooks)-base)
	})
	waitDenies(t, c)

	t.Run("Fail, stopped: refused after the timeout, nothing stored", func(t *testing.T) {
		withFailurePolicy(t, admissionregistrationv1.Fail, timeout)
		p.signal(t, syscall.SIGSTOP)
		defer p.signal(t, syscall.SIGCONT)
		name, took, err := create()
		assertRefused(t, c, name, err, "context deadline exceeded")
		if took < timeout*time.Second || took > (timeout+5)*time.Second {
			t.Errorf("refused after %v, want the timeout %ds", took, timeout)
		}
		t.Logf("stopped, Fail: refused after %v: %v", took, err)
		assertUpdateRefused(t, c, existing)
	})
	waitDenies(t, c)

	p.signal(t, syscall.SIGKILL)
	<-p.exited
	p.exited <- nil

	t.Run("Ignore, killed: admitted at once", func(t *testing.T) {
		withFailurePolicy(t, admissionregistrationv1.Ignore, timeout)
		var tooks []time.Duration
		for range 5 {
			_, took, err := create()
			if err != nil {
				t.Fatalf("create with the webhook killed: %v", err)
			}
			tooks = append(tooks, took)
		}
		if m := median(tooks); m > time.Second {
			t.Errorf("median create %v with the webhook killed, want no wait", m)
		}
		t.Logf("killed, Ignore: median create %v (running: %v)", median(tooks), base)
	})

	t.Run("Fail, killed: refused at once, nothing stored", func(t *testing.T) {
		withFailurePolicy(t, admissionregistrationv1.Fail, timeout)
		name, took, err := create()
		assertRefused(t, c, name, err, "connection refused")
		if took > time.Second {
			t.Errorf("refused after %v, want at once", took)
		}
		t.Logf("killed, Fail: refused after %v: %v", took, err)
		assertUpdateRefused(t, c, existing)
	})
	startProcessFor(t, outer)
}

// assertRefused checks that a create of name was refused by the API
// server for want, and that nothing was stored.
func assertRefused(t *testing.T, c *cluster, name string, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "failed calling webhook") || !strings.Contains(err.Error(), want) {
		t.Fatalf("create %s: %v, want the API server's %q error", name, err, want)
	}
	got := &networkingv1.DestinationRule{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "faults", Name: name}, got); !apierrors.IsNotFound(err) {
		t.Errorf("after the refused create, get %s: %v (stored: %v)", name, err, got.Spec.Host)
	}
}

// assertUpdateRefused checks that an update of an existing rule is
// refused and leaves it as it was.
func assertUpdateRefused(t *testing.T, c *cluster, name string) {
	t.Helper()
	ctx := context.Background()
	before := &networkingv1.DestinationRule{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "faults", Name: name}, before); err != nil {
		t.Fatal(err)
	}
	upd := before.DeepCopy()
	upd.Spec.TrafficPolicy.Tls.Mode = networkingapi.ClientTLSSettings_DISABLE
	upd.Labels = map[string]string{"changed": "yes"}
	if _, err := c.do(func(ctx context.Context) error { return c.Update(ctx, upd) }); err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
		t.Fatalf("update %s: %v, want refused", name, err)
	}
	after := &networkingv1.DestinationRule{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "faults", Name: name}, after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion || after.Labels["changed"] != "" ||
		after.Spec.TrafficPolicy.Tls.Mode != networkingapi.ClientTLSSettings_ISTIO_MUTUAL {
		t.Errorf("the refused update changed %s: resourceVersion %s -> %s, labels %v, mode %v",
			name, before.ResourceVersion, after.ResourceVersion, after.Labels, after.Spec.TrafficPolicy.Tls.Mode)
	}
}
