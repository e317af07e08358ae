// Package benche2e measures mtlsguard end to end at cluster scale, as a
// user would run it: etcd and kube-apiserver from bin/, a mesh of the size
// given by -scale loaded through the API server, bin/mtlsguard registered
// with the shipped webhook configuration, and bin/tls-check against the
// live cluster. It prints a Markdown report and writes it to -out.
//
// Service-host DestinationRule writes are timed against two arms, mtlsguard
// and a no-op webhook registered the same way, in interleaved blocks
// (ABBA...) so that the machine's noise falls on both; the mesh-wide writes
// are timed in both arms too, with their outcome: denied, admitted, or
// admitted unchecked because the API server stopped waiting (read from the
// audit log's failed-open annotation).
//
// It is its own module, not run by make test: `make bench-e2e SCALE=0.1`.
// Run it with -count=1 and -timeout 0: it reads bin/ and manifests/,
// which go test's cache does not track, and scale 1.0 runs for a while.
package benche2e

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var (
	scaleFlag   = flag.Float64("scale", 1.0, "cluster size: 1.0 is 2,000 namespaces, 10,000 services, 50,000 pods, 5,000 DestinationRules, 2,000 PeerAuthentications")
	outFlag     = flag.String("out", "", "also write the Markdown report to this file")
	blocksFlag  = flag.Int("blocks", 6, "measurement blocks, alternating mtlsguard and the no-op webhook (ABBA order)")
	writesFlag  = flag.Int("writes", 50, "service-host DestinationRule create+delete pairs per block")
	bgRateFlag  = flag.Float64("background-rate", 25, "service-host create+delete pairs started per second while mesh-wide writes are made, each on schedule (open loop); 0 runs -background-writers back to back instead")
	bgFlag      = flag.Int("background-writers", 2, "with -background-rate 0: service-host writers writing back to back while mesh-wide writes are made (closed loop)")
	settleFlag  = flag.Duration("settle", time.Second, "pause after an admitted mesh-wide write, for mtlsguard's cache to see it")
	windowFlag  = flag.Duration("window", time.Second, "report the background writes started within this long after a mesh-wide write started, in both arms")
	workersFlag = flag.Int("workers", 32, "concurrent creates while loading the cluster")
	readyFlag   = flag.Duration("ready-timeout", 15*time.Minute, "longest wait for mtlsguard's /readyz")
	tcRSSFlag   = flag.Int64("tls-check-max-rss", 4096, "MiB: tls-check is killed (and reported so) above this resident set")
	tcTimeFlag  = flag.Duration("tls-check-timeout", 5*time.Minute, "tls-check is killed (and reported so) after this long")
	profileFlag = flag.String("cpu-profile", "", "write a CPU profile of mtlsguard during the first mtlsguard block's mesh-wide writes to this file")
)

func TestBenchE2E(t *testing.T) {
	if *scaleFlag <= 0 || *blocksFlag < 2 || *writesFlag < 1 {
		t.Fatalf("-scale must be > 0, -blocks >= 2, -writes >= 1 (got %v, %d, %d)", *scaleFlag, *blocksFlag, *writesFlag)
	}
	ctx := t.Context()
	root := repoRoot(t)
	bin := os.Getenv("KUBEBUILDER_ASSETS") // relative to the repository root
	if bin == "" {
		bin = "bin"
	}
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(root, bin)
	}
	for name, how := range map[string]string{"etcd": "make bin", "kube-apiserver": "make bin", "mtlsguard": "make build", "tls-check": "make build"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			t.Fatalf("%s is missing from %s: run `%s` first (%v)", name, bin, how, err)
		}
	}
	work := workDir(t)
	r := &report{shape: newShape(*scaleFlag), scale: *scaleFlag, blocks: *blocksFlag, writes: *writesFlag,
		background: *bgFlag, backgroundRate: *bgRateFlag, cpus: runtime.NumCPU(), date: time.Now().UTC()}

	cp := startControlPlane(t, root, bin, work)
	kube, istio := clients(t, cp)

	t.Logf("loading %s", r.shape)
	r.load = load(ctx, t, kube, istio, generate(r.shape), *workersFlag)

	c := newCerts(t, work)
	noop := startNoop(t, c)
	start := time.Now()
	r.memLimit = shippedMemoryLimit(t, root)
	mg := startMtlsguard(t, bin, cp.kubeconfig, c, work, r.memLimit)
	var err error
	if r.ready, err = mg.waitReady(ctx, start, *readyFlag); err != nil {
		t.Fatal(err)
	}
	if r.memReady, err = readMemory(mg.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	t.Logf("mtlsguard ready after %s, RSS %d MiB", r.ready.Round(time.Millisecond), r.memReady.rss>>20)

	arms := []*arm{
		{name: "mtlsguard", port: mg.webhookPort, seen: func() (float64, error) { n, _, err := mg.decisions(); return n, err }},
		{name: "no-op", port: noop.port, seen: func() (float64, error) { return float64(noop.requests.Load()), nil }},
	}
	vwc := registerWebhook(ctx, t, root, kube, istio, c, arms[0])
	if r.timeout, err = vwc.timeout(ctx); err != nil {
		t.Fatal(err)
	}

	b := &blockRunner{t: t, istio: istio, shape: r.shape, vwc: vwc, mg: mg, noop: arms[1], r: r}
	for i := range *blocksFlag {
		a := arms[((i+1)/2)%2] // A B B A A B ...
		b.run(ctx, i, a)
	}
	if r.memEnd, err = readMemory(mg.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, r.decisions, err = mg.decisions(); err != nil {
		t.Fatal(err)
	}
	if r.latencies, err = mg.latencies(); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{{"-A"}, {"-A", "-o", "json"}} {
		t.Logf("running tls-check %v", args)
		run, err := runTLSCheck(ctx, bin, cp.kubeconfig, *tcRSSFlag<<20, *tcTimeFlag, args...)
		if err != nil {
			t.Fatal(err)
		}
		r.tlsCheck = append(r.tlsCheck, run)
	}

	audit, err := readAudit(cp.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	md := r.markdown(audit)
	fmt.Println(md)
	if *outFlag != "" {
		if err := os.WriteFile(*outFlag, []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range r.errors {
		t.Error(e)
	}
}

// clients are cluster-admin clients without client-side throttling, which
// record each request's Audit-Id and warnings (see recorder). Core objects
// go as protobuf, Istio's as JSON (custom resources have no protobuf).
func clients(t *testing.T, cp *controlPlane) (kubernetes.Interface, istioclient.Interface) {
	t.Helper()
	cfg := fastConfig(cp.cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return recorder{next: rt} })
	istio, err := istioclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pb := rest.CopyConfig(cfg)
	pb.ContentType = "application/vnd.kubernetes.protobuf"
	pb.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	kube, err := kubernetes.NewForConfig(pb)
	if err != nil {
		t.Fatal(err)
	}
	return kube, istio
}

// blockRunner runs the measurement blocks.
type blockRunner struct {
	t     *testing.T
	istio istioclient.Interface
	shape shape
	vwc   *webhookConfig
	mg    *mtlsguard
	noop  *arm
	r     *report
	// profiled: the CPU profile (-cpu-profile) was started.
	profiled bool
}

// warmup pairs open connections and fill caches before a block's timing.
const warmup = 3

// run is one block in arm a: service-host create+delete pairs one after
// another, then each mesh-wide write (and, when admitted, the write that
// undoes it) while background writers keep writing service-host rules.
func (b *blockRunner) run(ctx context.Context, block int, a *arm) {
	t := b.t
	quiet, err := b.mg.quiesce(ctx, 3*time.Minute)
	if err != nil {
		b.r.errors = append(b.r.errors, fmt.Sprintf("block %d: %v", block, err))
	}
	b.r.quiet = append(b.r.quiet, quiet)
	if err := b.vwc.switchTo(ctx, a); err != nil {
		t.Fatal(err)
	}
	caught, err := b.caughtUp(ctx, block, 3*time.Minute)
	if err != nil {
		b.r.errors = append(b.r.errors, fmt.Sprintf("block %d: %v", block, err))
	}
	if a.name == "mtlsguard" {
		b.r.caughtUp = append(b.r.caughtUp, caught)
	}
	t.Logf("block %d: %s (mtlsguard idle after %s, answers agree with the cluster after %s)", block, a.name, quiet.Round(time.Millisecond), caught.Round(time.Millisecond))
	for i := range warmup + *writesFlag {
		c, d := servicePair(ctx, b.istio, b.shape, a.name, fmt.Sprintf("sh-%d-%d", block, i), block*(*writesFlag+warmup)+i)
		if i < warmup {
			continue
		}
		b.r.pairs = append(b.r.pairs, c)
		if c.err == nil {
			b.r.pairs = append(b.r.pairs, d)
		}
		for _, w := range []write{c, d} {
			if w.err != nil {
				b.r.errors = append(b.r.errors, fmt.Sprintf("service-host write in arm %s: %v", a.name, w.err))
			}
		}
	}

	if *profileFlag != "" && a.name == "mtlsguard" && !b.profiled {
		b.profiled = true
		wait := b.mg.profile(30*time.Second, *profileFlag)
		defer func() {
			if err := wait(); err != nil {
				b.r.errors = append(b.r.errors, err.Error())
			}
		}()
	}
	var before map[string]histogram
	if a.name == "mtlsguard" {
		var err error
		if before, err = b.mg.latencies(); err != nil {
			t.Fatal(err)
		}
	}
	cpuBefore, err := sampleCPU()
	if err != nil {
		t.Fatal(err)
	}
	stop := background(ctx, b.istio, b.shape, a.name, fmt.Sprint(block), *bgFlag, *bgRateFlag)
	var mesh []write
	for _, st := range meshSteps(b.istio) {
		w := st.run(ctx, a.name)
		mesh = append(mesh, w)
		t.Logf("  %s: %s (%v)", st.label, w.took.Round(time.Millisecond), errLine(w.err))
		if w.err != nil {
			if !denied(w.err) {
				b.r.errors = append(b.r.errors, fmt.Sprintf("%s in arm %s: %v", st.label, a.name, w.err))
			}
			continue
		}
		time.Sleep(*settleFlag)
		u := st.undo.run(ctx, a.name)
		mesh = append(mesh, u)
		t.Logf("  %s: %s (%v)", st.undo.label, u.took.Round(time.Millisecond), errLine(u.err))
		if u.err != nil {
			b.fixup(ctx, a, *st.undo, u.err)
		}
		time.Sleep(*settleFlag)
	}
	bg := stop()
	cpuAfter, err := sampleCPU()
	if err != nil {
		t.Fatal(err)
	}
	if b.r.meshCPU == nil {
		b.r.meshCPU = map[string]cpuUse{}
	}
	b.r.meshCPU[a.name] = b.r.meshCPU[a.name].add(cpuBefore, cpuAfter)
	if a.name == "mtlsguard" {
		after, err := b.mg.latencies()
		if err != nil {
			t.Fatal(err)
		}
		if b.r.meshPhase == nil {
			b.r.meshPhase = map[string]histogram{}
		}
		for reach, h := range after {
			b.r.meshPhase[reach] = b.r.meshPhase[reach].add(h.since(before[reach]))
		}
	}
	b.r.mesh = append(b.r.mesh, mesh...)
	b.r.during = append(b.r.during, overlapping(bg, mesh)...)
	b.r.afterMesh = append(b.r.afterMesh, startedWithin(bg, mesh, *windowFlag)...)
	for _, w := range bg {
		// While the `*.local` rule is deleted, mtlsguard rightly denies some
		// of these (they would add conflicts the rule used to hold): a
		// denial is an answer, timed like an admission.
		if w.err != nil && !denied(w.err) {
			b.r.errors = append(b.r.errors, fmt.Sprintf("background service-host write in arm %s: %v", a.name, w.err))
		}
	}
}

// caughtUp sends dry-run creates of service-host rules until the webhook
// admits them all. In the generated mesh they create no conflict, but
// mtlsguard denies them while its cache still holds a `*.local` rule that a
// previous block disabled or deleted: with the cache that far behind, the
// block would time decisions on a mesh that no longer exists.
func (b *blockRunner) caughtUp(ctx context.Context, block int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		ok := true
		for i := range 3 {
			dr := serviceRule(b.shape, fmt.Sprintf("sync-%d-%d", block, i), block*101+i*37)
			_, err := b.istio.NetworkingV1().DestinationRules(dr.Namespace).Create(ctx, dr, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil && !denied(err) {
				return time.Since(start), fmt.Errorf("dry-run create of DestinationRule %s/%s: %w", dr.Namespace, dr.Name, err)
			}
			ok = ok && err == nil
		}
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return time.Since(start), fmt.Errorf("mtlsguard still denies service-host rules %s after the mesh was restored", limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fixup puts the cluster back when the write that should have done it was
// refused: through the no-op arm, so that the next block starts from the
// generated mesh again.
func (b *blockRunner) fixup(ctx context.Context, a *arm, st meshStep, cause error) {
	t := b.t
	if b.r.fixups == nil {
		b.r.fixups = map[string]*fixup{}
	}
	f := b.r.fixups[st.label]
	if f == nil {
		f = &fixup{cause: errLine(cause)}
		b.r.fixups[st.label] = f
	}
	f.count++
	if err := b.vwc.switchTo(ctx, b.noop); err != nil {
		t.Fatal(err)
	}
	if w := st.run(ctx, b.noop.name); w.err != nil {
		t.Fatalf("%s, through the no-op webhook: %v", st.label, w.err)
	}
	if err := b.vwc.switchTo(ctx, a); err != nil {
		t.Fatal(err)
	}
	time.Sleep(*settleFlag)
}

// errLine is the first line of err's message, or "admitted".
func errLine(err error) string {
	if err == nil {
		return "admitted"
	}
	s := err.Error()
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

// workDir holds the certificates, the audit log and mtlsguard's log. It is
// removed when the run passes and kept (and named) when it fails.
func workDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mtlsguard-bench-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}
