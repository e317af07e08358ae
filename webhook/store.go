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
// decisions from it. Nothing a decision reads is ever changed: an event
// changes a copy of the state (policy.State.Clone, which shares all the
// event does not touch) and publishes it with one atomic store. A decision
// reads the state that was current when it started, however long it takes,
// and neither waits for events nor makes them wait; events wait only for
// each other.
type Store struct {
	// writeMu orders events; readers never take it.
	writeMu sync.Mutex
	state   atomic.Pointer[policy.State]
	// base is the mesh the options describe; the istio ConfigMap is laid
	// over it, never over the previous ConfigMap.
	base policy.Mesh
	// namespaces maps a namespace name to its namespaceInfo.
	namespaces sync.Map
	synced     atomic.Bool
	// staleness counts informers that are listing again after a failed
	// watch (staleness.go).
	staleness staleness
	// decisions counts decisions in flight, which the audit gives way to
	// (Yield).
	decisions inflight
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
	s := &Store{base: st.Mesh()}
	s.state.Store(st)
	return s, nil
}

// Synced reports whether every informer has delivered its initial list to
// the store, and none is listing again after a failed watch. Otherwise no
// decision is made from it.
func (s *Store) Synced() bool { return s.synced.Load() && s.staleness.stale() == 0 }

func (s *Store) markSynced() { s.synced.Store(true) }

// ReadyCheck is a healthz.Checker that fails until the store has synced.
func (s *Store) ReadyCheck(*http.Request) error {
	if !s.synced.Load() {
		return errors.New("informers have not synced yet")
	}
	if n := s.staleness.stale(); n > 0 {
		return fmt.Errorf("%d informers are listing again after a failed watch", n)
	}
	return nil
}

// Apply adds or replaces one object: a Namespace, Service, Pod,
// PeerAuthentication or DestinationRule of any served version, or the
// istio ConfigMap of the root namespace (other ConfigMaps are ignored).
// A DestinationRule or PeerAuthentication the engine cannot read is
// removed, so that no stale version of it stays behind, and reported.
//
// An object the informer could not decode (decode.go) is removed the same
// way, counted, and its decoding error returned.
func (s *Store) Apply(obj runtime.Object) error {
	if u, ok := obj.(*undecodable); ok {
		undecodableObjects.WithLabelValues(u.GetObjectKind().GroupVersionKind().Kind).Inc()
		return errors.Join(u.err, s.Remove(u.Object))
	}
	obj, err := policy.Normalize(obj)
	if err != nil {
		return err
	}
	defer s.changed(obj, false) // once the new state is published
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if o, ok := obj.(*corev1.Namespace); ok {
		info := namespaceInfo{terminating: o.DeletionTimestamp != nil || o.Status.Phase == corev1.NamespaceTerminating}
		info.mode, info.hasMode = o.Labels[ModeLabel]
		s.namespaces.Store(o.Name, info)
	}
	next := s.state.Load().Clone()
	defer s.state.Store(next)
	if err := next.Apply(obj); err != nil {
		// The engine checks an object before it changes anything, so next
		// is as it was; drop the previous version of the object too.
		if rmErr := next.Remove(obj); rmErr != nil {
			return errors.Join(err, rmErr)
		}
		return err
	}
	return nil
}

// Remove deletes one object; removing an unknown object is a no-op.
func (s *Store) Remove(obj runtime.Object) error {
	if u, ok := obj.(*undecodable); ok {
		obj = u.Object
	}
	obj, err := policy.Normalize(obj)
	if err != nil {
		return err
	}
	defer s.changed(obj, true) // once the new state is published
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if o, ok := obj.(*corev1.Namespace); ok {
		s.namespaces.Delete(o.Name)
	}
	next := s.state.Load().Clone()
	if err := next.Remove(obj); err != nil {
		return err
	}
	s.state.Store(next)
	return nil
}

// View calls fn with the current state. fn must only read it; the state
// never changes under it, however long fn runs.
func (s *Store) View(fn func(*policy.State) error) error {
	return fn(s.state.Load())
}

// namespace returns what the store knows about a namespace.
func (s *Store) namespace(name string) namespaceInfo {
	info, _ := s.namespaces.Load(name)
	ni, _ := info.(namespaceInfo)
	return ni
}

// reach is how far a change can reach in the mesh settings in force.
func (s *Store) reach(ch policy.Change) policy.Reach {
	return policy.ReachOf(ch, s.state.Load().Mesh())
}

// clusterDomain is the DNS suffix of services; it never changes.
func (s *Store) clusterDomain() string { return s.base.ClusterDomain }

// verdict is a policy.Decision rendered for a response.
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
	// namespaces are the client namespaces, sorted: all of them as decide
	// returns them, the first maxNamespaces once capped; moreNamespaces
	// counts the others.
	namespaces     []string
	moreNamespaces int
	// rejected are the server identities the rule's subjectAltNames, sans,
	// leave out (policy.Row.RejectedIdentities): why the row is a
	// CONFLICT. Both are nil when the identity check is not why.
	rejected, sans []string
}

// decide asks the engine which conflicts a change creates. Groups whose
// columns are the same (the same rule reached from different client
// namespaces) make one row.
func (s *Store) decide(ctx context.Context, ch policy.Change) (verdict, error) {
	// A response lists maxRows rows; the engine counts the others without
	// building them.
	d, err := s.state.Load().DecideFirst(ctx, ch, maxRows)
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
	// Rows merged above were counted once each in NewTotal.
	v := verdict{total: d.NewTotal - (len(d.New) - len(order)), resolved: d.ResolvedTotal}
	for _, k := range order[:min(len(order), maxRows)] {
		var ns []string
		c := conflict{columns: k[:]}
		for _, g := range groups[k] {
			ns = append(ns, g.Views.Namespaces()...)
			if ids := g.Row.RejectedIdentities(); len(ids) > 0 {
				c.rejected = append(c.rejected, ids...)
				c.sans = g.Row.SubjectAltNames
			}
		}
		slices.Sort(ns)
		c.namespaces = slices.Compact(ns)
		slices.Sort(c.rejected)
		c.rejected = slices.Compact(c.rejected)
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
		maps.Equal(p.Labels, q.Labels) && reflect.DeepEqual(p.Spec.Containers, q.Spec.Containers) &&
		p.Annotations[policy.RedirectionAnnotation] == q.Annotations[policy.RedirectionAnnotation] &&
		p.Spec.HostNetwork == q.Spec.HostNetwork
}

func describe(obj any) string {
	if u, ok := obj.(*undecodable); ok {
		obj = u.Object
	}
	type named interface {
		GetNamespace() string
		GetName() string
	}
	if o, ok := obj.(named); ok {
		return fmt.Sprintf("%T %s/%s", obj, o.GetNamespace(), o.GetName())
	}
	return fmt.Sprintf("%T", obj)
}
