package webhook

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiwatch "k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/mtlsguard/mtlsguard/policy"
)

// TestRelistMakesTheStoreStaleUntilItLands drives an informer's
// ListerWatcher as client-go's reflector does, through both ways it lists
// (List then Watch; a WatchList's initial events ending in a bookmark).
func TestRelistMakesTheStoreStaleUntilItLands(t *testing.T) {
	s, err := NewStore(policy.DefaultMesh())
	if err != nil {
		t.Fatal(err)
	}
	fake := apiwatch.NewFake()
	lw := &toolscache.ListWatch{
		ListFunc: func(metav1.ListOptions) (runtime.Object, error) {
			return &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "7"}}, nil
		},
		WatchFunc: func(metav1.ListOptions) (apiwatch.Interface, error) { return fake, nil },
	}
	w := &relistWatcher{next: toolscache.ToListerWatcherWithContext(lw), store: s, name: "pods", log: logr.Discard()}
	ctx := context.Background()
	yes := true
	ready := func() bool { return s.Synced() && s.ReadyCheck(nil) == nil }

	// The first list and watch: before the first sync, nothing changes.
	if _, err := w.ListWithContext(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WatchWithContext(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	s.markSynced()
	if !ready() {
		t.Fatal("not ready after the first sync")
	}

	// A watch that resumes: nothing missed, still ready.
	if _, err := w.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: "7"}); err != nil {
		t.Fatal(err)
	}
	if !ready() {
		t.Error("a resumed watch made the store stale")
	}

	// List, then Watch.
	if _, err := w.ListWithContext(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if ready() || s.staleness.stale() != 1 {
		t.Errorf("during a relist: ready %v, stale %d", ready(), s.staleness.stale())
	}
	if _, err := w.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: "8"}); err != nil {
		t.Fatal(err)
	}
	if !ready() {
		t.Error("still stale after the watch that follows the list")
	}

	// WatchList: stale until the bookmark that ends the initial events.
	wl, err := w.WatchWithContext(ctx, metav1.ListOptions{SendInitialEvents: &yes})
	if err != nil {
		t.Fatal(err)
	}
	if ready() {
		t.Error("ready during a WatchList's initial events")
	}
	go fake.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "9"}})
	if e := <-wl.ResultChan(); e.Type != apiwatch.Added || ready() {
		t.Errorf("after an initial event: %v, ready %v", e.Type, ready())
	}
	go fake.Action(apiwatch.Bookmark, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "9",
		Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
	if e := <-wl.ResultChan(); e.Type != apiwatch.Bookmark {
		t.Errorf("got %v, want the bookmark", e.Type)
	}
	if !ready() {
		t.Error("still stale after the initial events ended")
	}
	wl.Stop()
}
