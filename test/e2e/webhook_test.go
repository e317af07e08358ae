package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// webhook is one bin/mtlsguard process.
type webhook struct {
	name       string
	port       int // webhook (TLS) port
	healthAddr string
	log        string
	exited     chan error
}

// startWebhook starts bin/mtlsguard serving the certificate in certDir on
// 127.0.0.1:port and reading the cluster through kubeconfig. It is stopped
// when the test ends. args come first, so the local flags above win over the
// same flags in them (such as a Deployment's --webhook-port).
func (c *cluster) startWebhook(t *testing.T, name, certDir, kubeconfig string, port int, args ...string) *webhook {
	t.Helper()
	w := &webhook{
		name:       name,
		port:       port,
		healthAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		log:        filepath.Join(c.logs, name+".log"),
		exited:     make(chan error, 1),
	}
	logFile, err := os.Create(w.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.bin, "mtlsguard"), append(args[:len(args):len(args)],
		"--kubeconfig", kubeconfig,
		"--cert-dir", certDir,
		"--webhook-host", "127.0.0.1",
		"--webhook-port", strconv.Itoa(port),
		"--health-probe-bind-address", w.healthAddr,
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--leader-election-namespace", namespace,
	)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd, err)
	}
	go func() { w.exited <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.exited
	})
	return w
}

// waitReady waits until /readyz answers 200 and returns how long it took.
func (w *webhook) waitReady(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := w.pollReady(timeout); err != nil {
		t.Fatalf("webhook %s: %v\n--- %s (last lines)\n%s", w.name, err, w.log, tail(w.log, 30))
	}
	return time.Since(start)
}

// forbiddenAndUnready waits until the webhook logs that the API server
// forbade it to list resource, then checks that /readyz stays unready for a
// few seconds more and that the process keeps running (it must keep
// retrying, not crash).
func (w *webhook) forbiddenAndUnready(t *testing.T, resource string, timeout time.Duration) {
	t.Helper()
	forbidden := regexp.MustCompile(`cannot list resource \\?"` + regexp.QuoteMeta(resource) + `\\?"`)
	deadline := time.Now().Add(timeout)
	for {
		if log, _ := os.ReadFile(w.log); forbidden.Match(log) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook %s: no %q in its log after %s\n--- %s (last lines)\n%s",
				w.name, forbidden, timeout, w.log, tail(w.log, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	switch err := w.pollReady(3 * time.Second); err {
	case nil:
		t.Fatalf("webhook %s turned ready; want it to stay unready", w.name)
	case context.DeadlineExceeded:
	default:
		t.Fatalf("webhook %s: %v\n--- %s (last lines)\n%s", w.name, err, w.log, tail(w.log, 30))
	}
}

// pollReady returns nil once /readyz answers 200, context.DeadlineExceeded
// after timeout, or the error of a process that exited.
func (w *webhook) pollReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-w.exited:
			w.exited <- err
			return fmt.Errorf("exited early: %v", err)
		default:
		}
		resp, err := client.Get("http://" + w.healthAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(200 * time.Millisecond)
	}
}
