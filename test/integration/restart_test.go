package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mtlsguard/mtlsguard/audit"
	"github.com/mtlsguard/mtlsguard/internal/testcrds"
	"github.com/mtlsguard/mtlsguard/internal/webhooktest"
	"github.com/mtlsguard/mtlsguard/webhook"
)

// TestAPIServerRestartAndWatchExpiry restarts kube-apiserver under a
// running webhook. Its new watch cache starts at etcd's current revision,
// so the informers' watches resume from resource versions it no longer
// has (410 Gone, "too old resource version") and they list again; while
// they do, /readyz fails and no decision is made. Afterwards the cache
// follows the cluster again: a namespace relabelled to audit after the
// restart turns bad-rule's denial into a warning, and back.
//
// It runs its own control plane: the shared one's certificates would not
// survive a restart.
func TestAPIServerRestartAndWatchExpiry(t *testing.T) {
	assets, err := binaryAssets()
	if err != nil {
		t.Fatal(err)
	}
	crds, err := testcrds.Istio(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	e := &envtest.Environment{
		ControlPlaneStartTimeout: 3 * time.Minute,
		BinaryAssetsDirectory:    assets,
		CRDs:                     crds,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{webhookConfiguration()},
		},
	}
	// A directory of our own keeps the serving certificate across the
	// restart (envtest makes a new one for a directory it created).
	e.ControlPlane.GetAPIServer().CertDir = t.TempDir()
	// A loaded machine can take longer than envtest's 20 s to stop it.
	e.ControlPlaneStopTimeout = 2 * time.Minute
	rcfg, err := e.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("stop the control plane: %v", err)
		}
	})

	o := webhooktest.Options(t, e.WebhookInstallOptions)
	o.Audit.LeaderElect, o.Audit.ReportAPI = false, audit.NoReports
	webhooktest.Start(t, rcfg, o)
	readyz := "http://" + o.HealthProbeBindAddress + "/readyz"
	eventually(t, 60*time.Second, func() error { return get(readyz) })

	c := restartClient(t, rcfg)
	for _, f := range []string{"examples/deep-dive/workloads.yaml", "examples/deep-dive/mesh-mtls.yaml"} {
		for _, obj := range loadYAML(t, f) {
			if err := c.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
	denies := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.Create(ctx, badRule(), client.DryRunAll)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "would create 1 new mTLS conflict") {
			return fmt.Errorf("dry-run bad-rule: %v, want the denial", err)
		}
		return nil
	}
	eventually(t, 30*time.Second, denies)
	before := metricValues(t, o.MetricsBindAddress)

	// Watch /readyz through the restart.
	var unreadySeen time.Duration
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		start := time.Now()
		for time.Since(start) < 45*time.Second {
			if get(readyz) != nil && unreadySeen == 0 {
				unreadySeen = time.Since(start)
			}
			if t.Context().Err() != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
			if unreadySeen > 0 && get(readyz) == nil {
				return
			}
		}
	}()

	api := e.ControlPlane.GetAPIServer()
	down := time.Now()
	// A crash: envtest's graceful stop waits a minute for kube-apiserver.
	killProcessWith(t, "kube-apiserver", "--cert-dir="+api.CertDir)
	// While it is down, etcd moves on and compacts its history: the
	// informers' resource versions are gone when they watch again.
	rev := compactEtcd(t, e.ControlPlane.Etcd.URL.String())
	t.Logf("kube-apiserver killed; etcd compacted at revision %d", rev)
	if err := api.Start(); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	back := time.Now()
	t.Logf("kube-apiserver down for %v", back.Sub(down).Round(time.Millisecond))

	// Back: every informer has listed again and the store is current.
	var after map[string]float64
	eventually(t, 60*time.Second, func() error {
		after = metricValues(t, o.MetricsBindAddress)
		if after["mtlsguard_cache_stale_seconds_count"] <= before["mtlsguard_cache_stale_seconds_count"] {
			return fmt.Errorf("no stale period recorded yet (%v)", after)
		}
		return get(readyz)
	})
	ready := time.Since(back)
	eventually(t, 30*time.Second, denies)
	relisted := after["mtlsguard_cache_relists_total"] - before["mtlsguard_cache_relists_total"]
	periods := after["mtlsguard_cache_stale_seconds_count"] - before["mtlsguard_cache_stale_seconds_count"]
	staleSum := after["mtlsguard_cache_stale_seconds_sum"] - before["mtlsguard_cache_stale_seconds_sum"]
	if relisted < 1 {
		t.Errorf("no informer listed again after the restart")
	}
	<-watching
	t.Logf("after the restart: %.0f informers listed again, %.0f stale periods, %.0f ms stale in total (longest possible: the sum); ready and deciding %v after kube-apiserver was back; /readyz seen failing: %v",
		relisted, periods, staleSum*1000, ready.Round(time.Millisecond), unreadySeen > 0)

	// The cache follows changes made after the restart.
	ns := &corev1.Namespace{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "default"}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels[webhook.ModeLabel] = "audit"
	if err := c.Update(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		err := c.Create(context.Background(), badRule(), client.DryRunAll)
		if err != nil {
			return fmt.Errorf("dry-run bad-rule in audit mode: %v, want a warning", err)
		}
		return nil
	})
}

// restartClient is a client of the control plane that is restarted.
func restartClient(t *testing.T, c *rest.Config) client.Client {
	t.Helper()
	cl, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// metricValues reads the mtlsguard_cache_* series of the metrics served on
// addr, each by its name and labels, and summed by name.
func metricValues(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(webhooktest.Metrics(t, addr), "\n") {
		if !strings.HasPrefix(line, "mtlsguard_cache_") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		v, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			continue
		}
		out[series] += v
		if name, _, labelled := strings.Cut(series, "{"); labelled {
			out[name] += v
		}
	}
	return out
}

// killProcessWith sends SIGKILL to the process whose command line holds
// name and arg, and waits until it is gone.
func killProcessWith(t *testing.T, name, arg string) {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if !strings.HasSuffix(args[0], name) || !slices.Contains(args, arg) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() error {
			if b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat")); err == nil && !strings.Contains(string(b), ") Z ") {
				return fmt.Errorf("%s (%d) still runs", name, pid)
			}
			return nil
		})
		return
	}
	t.Fatalf("no %s process with %s", name, arg)
}

// compactEtcd writes a key and compacts etcd's history up to its current
// revision, through etcd's JSON gateway, and returns that revision.
func compactEtcd(t *testing.T, etcdURL string) int64 {
	t.Helper()
	post := func(path, body string) map[string]any {
		resp, err := http.Post(strings.TrimSuffix(etcdURL, "/")+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("etcd %s: %s: %s", path, resp.Status, b)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("etcd %s: %v: %s", path, err, b)
		}
		return out
	}
	key := base64.StdEncoding.EncodeToString([]byte("/mtlsguard-test/compaction"))
	out := post("/v3/kv/put", fmt.Sprintf(`{"key":%q,"value":%q}`, key, key))
	header, _ := out["header"].(map[string]any)
	rev, err := strconv.ParseInt(fmt.Sprint(header["revision"]), 10, 64)
	if err != nil {
		t.Fatalf("etcd put: no revision in %v", out)
	}
	post("/v3/kv/compaction", fmt.Sprintf(`{"revision":%q,"physical":true}`, strconv.FormatInt(rev, 10)))
	return rev
}
