package webhook

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/mtlsguard/mtlsguard/audit"
)

// changed tells OnChange, if set, of an object applied or removed.
func (s *Store) changed(obj runtime.Object, deleted bool) {
	if s.OnChange != nil {
		s.OnChange(obj, deleted)
	}
}

// addAudit runs the background audit (package audit) in mgr's leader,
// reading store.
func addAudit(mgr manager.Manager, store *Store, o Options) error {
	a, err := audit.New(store, audit.Config{
		Options:       o.Audit,
		ModeLabel:     ModeLabel,
		ClusterDomain: o.ClusterDomain,
		Client:        mgr.GetClient(),
		Mapper:        mgr.GetRESTMapper(),
		Recorder:      mgr.GetEventRecorder("mtlsguard"),
	})
	if err != nil {
		return err
	}
	store.OnChange = a.Observe
	return mgr.Add(a)
}

// everyReplica runs in every replica, not only the leader.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
