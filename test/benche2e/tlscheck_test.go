package benche2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// cliRun is one run of bin/tls-check against the live cluster.
type cliRun struct {
	args    []string
	wall    time.Duration
	maxRSS  int64 // bytes, from the kernel's rusage of the finished process
	output  int64 // bytes written to stdout
	code    int
	killed  string // why the harness stopped it, if it did
	stderrs string // the end of its stderr, when it failed
}

// countWriter counts and discards.
type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// tailWriter keeps the last bytes written.
type tailWriter struct{ b []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = t.b[len(t.b)-2048:]
	}
	return len(p), nil
}

// runTLSCheck runs bin/tls-check with args and the admin kubeconfig,
// discarding (and counting) its output. It kills the process when its
// resident set passes maxRSS or it runs longer than limit, so a run that
// would take the machine down is reported instead.
func runTLSCheck(ctx context.Context, bin, kubeconfig string, maxRSS int64, limit time.Duration, args ...string) (cliRun, error) {
	r := cliRun{args: args}
	out, errOut := &countWriter{}, &tailWriter{}
	cmd := exec.Command(filepath.Join(bin, "tls-check"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = out, errOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-ctx.Done():
			cmd.Process.Kill() //nolint:errcheck // it may just have exited
			r.killed = "harness stopped"
		case <-tick.C:
			if r.killed != "" {
				continue
			}
			if m, merr := readMemory(cmd.Process.Pid); merr == nil && m.rss > maxRSS {
				r.killed = fmt.Sprintf("killed above %d MiB", maxRSS>>20)
				cmd.Process.Kill() //nolint:errcheck // it may just have exited
			} else if time.Since(start) > limit {
				r.killed = fmt.Sprintf("killed after %s", limit)
				cmd.Process.Kill() //nolint:errcheck // it may just have exited
			}
		}
	}
	r.wall = time.Since(start)
	r.output = out.n.Load()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
		r.stderrs = strings.TrimSpace(string(errOut.b))
	default:
		return r, fmt.Errorf("running tls-check %s: %w", strings.Join(args, " "), err)
	}
	return r, nil
}
