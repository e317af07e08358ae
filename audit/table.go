package audit

import (
	"cmp"
	"slices"
	"strings"

	"github.com/mtlsguard/mtlsguard/policy"
)

// maxListed bounds the client namespaces and pods a finding lists; the
// others are counted.
const maxListed = 10

// finding is one conflict row of the tls-check table, with its cause: the
// rows of several client views that read the same are one finding.
type finding struct {
	namespace, service string // the service's
	hostPort           string // host:port, host|subset:port for subsets
	server, client     string // the SERVER and CLIENT columns
	// authn and rule name the PeerAuthentications that set the server mode
	// and the DestinationRule the clients use (name/namespace); empty for
	// none (mesh default, auto mTLS).
	authn []string
	rule  string
	// clients are the client namespaces (the first maxListed, sorted);
	// moreClients counts the others. A group shared by more than
	// maxListed views (a mesh-wide rule reaches every namespace) is counted
	// in views, not listed: listing it costs a scan of every namespace.
	clients     []string
	moreClients int
	// pods are the failing server pods (namespace/name, the first
	// maxListed); morePods counts the others.
	pods     []string
	morePods int
	// reason is the first failing endpoint's, in tls-check's words.
	reason string
}

// key identifies a finding across recomputations: resultKey of its
// result.
func (f *finding) key() string {
	return strings.Join([]string{policyConflict, f.hostPort, f.server, f.client, dash(strings.Join(f.authn, ",")), dash(f.rule)}, " ")
}

// causes are the namespaces a finding is reported in: the service's and
// the blamed rule's, which is the DestinationRule the clients use, else the
// PeerAuthentications that set the server mode (see eventTargets).
func (f *finding) causes() []string {
	out := []string{f.namespace}
	if f.rule != "" {
		out = append(out, refNamespace(f.rule))
	} else {
		for _, a := range f.authn {
			out = append(out, refNamespace(a))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// refNamespace is the namespace of a name/namespace reference.
func refNamespace(r string) string {
	_, ns, _ := strings.Cut(r, "/")
	return ns
}

// conflicts turns table groups into findings, by service namespace.
// Groups that read the same (the same rule reached by different client
// views) make one finding.
func conflicts(groups []policy.Group) map[string][]finding {
	type acc struct {
		f        *finding
		clients  map[string]bool
		unlisted int // views of groups too large to list
		pods     map[string]bool
	}
	byKey := map[string]*acc{}
	var order []string
	for _, g := range groups {
		r := g.Row
		if r.Status != policy.Conflict {
			continue
		}
		name, rest, _ := strings.Cut(r.Host, ".")
		ns, _, _ := strings.Cut(rest, ".")
		f := finding{
			namespace: ns, service: name, hostPort: r.HostPort(),
			server: r.Server, client: r.ClientColumn,
		}
		if r.DestinationRule != "-" {
			f.rule = r.DestinationRule
		}
		for _, a := range strings.Split(r.AuthnPolicy, ",") {
			if a != "-" && a != "" {
				f.authn = append(f.authn, a)
			}
		}
		k := f.key()
		a, ok := byKey[k]
		if !ok {
			a = &acc{f: &f, clients: map[string]bool{}, pods: map[string]bool{}}
			byKey[k] = a
			order = append(order, k)
		}
		if n := g.Views.Len(); n > maxListed {
			a.unlisted += n
		} else {
			for _, ns := range g.Views.Namespaces() {
				a.clients[ns] = true
			}
		}
		for _, ep := range r.Endpoints {
			if !ep.OK {
				if a.f.reason == "" {
					a.f.reason = ep.Reason
				}
				a.pods[ep.Pod] = true
			}
		}
	}
	out := map[string][]finding{}
	for _, k := range order {
		a := byKey[k]
		a.f.clients, a.f.moreClients = firstSorted(a.clients)
		a.f.moreClients += a.unlisted
		a.f.pods, a.f.morePods = firstSorted(a.pods)
		out[a.f.namespace] = append(out[a.f.namespace], *a.f)
	}
	for _, fs := range out {
		sortFindings(fs)
	}
	return out
}

func sortFindings(fs []finding) {
	slices.SortFunc(fs, func(a, b finding) int {
		if c := cmp.Compare(a.service, b.service); c != 0 {
			return c // before building the keys, which allocates
		}
		return cmp.Compare(a.key(), b.key())
	})
}

// firstSorted returns the first maxListed members of a set, sorted, and how
// many are left out.
func firstSorted(set map[string]bool) ([]string, int) {
	l := make([]string, 0, len(set))
	for k := range set {
		l = append(l, k)
	}
	slices.Sort(l)
	if len(l) > maxListed {
		return l[:maxListed], len(l) - maxListed
	}
	return l, 0
}

// fullTable computes every conflict of the state.
func fullTable(st *policy.State, yield func()) (map[string][]finding, error) {
	groups, err := st.Table(policy.Query{Conflicts: true, Yield: yield})
	if err != nil {
		return nil, err
	}
	return conflicts(groups), nil
}

// namespaceTable computes the conflicts of the named services of one
// namespace.
func namespaceTable(st *policy.State, namespace string, services []string) ([]finding, error) {
	domain := st.Mesh().ClusterDomain
	var groups []policy.Group
	for _, svc := range services {
		g, err := st.Table(policy.Query{Host: svc + "." + namespace + ".svc." + domain, Conflicts: true})
		if err != nil {
			return nil, err
		}
		groups = append(groups, g...)
	}
	return conflicts(groups)[namespace], nil
}
