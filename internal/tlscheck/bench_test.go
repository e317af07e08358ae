package tlscheck

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchScale sizes the generated mesh: 1 is the engine benchmarks' cluster
// (policy/bench_test.go bigCluster) of 2,000 namespaces, 10,000 services,
// 50,000 pods, 5,000 DestinationRules and 2,000 PeerAuthentications.
var benchScale = flag.Float64("tlscheck.scale", 1, "size of the BenchmarkAll mesh; 1 is 50,000 pods")

// BenchmarkAll runs tls-check -A on a generated mesh read from a YAML file,
// as a user would, writing to a discarding stdout. It reports the peak RSS
// of the run (the process's high-water mark, reset before each run) and the
// bytes written. Targets at scale 1 (issue #8): under 60 s and 1 GiB each.
//
//	go test -run '^$' -bench All -benchtime 1x ./internal/tlscheck/
func BenchmarkAll(b *testing.B) {
	path := filepath.Join(b.TempDir(), "mesh.yaml")
	pods, err := writeBigMesh(path, *benchScale)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"text", nil},
		{"json", []string{"-o", "json"}},
		{"html", []string{"-o", "html"}},
		{"conflicts-only", []string{"--conflicts-only"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			args := append([]string{"-f", path, "-A"}, tc.args...)
			var peak, written int64
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				runtime.GC()
				debug.FreeOSMemory()
				resetPeakRSS(b)
				var out countingWriter
				var errOut strings.Builder
				before := cpuTime(b)
				b.StartTimer()
				if code := Run(context.Background(), args, nil, &out, &errOut); code != 0 {
					b.Fatalf("exit %d: %s", code, errOut.String())
				}
				b.StopTimer()
				cpu += cpuTime(b) - before
				peak = max(peak, peakRSS(b))
				written = out.n
				b.StartTimer()
			}
			if written < int64(pods) {
				b.Fatalf("wrote %d bytes for %d pods", written, pods)
			}
			// The machine may be shared: CPU time says what the run costs
			// when ns/op (wall time) waited for a core.
			b.ReportMetric(cpu.Seconds()/float64(b.N), "CPU-s/op")
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(written)/(1<<20), "output-MiB")
			b.ReportMetric(float64(pods), "pods")
		})
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// resetPeakRSS resets the kernel's high-water mark of this process's RSS
// (VmHWM), so peakRSS reports one run's peak.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset the peak RSS: %v", err)
	}
}

func peakRSS(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// writeBigMesh writes the benchmark mesh of the engine's benchmarks, at
// scale, as YAML: a mesh STRICT policy and a *.local ISTIO_MUTUAL rule;
// per namespace five services of two ports (one a named targetPort) and
// five pods each, about 6% of them without a sidecar; alternately a
// namespace PERMISSIVE policy and a workload STRICT policy with a port-level
// DISABLE; and two or three DestinationRules (subsets with port-level mTLS,
// a private rule for another namespace's service, a namespace-wide rule).
func writeBigMesh(path string, scale float64) (pods int, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	namespaces := max(2, int(2000*scale))
	doc := func(format string, args ...any) {
		fmt.Fprintf(w, "---\n"+format, args...)
	}
	doc("apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n")
	doc("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	doc("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: default, namespace: istio-system}\nspec: {host: '*.local', trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n")
	for n := range namespaces {
		ns := fmt.Sprintf("ns-%d", n)
		doc("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {istio-injection: enabled}}\n", ns)
		for v := range 5 {
			app := fmt.Sprintf("svc-%d", v)
			doc(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  selector: {app: %s}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: grpc, port: 9090, targetPort: grpc}
`, app, ns, app)
			for p := range 5 {
				sidecar := ""
				if (n+v+p)%17 != 0 {
					sidecar = `, security.istio.io/tlsMode: istio}
  annotations: {sidecar.istio.io/status: '{}'`
				}
				doc(`apiVersion: v1
kind: Pod
metadata:
  name: %s-%d
  namespace: %s
  labels: {app: %s, version: v%d%s}
spec:
  containers:
  - name: app
    ports: [{name: http, containerPort: 8080}, {name: grpc, containerPort: 9090}]
status: {phase: Running}
`, app, p, ns, app, p%2, sidecar)
				pods++
			}
		}
		if n%2 == 0 {
			doc("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: %s}\nspec: {mtls: {mode: PERMISSIVE}}\n", ns)
		} else {
			doc(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: svc-0, namespace: %s}
spec:
  selector: {matchLabels: {app: svc-0}}
  mtls: {mode: STRICT}
  portLevelMtls: {"9090": {mode: DISABLE}}
`, ns)
		}
		doc(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr-0, namespace: %s}
spec:
  host: svc-%d
  trafficPolicy: {portLevelSettings: [{port: {number: 80}, tls: {mode: ISTIO_MUTUAL}}]}
  subsets: [{name: v0, labels: {version: v0}}, {name: v1, labels: {version: v1}}]
`, ns, n%5)
		doc("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr-1, namespace: %s}\nspec: {host: svc-1.ns-%d.svc.cluster.local, exportTo: [.], trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n",
			ns, (n+1)%namespaces)
		if n%2 == 0 {
			doc("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr-2, namespace: %s}\nspec: {host: '*.%s.svc.cluster.local', trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n", ns, ns)
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return pods, f.Close()
}
