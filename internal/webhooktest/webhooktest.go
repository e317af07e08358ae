// Package webhooktest runs mtlsguard's manager in a test, against the API
// server of an envtest environment, the way the integration and load tests
// need it: serving where the environment's webhook configuration points,
// probes and metrics on free local ports, and stopped when the test ends.
package webhooktest

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mtlsguard/mtlsguard/webhook"
)

// Options are webhook.DefaultOptions set up to serve w's webhook
// configuration, with probes and metrics on free ports. The leader election
// namespace is named, as outside a cluster it must be.
func Options(t testing.TB, w envtest.WebhookInstallOptions) webhook.Options {
	t.Helper()
	o := webhook.DefaultOptions()
	o.Host, o.Port, o.CertDir = w.LocalServingHost, w.LocalServingPort, w.LocalServingCertDir
	o.HealthProbeBindAddress, o.MetricsBindAddress = FreeAddr(t), FreeAddr(t)
	o.Audit.LeaderElectionNamespace = "default"
	o.ShutdownDelay = 10 * time.Millisecond // nobody routes to it: stop at once
	return o
}

// Start runs the manager with options o against cfg until the test ends,
// and returns a channel that receives the manager's error if it stops
// before. The test fails if the manager ends with an error or does not
// stop within 90 seconds of the end.
func Start(t testing.TB, cfg *rest.Config, o webhook.Options) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := webhook.New(ctx, cfg, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	stopped := make(chan error, 1)
	go func() {
		err := mgr.Start(ctx)
		done <- err
		stopped <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(90 * time.Second):
			t.Errorf("manager did not stop")
		}
	})
	return stopped
}

// Metrics returns the Prometheus exposition the manager serves on addr
// (its MetricsBindAddress).
func Metrics(t testing.TB, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s/metrics: %v", addr, err)
	}
	return string(b)
}

// FreeAddr returns a local address nobody listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
