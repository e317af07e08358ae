package webhook

// After its first sync an informer lists again whenever its watch cannot
// resume: the watch expired (410 Gone, "too old resource version", e.g.
// after kube-apiserver restarted and etcd compacted its history) or failed.
// Until that list has landed, the cache may miss changes. The store counts
// such informers as stale: /readyz fails and requests are answered per
// --unsynced, exactly as before the first sync, so no decision is made from
// a cache that is catching up. A watch that resumes from its resource
// version misses nothing and is not stale.
//
// The informers' ListerWatcher is wrapped to see it: a list (List, or a
// watch with sendInitialEvents, client-go's WatchList) begins a stale
// period; the watch that follows a List, or the bookmark that ends a
// WatchList's initial events, ends it.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	apiwatch "k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	relists = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mtlsguard_cache_relists_total",
		Help: "Lists of an informer after the first sync: its watch could not resume (expired or failed).",
	})
	staleDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mtlsguard_cache_stale_seconds",
		Help:    "Time from the start of an informer's relist to its end: the cache answers per --unsynced and /readyz fails meanwhile.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(relists, staleDuration)
}

// staleness tracks the informers that are listing again.
type staleness struct {
	mu sync.Mutex
	// since holds when each stale informer began to list.
	since map[*relistWatcher]time.Time
	// n is len(since), read without the lock on every request.
	n atomic.Int32
}

// stale reports how many informers are listing again.
func (s *staleness) stale() int { return int(s.n.Load()) }

func (s *staleness) begin(w *relistWatcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since == nil {
		s.since = map[*relistWatcher]time.Time{}
	}
	if _, ok := s.since[w]; ok {
		return // a list that failed, tried again
	}
	s.since[w] = time.Now()
	s.n.Store(int32(len(s.since)))
	relists.Inc()
	w.log.Info("cache stale: an informer lists again", "informer", w.name)
}

func (s *staleness) end(w *relistWatcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	since, ok := s.since[w]
	if !ok {
		return
	}
	delete(s.since, w)
	s.n.Store(int32(len(s.since)))
	staleDuration.Observe(time.Since(since).Seconds())
	w.log.Info("cache current again", "informer", w.name, "after", time.Since(since).String())
}

// relistWatcher is an informer's ListerWatcher, reporting its relists to
// the store.
type relistWatcher struct {
	next  toolscache.ListerWatcherWithContext
	store *Store
	name  string
	log   logr.Logger
	// listed is set by a List until the Watch that follows it.
	listed atomic.Bool
}

// newInformer is controller-runtime's cache.Options.NewInformer: client-go's
// informer, with the ListerWatcher wrapped.
func (s *Store) newInformer(log logr.Logger) func(toolscache.ListerWatcher, runtime.Object, time.Duration, toolscache.Indexers) toolscache.SharedIndexInformer {
	return func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, idx toolscache.Indexers) toolscache.SharedIndexInformer {
		w := &relistWatcher{next: toolscache.ToListerWatcherWithContext(lw), store: s, name: typeName(obj), log: log}
		return toolscache.NewSharedIndexInformer(w, obj, resync, idx)
	}
}

func (w *relistWatcher) List(options metav1.ListOptions) (runtime.Object, error) {
	return w.ListWithContext(context.Background(), options)
}

func (w *relistWatcher) Watch(options metav1.ListOptions) (apiwatch.Interface, error) {
	return w.WatchWithContext(context.Background(), options)
}

func (w *relistWatcher) ListWithContext(ctx context.Context, options metav1.ListOptions) (runtime.Object, error) {
	if w.store.synced.Load() {
		w.store.staleness.begin(w)
		w.listed.Store(true)
	}
	return w.next.ListWithContext(ctx, options)
}

func (w *relistWatcher) WatchWithContext(ctx context.Context, options metav1.ListOptions) (apiwatch.Interface, error) {
	initial := options.SendInitialEvents != nil && *options.SendInitialEvents
	synced := w.store.synced.Load()
	if synced && initial {
		w.store.staleness.begin(w)
	}
	wi, err := w.next.WatchWithContext(ctx, options)
	if err != nil {
		return nil, err
	}
	if !initial {
		if w.listed.Swap(false) {
			w.store.staleness.end(w) // the list has been handed to the informer
		}
		return wi, nil
	}
	if !synced {
		return wi, nil
	}
	return apiwatch.Filter(wi, func(e apiwatch.Event) (apiwatch.Event, bool) {
		if e.Type == apiwatch.Bookmark {
			if m, err := meta.Accessor(e.Object); err == nil && m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
				w.store.staleness.end(w)
			}
		}
		return e, true
	}), nil
}

func typeName(obj runtime.Object) string {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return "unstructured " + u.GetKind() // an Istio kind (decode.go)
	}
	return fmt.Sprintf("%T", obj)
}
