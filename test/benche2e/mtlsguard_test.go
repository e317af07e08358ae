package benche2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// mtlsguard is bin/mtlsguard running against the control plane.
type mtlsguard struct {
	cmd                    *exec.Cmd
	log                    string
	webhookPort            int
	healthPort, metricPort int
	pprofPort              int
	exited                 chan struct{}
}

// startMtlsguard starts bin/mtlsguard as cluster-admin with the harness's
// serving certificate on free local ports, and with GOMEMLIMIT at the
// memory limit the manifests ship, as their Deployment sets it.
func startMtlsguard(t *testing.T, bin, kubeconfig string, c *certs, work string, memLimit int64) *mtlsguard {
	t.Helper()
	m := &mtlsguard{webhookPort: freePort(t), healthPort: freePort(t), metricPort: freePort(t), pprofPort: freePort(t), log: filepath.Join(work, "mtlsguard.log"), exited: make(chan struct{})}
	logFile, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(filepath.Join(bin, "mtlsguard"),
		"--kubeconfig", kubeconfig,
		"--cert-dir", c.dir,
		"--webhook-host", "127.0.0.1",
		"--webhook-port", strconv.Itoa(m.webhookPort),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", m.healthPort),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", m.metricPort),
		"--pprof-bind-address", fmt.Sprintf("127.0.0.1:%d", m.pprofPort),
		// Outside a cluster the Lease's namespace must be named; the audit
		// runs in the leader, as in a deployment.
		"--leader-election-namespace", "default",
	)
	m.cmd.Env = append(os.Environ(), fmt.Sprintf("GOMEMLIMIT=%d", memLimit))
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", m.cmd.Path, err)
	}
	go func() {
		m.cmd.Wait() //nolint:errcheck // the exit is reported through exited
		logFile.Close()
		close(m.exited)
	}()
	t.Cleanup(func() {
		m.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
		select {
		case <-m.exited:
		case <-time.After(30 * time.Second):
			m.cmd.Process.Kill() //nolint:errcheck // last resort
			<-m.exited
		}
	})
	return m
}

// waitReady polls /readyz until it answers 200, which mtlsguard does once
// its informers have synced, and returns how long that took since start.
func (m *mtlsguard) waitReady(ctx context.Context, start time.Time, limit time.Duration) (time.Duration, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", m.healthPort)
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			return 0, fmt.Errorf("mtlsguard exited before it was ready (%v); log: %s", m.cmd.ProcessState, m.log)
		case <-ctx.Done():
			return 0, ctx.Err()
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("mtlsguard not ready after %s; log: %s", limit, m.log)
}

// decisions is the sum of mtlsguard_decisions_total over all labels, and
// the sums by result label.
func (m *mtlsguard) decisions() (total float64, byResult map[string]float64, err error) {
	byResult = map[string]float64{}
	err = m.samples("mtlsguard_decisions_total{", func(line string, v float64) error {
		total += v
		byResult[label(line, "result")] += v
		return nil
	})
	return total, byResult, err
}

// samples calls fn with each sample of mtlsguard's /metrics whose line
// starts with prefix, and its value.
func (m *mtlsguard) samples(prefix string, fn func(line string, v float64) error) error {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", m.metricPort))
	if err != nil {
		return fmt.Errorf("scraping mtlsguard's metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return fmt.Errorf("mtlsguard's metrics: %q: %w", line, err)
		}
		if err := fn(line, v); err != nil {
			return err
		}
	}
	return sc.Err()
}

// label returns the value of label name in a sample's line.
func label(line, name string) string {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// memory is a process's resident set now and at its peak, from
// /proc/PID/status (VmRSS, VmHWM).
type memory struct{ rss, peak int64 } // bytes

func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		var dst *int64
		switch fields[0] {
		case "VmRSS:":
			dst = &m.rss
		case "VmHWM:":
			dst = &m.peak
		default:
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, fields[0], err)
		}
		*dst = kb << 10
	}
	return m, sc.Err()
}

// freePort asks the kernel for a free local TCP port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// quiesce waits until mtlsguard has used under 5% of a CPU for a second:
// after mesh-wide writes its informers keep applying events for a while,
// and a block that started then would pay for the previous one.
func (m *mtlsguard) quiesce(ctx context.Context, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	prev, err := cpuTicks(m.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	for time.Since(start) < limit {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
		now, err := cpuTicks(m.cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		if now-prev <= 5 { // USER_HZ is 100 on Linux
			return time.Since(start), nil
		}
		prev = now
	}
	return time.Since(start), fmt.Errorf("mtlsguard still busy after %s", limit)
}

// profile starts a CPU profile of mtlsguard for d and returns a function
// that waits for it and writes it to path.
func (m *mtlsguard) profile(d time.Duration, path string) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", m.pprofPort, int(d.Seconds())))
		if err != nil {
			done <- fmt.Errorf("profiling mtlsguard: %w", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		done <- errors.Join(err, f.Close())
	}()
	return func() error { return <-done }
}

// shippedMemoryLimit is limits.memory of the mtlsguard container in
// manifests/base/deployment.yaml, in bytes.
func shippedMemoryLimit(t *testing.T, root string) int64 {
	t.Helper()
	path := filepath.Join(root, "manifests", "base", "deployment.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			return q.Value()
		}
	}
	t.Fatalf("%s: no container sets limits.memory", path)
	return 0
}
