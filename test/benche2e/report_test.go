package benche2e

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	shape                      shape
	scale                      float64
	blocks, writes, background int
	backgroundRate             float64 // pairs a second; 0: background writers back to back
	cpus                       int
	date                       time.Time

	load             loadTimes
	ready            time.Duration
	memReady, memEnd memory
	memLimit         int64         // bytes: the shipped limits.memory, mtlsguard's GOMEMLIMIT
	timeout          time.Duration // the webhook's timeoutSeconds
	pairs            []write       // service-host creates and deletes, both arms
	mesh             []write       // mesh-wide writes and their undos, both arms
	during           []write       // background service-host writes overlapping a mesh-wide write
	afterMesh        []write       // background service-host writes started within -window after a mesh-wide write started
	decisions        map[string]float64
	// latencies are mtlsguard's own answer times by reach at the end;
	// meshPhase those of the requests it answered while mesh-wide writes
	// ran (from the first mesh-wide write to the last background write).
	latencies, meshPhase map[string]histogram
	tlsCheck             []cliRun
	quiet                []time.Duration // per block: wait for mtlsguard to go idle
	// meshCPU is the CPU each process used while mesh-wide writes ran, by
	// arm.
	meshCPU  map[string]cpuUse
	caughtUp []time.Duration   // per mtlsguard block: wait for its cache to match the cluster
	fixups   map[string]*fixup // by label
	errors   []string
}

// fixup counts a restoring write that arm mtlsguard refused, made again
// through the no-op webhook.
type fixup struct {
	count int
	cause string
}

// outcome says how the API server answered a write.
func outcome(w write, audit map[string]map[string]string, timeout time.Duration) string {
	ann, ok := audit[w.call.id()]
	switch {
	case ok && mtlsguardDeadline(ann) && w.err != nil:
		return "refused at mtlsguard's deadline"
	case ok && mtlsguardDeadline(ann):
		return "admitted unchecked at mtlsguard's deadline, with a warning"
	case denied(w.err):
		return "denied"
	case w.err != nil:
		return "error"
	case ok && failedOpen(ann):
		return "API SERVER TIMED OUT (admitted unchecked, silently)"
	case !ok && w.took >= timeout:
		return "API SERVER TIMED OUT? (no audit event)"
	case len(w.call.warnings) > 0:
		return "admitted with warnings"
	}
	return "admitted"
}

func (r *report) markdown(audit map[string]map[string]string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }

	p("### `make bench-e2e SCALE=%g`", r.scale)
	p("")
	load := fmt.Sprintf("%g service-host create+delete pairs started a second (open loop)", r.backgroundRate)
	if r.backgroundRate == 0 {
		load = fmt.Sprintf("%d background writers writing service-host pairs back to back (closed loop)", r.background)
	}
	p("%s, %d CPUs. %s, loaded through the API server; the shipped webhook configuration (timeoutSeconds %d) pointed at bin/mtlsguard or at a no-op webhook. %d blocks alternating the two arms (ABBA), %d service-host create+delete pairs per block, %s during the mesh-wide writes.",
		r.date.Format("2006-01-02 15:04 MST"), r.cpus, r.shape, int(r.timeout.Seconds()), r.blocks, r.writes, load)
	p("")

	p("**Loading the cluster** (kind after kind, %d concurrent creates)", *workersFlag)
	p("")
	p("| kind | objects | time | per second |")
	p("|---|---:|---:|---:|")
	for i, k := range r.load.kinds {
		p("| %s | %d | %s | %.0f |", k, r.load.count[i], dur(r.load.took[i]), float64(r.load.count[i])/r.load.took[i].Seconds())
	}
	n := r.load.total()
	p("| all | %d | %s | %.0f |", n, dur(r.load.wall), float64(n)/r.load.wall.Seconds())
	p("")

	p("**Service-host DestinationRule writes through the API server**")
	p("")
	p("| write | n per arm | no-op p50 | mtlsguard p50 | p50 ratio | no-op p99 | mtlsguard p99 | p99 ratio |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, op := range []string{"create", "delete"} {
		noop := latencies(r.pairs, "no-op", op)
		mg := latencies(r.pairs, "mtlsguard", op)
		p("| %s | %d / %d | %s | %s | %s | %s | %s | %s |", op, len(noop), len(mg),
			dur(pct(noop, 50)), dur(pct(mg, 50)), ratio(pct(mg, 50), pct(noop, 50)),
			dur(pct(noop, 99)), dur(pct(mg, 99)), ratio(pct(mg, 99), pct(noop, 99)))
	}
	p("")

	p("**Mesh-wide writes** (each block makes every write; an admitted one is undone by the restore that follows it)")
	p("")
	p("| write | n | mtlsguard median | mtlsguard max | mtlsguard outcome | no-op median |")
	p("|---|---:|---:|---:|---|---:|")
	for _, label := range labels(r.mesh) {
		var mg, noop []time.Duration
		outcomes := map[string]int{}
		for _, w := range r.mesh {
			if w.label != label {
				continue
			}
			if w.arm == "no-op" {
				noop = append(noop, w.took)
				continue
			}
			mg = append(mg, w.took)
			outcomes[outcome(w, audit, r.timeout)]++
		}
		p("| %s | %d | %s | %s | %s | %s |", label, len(mg), dur(pct(mg, 50)), dur(pct(mg, 100)), counts(outcomes), dur(pct(noop, 50)))
	}
	p("")

	p("**Service-host writes while mesh-wide writes run**")
	p("")
	p("In flight during one: a window as long as the mesh-wide write, which is short with the no-op webhook. Started within %s after one started: the same window in both arms, which holds mtlsguard's decision in one and its audit's recomputation of the admitted write in both.", *windowFlag)
	p("")
	p("| arm | window | writes (denied) | p50 | p99 | max |")
	p("|---|---|---:|---:|---:|---:|")
	for _, a := range []string{"no-op", "mtlsguard"} {
		for _, win := range []struct {
			name string
			ws   []write
		}{{"in flight during one", r.during}, {fmt.Sprintf("started within %s", *windowFlag), r.afterMesh}} {
			var ds []time.Duration
			nDenied := 0
			for _, w := range win.ws {
				if w.arm != a || (w.err != nil && !denied(w.err)) {
					continue
				}
				ds = append(ds, w.took)
				if w.err != nil {
					nDenied++
				}
			}
			p("| %s | %s | %d (%d) | %s | %s | %s |", a, win.name, len(ds), nDenied, dur(pct(ds, 50)), dur(pct(ds, 99)), dur(pct(ds, 100)))
		}
	}
	p("")

	if len(r.latencies) > 0 {
		p("**mtlsguard's own answer time** (`mtlsguard_decision_duration_seconds`, from decoding a request to its response, without the API server's share; the bucket bound each quantile falls within)")
		p("")
		p("| reach | answers, whole run | p50 | p99 | answers while mesh-wide writes ran | p50 | p99 |")
		p("|---|---:|---:|---:|---:|---:|---:|")
		for _, reach := range sortedKeys(r.latencies) {
			h, m := r.latencies[reach], r.meshPhase[reach]
			p("| %s | %.0f | %s | %s | %.0f | %s | %s |", reach, h.count, h.within(0.5), h.within(0.99), m.count, m.within(0.5), m.within(0.99))
		}
		p("")
	}

	if len(r.meshCPU) > 0 {
		p("**Who used the CPUs while mesh-wide writes ran** (average CPUs over the mesh-wide phases, from /proc; %d CPUs in all)", r.cpus)
		p("")
		p("| arm | phases | %s |", strings.Join(cpuProcs, " | "))
		p("|---|---:|%s", strings.Repeat("---:|", len(cpuProcs)))
		for _, arm := range sortedKeys(r.meshCPU) {
			u := r.meshCPU[arm]
			cells := make([]string, len(cpuProcs))
			for i, proc := range cpuProcs {
				cells[i] = fmt.Sprintf("%.2f", u.cores(proc))
			}
			p("| %s | %s | %s |", arm, dur(u.wall), strings.Join(cells, " | "))
		}
		p("")
	}

	p("**mtlsguard**")
	p("")
	p("Before each block the harness waited for mtlsguard to go idle (under 5%% CPU for a second): up to %s; before each mtlsguard block, for its answers to match the restored mesh (dry-run service-host rules admitted): up to %s.",
		dur(pct(r.quiet, 100)), dur(pct(r.caughtUp, 100)))
	p("")
	p("| ready after start (caches synced) | RSS when ready | peak RSS until ready | RSS at end | peak RSS (VmHWM) | shipped limit (GOMEMLIMIT) |")
	p("|---:|---:|---:|---:|---:|---:|")
	p("| %s | %s | %s | %s | %s | %s |", dur(r.ready), mib(r.memReady.rss), mib(r.memReady.peak), mib(r.memEnd.rss), mib(r.memEnd.peak), mib(r.memLimit))
	p("")
	if len(r.decisions) > 0 {
		var parts []string
		for _, k := range sortedKeys(r.decisions) {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, r.decisions[k]))
		}
		p("`mtlsguard_decisions_total` by result at the end: %s.", strings.Join(parts, ", "))
		p("")
	}

	p("**tls-check against the live cluster**")
	p("")
	p("| command | wall time | peak RSS | output | exit |")
	p("|---|---:|---:|---:|---|")
	for _, c := range r.tlsCheck {
		exit := fmt.Sprint(c.code)
		if c.killed != "" {
			exit = c.killed
		} else if c.code != 0 && c.stderrs != "" {
			exit += ": " + firstLine(c.stderrs)
		}
		p("| `tls-check %s` | %s | %s | %s | %s |", strings.Join(c.args, " "), dur(c.wall), mib(c.maxRSS), mib(c.output), exit)
	}
	for _, label := range sortedKeys(r.fixups) {
		f := r.fixups[label]
		p("")
		p("Note: \"%s\" was refused %d time(s) in arm mtlsguard and made through the no-op webhook instead, to start the next block from the generated mesh (%s).", label, f.count, f.cause)
	}
	return b.String()
}

// latencies are the successful writes of arm with label op.
func latencies(ws []write, arm, op string) []time.Duration {
	var out []time.Duration
	for _, w := range ws {
		if w.arm == arm && w.label == op && w.err == nil {
			out = append(out, w.took)
		}
	}
	return out
}

// pct is the p-th percentile by nearest rank; p=100 is the maximum.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ratio(a, b time.Duration) string {
	if a < 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func dur(d time.Duration) string {
	switch {
	case d < 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func mib(n int64) string {
	if n < 10<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// labels are the distinct labels of ws in order of first appearance.
func labels(ws []write) []string {
	var out []string
	for _, w := range ws {
		if !slices.Contains(out, w.label) {
			out = append(out, w.label)
		}
	}
	return out
}

func counts(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
