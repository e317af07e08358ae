package policy

import (
	"slices"
	"sync/atomic"
)

// serverSummary is what the members of a Kubernetes service enforce as
// servers: their target ports and server policies on every port of the
// service. It is kept on the service between decisions, because most
// decisions read the servers of a State unchanged: a DestinationRule write
// changes only clients, and a PeerAuthentication write changes the servers
// of the namespaces it reaches in its "after" configuration only. A
// mesh-wide write evaluates every service of the cluster, and recomputing
// their servers from the pods' labels and the policies was a fifth of it,
// most of it spent waiting for memory.
type serverSummary struct {
	key     serverKey
	targets [][]int32        // per service port; noTarget for none
	modes   [][]serverPolicy // per service port
	// workloads are the members' own PeerAuthentications.
	workloads []*peerAuth
	// verdicts are the latest rows computed against these servers under
	// rules of the State: the "before" side of most decisions.
	verdicts atomic.Pointer[[]cachedVerdict]
}

// cachedVerdict is failing's answer for a port, subset and rule.
type cachedVerdict struct {
	port    int
	subset  string
	dr      *mergedRule // held, so that its address is not reused
	failing bitset
}

// maxVerdicts bounds a summary's verdicts: a service has a few rules (one
// per client namespace with its own, and the generic one), each read per
// port and subset, and a rule replaced by a write is dropped when newer
// ones come.
const maxVerdicts = 32

func (s *serverSummary) verdict(pi int, subset string, dr *mergedRule) (bitset, bool) {
	if vs := s.verdicts.Load(); vs != nil {
		for _, v := range *vs {
			if v.dr == dr && v.port == pi && v.subset == subset {
				return v.failing, true
			}
		}
	}
	return nil, false
}

// remember adds a verdict, dropping the oldest beyond maxVerdicts.
// Decisions on States that share the service may add at once; one of
// them wins, which only costs the others' recomputing.
func (s *serverSummary) remember(pi int, subset string, dr *mergedRule, failing bitset) {
	var old []cachedVerdict
	if vs := s.verdicts.Load(); vs != nil {
		old = *vs
	}
	if len(old) >= maxVerdicts {
		old = old[len(old)-maxVerdicts+1:]
	}
	vs := append(append(make([]cachedVerdict, 0, len(old)+1), old...), cachedVerdict{pi, subset, dr, slices.Clone(failing)})
	s.verdicts.Store(&vs)
}

// lasting reports whether rule dr of env e outlives the decision: a rule
// of the State, not of the namespace whose rules the write replaces, nor
// one a Sidecar lookup made up.
func (e *env) lasting(dr *mergedRule) bool {
	if dr == nil {
		return true
	}
	return dr.noCluster == "" && (e.ovKind != kindDestinationRule || dr.first == nil || dr.first.namespace != e.ovNS)
}

// serverKey names the configuration a summary was computed in: the
// versions of the service's namespace (its pods and PeerAuthentications) and
// of the root namespace (the mesh policy), and of the mesh settings. The
// service itself is the one holding the summary. Versions, not pointers, so
// that a summary does not keep an old namespace alive.
type serverKey struct{ ns, root, mesh uint64 }

// serverCache holds a service's summary. Decisions on different States may
// share the service and race to store theirs; the key tells whose it is.
type serverCache struct{ atomic.Pointer[serverSummary] }

// serverKey returns the key of svc's servers in e, or false when e's
// servers are not the State's (a PeerAuthentication of the service's or the
// root namespace is replaced) or svc keeps no summary.
func (e *env) serverKey(svc *service) (serverKey, bool) {
	root := e.st.mesh.RootNamespace
	if svc.servers == nil || e.ovKind == kindPeerAuthentication && (e.ovNS == svc.namespace || e.ovNS == root) {
		return serverKey{}, false
	}
	n := e.ns(svc.namespace)
	if n == nil {
		return serverKey{}, false
	}
	k := serverKey{ns: n.version, mesh: e.st.meshVersion}
	if r := e.ns(root); r != nil {
		k.root = r.version
	}
	return k, true
}

// summary returns svc's servers in env e from the service's cache, storing
// them there first when the cache holds another configuration's; nil when
// e's servers cannot be cached (serverKey).
func (ev *serviceEval) summary(e int) *serverSummary {
	if ev.sameServers {
		e = 0
	}
	if ev.summaryTried[e] {
		return ev.summaries[e]
	}
	ev.summaryTried[e] = true
	k, ok := ev.envs[e].serverKey(ev.svc)
	if !ok {
		return nil
	}
	if s := ev.svc.servers.Load(); s != nil && s.key == k {
		ev.summaries[e] = s
		return s
	}
	n, ports := len(ev.svc.members), len(ev.svc.ports)
	s := &serverSummary{key: k, targets: make([][]int32, ports), modes: make([][]serverPolicy, ports)}
	targets, modes := make([]int32, 0, n*ports), make([]serverPolicy, 0, n*ports)
	for pi := range ev.svc.ports {
		targets = append(targets, ev.computeTargetPorts(pi)...)
		modes = append(modes, ev.computeServerModes(e, pi)...)
		s.targets[pi], s.modes[pi] = targets[pi*n:(pi+1)*n:(pi+1)*n], modes[pi*n:(pi+1)*n:(pi+1)*n]
	}
	s.workloads = slices.Clone(ev.workloads[e])
	ev.svc.servers.Store(s)
	ev.summaries[e] = s
	return s
}
