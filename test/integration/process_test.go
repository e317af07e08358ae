package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mtlsguard/mtlsguard/internal/webhooktest"
)

// The fault tests stop, kill and signal mtlsguard, so they run it as a
// process: cmd/mtlsguard built once per test binary.
var (
	buildOnce  sync.Once
	binary     string
	binaryErr  error
	binaryTook time.Duration
)

func mtlsguardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		dir, err := os.MkdirTemp("", "mtlsguard-faults-")
		if err != nil {
			binaryErr = err
			return
		}
		binary = filepath.Join(dir, "mtlsguard")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/mtlsguard")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build ./cmd/mtlsguard: %v\n%s", err, out)
		}
		binaryTook = time.Since(start)
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binary
}

// process is one mtlsguard process serving the webhook the control plane
// calls.
type process struct {
	cmd    *exec.Cmd
	health string
	log    string
	exited chan error
}

// startProcess runs mtlsguard with args on the webhook configuration's
// address, as an administrator of the control plane, and waits until it
// is ready. It is killed when the test ends, if it still runs.
func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	return startProcessFor(t, t, args...)
}

// startProcessFor is startProcess with the process killed when owner
// ends: a test whose cleanups need the webhook runs in a subtest, and the
// process outlives them.
func startProcessFor(t, owner *testing.T, args ...string) *process {
	t.Helper()
	bin := mtlsguardBinary(t)
	dir, err := os.MkdirTemp("", "mtlsguard-process-")
	if err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(func() { os.RemoveAll(dir) })
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	w := env.WebhookInstallOptions
	p := &process{health: webhooktest.FreeAddr(t), log: filepath.Join(dir, "mtlsguard.log"), exited: make(chan error, 1)}
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--webhook-host", w.LocalServingHost,
		"--webhook-port", strconv.Itoa(w.LocalServingPort),
		"--cert-dir", w.LocalServingCertDir,
		"--health-probe-bind-address", p.health,
		"--metrics-bind-address", webhooktest.FreeAddr(t),
		"--leader-elect=false",
		"--report-api=none",
	}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait(); logFile.Close() }()
	owner.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot die
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.exited <- nil
		if owner.Failed() {
			b, _ := os.ReadFile(p.log)
			owner.Logf("mtlsguard log:\n%s", tailBytes(b, 4000))
		}
	})
	start := time.Now()
	eventually(t, 60*time.Second, func() error {
		select {
		case err := <-p.exited:
			p.exited <- err
			b, _ := os.ReadFile(p.log)
			t.Fatalf("mtlsguard exited: %v\n%s", err, tailBytes(b, 4000))
		default:
		}
		return p.ready()
	})
	t.Logf("mtlsguard process ready after %v", time.Since(start).Round(time.Millisecond))
	return p
}

func (p *process) ready() error { return get("http://" + p.health + "/readyz") }

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

func tailBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// withFailurePolicy sets the failurePolicy and timeoutSeconds of every
// webhook of the configuration until the test ends, and waits until the
// API server's admission plugin uses them.
func withFailurePolicy(t *testing.T, policy admissionregistrationv1.FailurePolicyType, timeout int32) {
	t.Helper()
	c := newCluster(t)
	ctx := context.Background()
	set := func(p admissionregistrationv1.FailurePolicyType, seconds int32) {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Name: "mtlsguard"}, vwc); err != nil {
			t.Fatal(err)
		}
		for i := range vwc.Webhooks {
			vwc.Webhooks[i].FailurePolicy = &p
			vwc.Webhooks[i].TimeoutSeconds = &seconds
		}
		if err := c.Update(ctx, vwc); err != nil {
			t.Fatal(err)
		}
	}
	orig := webhookConfiguration().Webhooks[0]
	set(policy, timeout)
	// The admission plugin reads configurations through an informer.
	t.Cleanup(func() { set(*orig.FailurePolicy, *orig.TimeoutSeconds); time.Sleep(500 * time.Millisecond) })
	time.Sleep(500 * time.Millisecond)
}

// TestProfilesWhenAsked: --pprof-bind-address serves Go's profiles of the
// running process, to find where a slow decision spends its time.
func TestProfilesWhenAsked(t *testing.T) {
	addr := webhooktest.FreeAddr(t)
	startProcess(t, "--pprof-bind-address="+addr)
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatalf("--pprof-bind-address=%s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "--pprof-bind-address") {
		t.Fatalf("/debug/pprof/cmdline: %s %q, want 200 and mtlsguard's command line", resp.Status, body)
	}
}
