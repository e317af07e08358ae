package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/mtlsguard/mtlsguard/policy"
)

// Store keeps a policy.State current from informer events and answers
// decisions from it. Events take the write lock; decisions take the read
// lock, so any number of them run at once.
type Store struct {
	mu    sync.RWMutex
	state *policy.State
	// base is the mesh the options describe; the istio ConfigMap is laid
	// over it, never over the previous ConfigMap.
	base       policy.Mesh
	namespaces map[string]namespaceInfo
	synced     atomic.Bool
	// OnChange, if set before the informers start, is told of every object
	// applied or removed (deleted), after the state has it.
	OnChange func(obj runtime.Object, deleted bool)
}

// namespaceInfo is what a decision needs to know about the namespace of
// the object written.
type namespaceInfo struct {
	mode        string // value of ModeLabel
	hasMode     bool
	terminating bool
}

// NewStore returns an empty, unsynced store for a mesh.
func NewStore(m policy.Mesh) (*Store, error) {
	st, err := policy.NewState(policy.Snapshot{Mesh: m})
	if err != nil {
		return nil, err
	}
	return &Store{state: st, base: st.Mesh(), namespaces: map[string]namespaceInfo{}}, nil
}

// Synced reports whether every informer has delivered its initial list to
// the store. Before that, no decision is made from it.
func (s *Store) Synced() bool { return s.synced.Load() }

func (s *Store) markSynced() { s.synced.Store(true) }

// ReadyCheck is a healthz.Checker that fails until the store has synced.
func (s *Store) ReadyCheck(*http.Request) error {
	if !s.Synced() {
		return errors.New("informers have not synced yet")
	}
	return nil
}

// Apply adds or replaces one object: a Namespace, Service, Pod,
// PeerAuthentication or DestinationRule of any served version, or the
// istio ConfigMap of the root namespace (other ConfigMaps are ignored).
// A DestinationRule or PeerAuthentication the engine cannot read is
// removed, so that no stale version of it stays behind, and reported.
func (s *Store) Apply(obj runtime.Object) error {
	obj, err := policy.Normalize(obj)
	if err != nil {
		return err
	}
	defer s.changed(obj, false)
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := obj.(*corev1.Namespace); ok {
		info := namespaceInfo{terminating: o.DeletionTimestamp != nil || o.Status.Phase == corev1.NamespaceTerminating}
		info.mode, info.hasMode = o.Labels[ModeLabel]
		s.namespaces[o.Name] = info
	}
	if err := s.state.Apply(obj); err != nil {
		if rmErr := s.state.Remove(obj); rmErr != nil {
			return errors.Join(err, rmErr)
		}
		return err
	}
	return nil
}

// Remove deletes one object; removing an unknown object is a no-op.
func (s *Store) Remove(obj runtime.Object) error {
	obj, err := policy.Normalize(obj)
	if err != nil {
		return err
	}
	defer s.changed(obj, true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := obj.(*corev1.Namespace); ok {
		delete(s.namespaces, o.Name)
	}
	return s.state.Remove(obj)
}

// View calls fn with the current state. fn must only read it, and must not
// keep it after it returns.
func (s *Store) View(fn func(*policy.State) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(s.state)
}

// namespace returns what the store knows about a namespace.
func (s *Store) namespace(name string) namespaceInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.namespaces[name]
}

// clusterDomain is the DNS suffix of services; it never changes.
func (s *Store) clusterDomain() string { return s.base.ClusterDomain }

// verdict is a policy.Decision rendered while the state was read-locked:
// a Group's views are read from the state.
type verdict struct {
	// conflicts are the first maxRows new conflicts.
	conflicts []conflict
	// total counts the new conflicts.
	total int
	// resolved counts the conflicts the change removes.
	resolved int
}

// conflict is one new conflict row of the tls-check table.
type conflict struct {
	// columns are HOST:PORT, STATUS, SERVER, CLIENT, AUTHN POLICY and
	// DESTINATION RULE.
	columns []string
	// namespaces are the first maxNamespaces client namespaces, sorted;
	// moreNamespaces counts the others.
	namespaces     []string
	moreNamespaces int
}

// decide asks the engine which conflicts a change creates. Groups whose
// columns are the same (the same rule reached from different client
// namespaces) make one row.
func (s *Store) decide(ch policy.Change) (verdict, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, err := s.state.Decide(context.TODO(), ch)
	if err != nil {
		return verdict{}, err
	}
	type columns [6]string
	var order []columns
	groups := map[columns][]policy.Group{}
	for _, g := range d.New {
		var k columns
		copy(k[:], g.Row.Columns())
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], g)
	}
	v := verdict{total: len(order), resolved: len(d.Resolved)}
	for _, k := range order[:min(len(order), maxRows)] {
		var ns []string
		for _, g := range groups[k] {
			ns = append(ns, g.Views.Namespaces()...)
		}
		slices.Sort(ns)
		ns = slices.Compact(ns)
		c := conflict{columns: k[:]}
		if len(ns) > maxNamespaces {
			c.moreNamespaces = len(ns) - maxNamespaces
			ns = ns[:maxNamespaces]
		}
		c.namespaces = ns
		v.conflicts = append(v.conflicts, c)
	}
	return v, nil
}

// eventHandler feeds informer events into the store, logging objects it
// cannot use.
func (s *Store) eventHandler(log logr.Logger) toolscache.ResourceEventHandler {
	report := func(verb string, obj any, err error) {
		if err != nil {
			log.Error(err, "object left out of the mTLS state", "op", verb, "object", describe(obj))
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(runtime.Object); ok {
				report("add", obj, s.Apply(o))
			}
		},
		UpdateFunc: func(old, obj any) {
			if samePod(old, obj) {
				return // a status update the engine does not read
			}
			if o, ok := obj.(runtime.Object); ok {
				report("update", obj, s.Apply(o))
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(runtime.Object); ok {
				report("delete", obj, s.Remove(o))
			}
		},
	}
}

// samePod reports whether two versions of a Pod look the same to the
// engine. Most Pod updates change only the status, and the engine
// recomputes the client views of the pod's namespace on every applied
// Pod, so they are worth skipping.
func samePod(a, b any) bool {
	p, ok := a.(*corev1.Pod)
	q, ok2 := b.(*corev1.Pod)
	return ok && ok2 && p.Namespace == q.Namespace && p.Name == q.Name &&
		p.Status.Phase == q.Status.Phase && policy.HasSidecar(p) == policy.HasSidecar(q) &&
		maps.Equal(p.Labels, q.Labels) && reflect.DeepEqual(p.Spec.Containers, q.Spec.Containers)
}

func describe(obj any) string {
	type named interface {
		GetNamespace() string
		GetName() string
	}
	if o, ok := obj.(named); ok {
		return fmt.Sprintf("%T %s/%s", obj, o.GetNamespace(), o.GetName())
	}
	return fmt.Sprintf("%T", obj)
}
