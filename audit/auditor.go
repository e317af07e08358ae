package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mtlsguard/mtlsguard/policy"
)

// Source is the cache the audit reads: webhook.Store is one.
type Source interface {
	// View calls fn with the current state, which fn must only read.
	View(fn func(*policy.State) error) error
	// Synced reports whether the cache holds the whole cluster.
	Synced() bool
	// Yield returns when a whole-table recomputation may go on: it is
	// called between services, and webhook.Store waits in it while
	// admissions are decided, which the audit must not slow.
	Yield()
}

// Auditor keeps the conflict table current and publishes it. Observe must
// see every object the Source applies, from before the informers start;
// Start runs the recomputations (in the leader only, see
// NeedLeaderElection).
type Auditor struct {
	src      Source
	tracker  *tracker
	sink     *sink                // nil: no reports
	recorder events.EventRecorder // nil: no events
	log      logr.Logger
	// interval is the least time between two recomputations.
	interval time.Duration
	// fullPace times the last whole-table recomputation is the least time
	// from its start to the next one's (fullPacing).
	fullPace int

	mu    sync.Mutex
	dirty dirtySet
	wake  chan struct{}

	// Owned by the Start goroutine.
	table     map[string][]finding  // conflicts by service namespace
	rendered  map[string][]rendered // table's findings as results, filled in by publish
	published map[string]*stored    // reports on the API server
	known     map[string]conflictRef
	retry     *time.Timer
}

// conflictRef is a conflict announced with an Event: what its resolution
// is announced on.
type conflictRef struct {
	hostPort string
	causes   []corev1.ObjectReference
}

type dirtySet struct {
	full       bool
	republish  bool
	namespaces map[string]bool
}

// Config is what New needs besides the Source.
type Config struct {
	Options Options
	// ModeLabel is the namespace label whose value "off" keeps a
	// namespace's conflicts out of the reports (webhook.ModeLabel).
	ModeLabel string
	// ClusterDomain is the DNS domain of services; defaults to Istio's.
	ClusterDomain string
	// Client writes reports; Mapper tells whether their CRD is installed.
	Client client.Client
	Mapper meta.RESTMapper
	// Recorder records Events; nil records none.
	Recorder events.EventRecorder
}

// New builds an Auditor reading src. It picks the report API: with
// ReportAuto, OpenReports if its CRD is installed, else none, which it
// logs once; a chosen API whose CRD is missing is an error.
func New(src Source, c Config) (*Auditor, error) {
	if err := c.Options.Validate(); err != nil {
		return nil, err
	}
	a := &Auditor{
		src:      src,
		tracker:  newTracker(c.ModeLabel, cmp.Or(c.ClusterDomain, policy.DefaultMesh().ClusterDomain)),
		recorder: c.Recorder,
		log:      logf.Log.WithName("mtlsguard").WithName("audit"),
		interval: time.Second,
		fullPace: 4,
		wake:     make(chan struct{}, 1),
		dirty:    dirtySet{full: true, namespaces: map[string]bool{}},
		table:    map[string][]finding{},
		rendered: map[string][]rendered{},
		known:    map[string]conflictRef{},
	}
	var gvk schema.GroupVersionKind
	switch c.Options.ReportAPI {
	case NoReports:
		return a, nil
	case ReportAuto, OpenReports:
		gvk = openReport
	case WGPolicy:
		gvk = wgPolicyReport
	}
	if _, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if !meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("look up the %s API: %w", gvk.GroupVersion(), err)
		}
		if c.Options.ReportAPI != ReportAuto {
			return nil, fmt.Errorf("--report-api=%s: the API server does not serve %s (install its CRD): %w", c.Options.ReportAPI, gvk.GroupVersion(), err)
		}
		a.log.Info("not writing reports: the openreports.io/v1alpha1 Report CRD is not installed (--report-api=none)")
		return a, nil
	}
	a.sink = &sink{c: c.Client, gvk: gvk}
	return a, nil
}

// Observe is told of every object the cache applied (deleted false) or
// removed; it marks what the object can change and returns at once.
func (a *Auditor) Observe(obj runtime.Object, deleted bool) {
	s := a.tracker.observe(obj, deleted)
	a.mark(s)
}

func (a *Auditor) mark(s scope) {
	a.mu.Lock()
	switch {
	case s.full:
		a.dirty.full = true
	case s.namespace != "":
		a.dirty.namespaces[s.namespace] = true
		if s.previous != "" {
			a.dirty.namespaces[s.previous] = true
		}
	case s.republish:
		a.dirty.republish = true
	default:
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Auditor) take() dirtySet {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.dirty
	a.dirty = dirtySet{namespaces: map[string]bool{}}
	return d
}

// NeedLeaderElection runs the audit in the leader only: one writer of
// reports and events.
func (a *Auditor) NeedLeaderElection() bool { return true }

// Start waits for the cache to sync, then recomputes and publishes after
// every change, at most once per interval, until ctx is done.
func (a *Auditor) Start(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	for !a.src.Synced() {
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	t.Stop()
	if a.sink != nil {
		if err := a.loadPublished(ctx); err != nil {
			return err
		}
	}
	a.mark(scope{full: true})
	var last time.Time
	var pace fullPacing
	for {
		select {
		case <-ctx.Done():
			if a.retry != nil {
				a.retry.Stop()
			}
			return nil
		case <-a.wake:
		}
		wait := a.interval - time.Since(last)
		if a.fullPending() {
			wait = max(wait, pace.wait(a.fullPace))
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		last = time.Now()
		d := a.take()
		err := a.run(ctx, d)
		if d.full {
			pace = fullPacing{start: last, took: time.Since(last)}
		}
		if err != nil {
			a.log.Error(err, "audit failed; retrying")
			a.retryLater(5 * time.Second)
		}
	}
}

// fullPacing spaces whole-table recomputations by their own cost. On a
// cluster where the table takes seconds, every mesh-wide write asked for
// one, and back-to-back writes kept a CPU busy with them while the same
// CPU was answering admissions; paced, the audit spends at most 1/pace of
// a CPU on them, and the writes in between are covered by the next one. Namespace recomputations are cheap and stay at interval.
type fullPacing struct {
	start time.Time
	took  time.Duration
}

// wait is how long the next whole-table recomputation must still wait.
func (p fullPacing) wait(pace int) time.Duration {
	return time.Duration(pace)*p.took - time.Since(p.start)
}

func (a *Auditor) fullPending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dirty.full
}

func (a *Auditor) retryLater(d time.Duration) {
	if a.retry != nil {
		a.retry.Stop()
	}
	a.retry = time.AfterFunc(d, func() { a.mark(scope{republish: true}) })
}

// loadPublished reads the reports a previous leader left: they are updated
// in place, and their conflicts are not announced again.
func (a *Auditor) loadPublished(ctx context.Context) error {
	var err error
	for attempt := 0; ; attempt++ {
		if a.published, err = a.sink.list(ctx); err == nil {
			break
		}
		a.log.Error(err, "reading the existing reports")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(min(attempt+1, 10)) * time.Second):
		}
	}
	for _, st := range a.published {
		for i := range st.results {
			r := &st.results[i]
			if r.Policy != policyConflict {
				continue
			}
			a.known[resultKey(r)] = conflictRef{hostPort: r.Properties[propService], causes: eventTargets(r.Subjects)}
		}
	}
	return nil
}

// run recomputes what d names and publishes the result.
func (a *Auditor) run(ctx context.Context, d dirtySet) error {
	if d.full || len(d.namespaces) > 0 {
		start := time.Now()
		err := a.recompute(d)
		if err != nil {
			return err
		}
		auditDuration.WithLabelValues(scopeLabel(d.full)).Observe(time.Since(start).Seconds())
	}
	err := a.publish(ctx)
	if err == nil {
		lastSuccess.SetToCurrentTime()
	}
	return err
}

func scopeLabel(full bool) string {
	if full {
		return "full"
	}
	return "namespace"
}

// recompute brings the table up to date with the state.
func (a *Auditor) recompute(d dirtySet) error {
	services := map[string][]string{}
	if !d.full {
		for ns := range d.namespaces {
			services[ns] = a.tracker.services(ns)
		}
	}
	return a.src.View(func(st *policy.State) error {
		if d.full {
			t, err := fullTable(st, a.src.Yield)
			if err != nil {
				return fmt.Errorf("conflict table: %w", err)
			}
			a.table = t
			a.rendered = map[string][]rendered{}
			return nil
		}
		var errs []error
		for ns, svcs := range services {
			fs, err := namespaceTable(st, ns, svcs)
			if err != nil {
				errs = append(errs, fmt.Errorf("conflicts of namespace %s: %w", ns, err))
				continue
			}
			delete(a.rendered, ns)
			if len(fs) == 0 {
				delete(a.table, ns)
			} else {
				a.table[ns] = fs
			}
		}
		return errors.Join(errs...)
	})
}

// publish writes the reports, events and metrics for the current table.
func (a *Auditor) publish(ctx context.Context) error {
	reports, reported := buildReports(a.table, a.rendered, a.tracker.snapshot(), a.tracker.uid)
	setConflicts(reported)
	a.announce(reported)
	if a.sink == nil {
		return nil
	}
	now := metav1.Timestamp{Seconds: time.Now().Unix()}
	var errs []error
	for ns, rs := range reports {
		prev := a.published[ns]
		if prev != nil {
			stamp(rs, prev.results, now)
		} else {
			stamp(rs, nil, now)
		}
		if prev != nil && reflect.DeepEqual(prev.results, rs) {
			continue // unchanged: skip rendering it for the comparison
		}
		st, err := a.sink.write(ctx, ns, rs, prev)
		if st != nil {
			a.published[ns] = st
		} else {
			delete(a.published, ns)
		}
		errs = append(errs, err)
	}
	for ns, prev := range a.published {
		if _, ok := reports[ns]; ok {
			continue
		}
		if err := a.sink.delete(ctx, ns, prev); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(a.published, ns)
	}
	return errors.Join(errs...)
}
