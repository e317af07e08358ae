package webhook

// What a denial or warning may name. A conflict row names client
// namespaces, the service's host (which holds its namespace), and the
// PeerAuthentications and DestinationRule that decided it, from any
// namespace; an identity conflict also names the server pods' service
// accounts and the rule's subjectAltNames. With --disclose=permitted the requester sees a name only if
// they may get the object it names; the rest is counted ("and 12 more")
// or withheld. The audit log, which only administrators read, keeps every
// name.

import (
	"context"
	"strings"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
)

const (
	// withheld replaces a name the requester may not read.
	withheld = "(withheld)"
	// maxNamespaceChecks is the number of client namespaces of a row that
	// are checked; the others are counted unnamed.
	maxNamespaceChecks = 2 * maxNamespaces
	// accessParallelism bounds the SubjectAccessReviews of one request in
	// flight.
	accessParallelism = 8
)

// capped is v with at most maxNamespaces client namespaces named per row.
func (v verdict) capped() verdict {
	out := v
	out.conflicts = make([]conflict, len(v.conflicts))
	for i, c := range v.conflicts {
		if len(c.namespaces) > maxNamespaces {
			c.moreNamespaces += len(c.namespaces) - maxNamespaces
			c.namespaces = c.namespaces[:maxNamespaces]
		}
		out.conflicts[i] = c
	}
	return out
}

// disclosure decides which names of a verdict one requester may see.
type disclosure struct {
	access AccessReviewer
	user   authenticationv1.UserInfo
	// known needs no check: the namespace and the object being written.
	namespace, object string
	domain            string
}

// question is one thing the requester may or may not get.
type question struct{ group, resource, namespace, name string }

// filter returns v with the names the requester may not get removed, and
// capped. A failed check (an API error, the deadline) withholds its name:
// disclosure fails closed, the admission answer does not change.
func (d disclosure) filter(ctx context.Context, v verdict) verdict {
	var qs []question
	for _, c := range v.conflicts {
		if q, ok := d.hostQuestion(c.column(0)); ok {
			qs = append(qs, q)
		}
		for _, ref := range refs(c.column(4)) {
			qs = append(qs, d.refQuestion("security.istio.io", "peerauthentications", ref))
		}
		for _, ref := range refs(c.column(5)) {
			qs = append(qs, d.refQuestion("networking.istio.io", "destinationrules", ref))
		}
		for _, ns := range c.namespaces[:min(len(c.namespaces), maxNamespaceChecks)] {
			qs = append(qs, question{resource: "namespaces", namespace: ns, name: ns})
		}
		qs = append(qs, identityQuestions(c)...)
	}
	may := d.ask(ctx, qs)

	out := v
	out.conflicts = make([]conflict, len(v.conflicts))
	for i, c := range v.conflicts {
		cols := append([]string(nil), c.columns...)
		if q, ok := d.hostQuestion(c.column(0)); ok && !may[q] {
			cols[0] = withheld + c.column(0)[strings.LastIndexByte(c.column(0), ':'):]
		}
		cols[4] = d.keepRefs(c.column(4), "security.istio.io", "peerauthentications", may)
		cols[5] = d.keepRefs(c.column(5), "networking.istio.io", "destinationrules", may)
		var named []string
		for _, ns := range c.namespaces[:min(len(c.namespaces), maxNamespaceChecks)] {
			if may[question{resource: "namespaces", namespace: ns, name: ns}] && len(named) < maxNamespaces {
				named = append(named, ns)
			}
		}
		out.conflicts[i] = conflict{
			columns:        cols,
			namespaces:     named,
			moreNamespaces: c.moreNamespaces + len(c.namespaces) - len(named),
		}
		out.conflicts[i].rejected, out.conflicts[i].sans = keepIdentities(c, cols[5], may)
	}
	return out
}

// ask puts the questions to the reviewer, each once, a few at a time.
// The request's own namespace and object are known: no question.
func (d disclosure) ask(ctx context.Context, qs []question) map[question]bool {
	may := map[question]bool{}
	var todo []question
	for _, q := range qs {
		if _, seen := may[q]; seen {
			continue
		}
		known := q.namespace == d.namespace && (q.resource == "namespaces" || q.name == d.object && q.resource == "destinationrules" || q.name == d.object && q.resource == "peerauthentications")
		may[q] = known
		if !known && d.access != nil {
			todo = append(todo, q)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, accessParallelism)
	for _, q := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ok, err := d.access.Allowed(ctx, d.user, authorizationv1.ResourceAttributes{
				Verb: "get", Group: q.group, Resource: q.resource, Namespace: q.namespace, Name: q.name,
			})
			mu.Lock()
			may[q] = ok && err == nil
			mu.Unlock()
		}()
	}
	wg.Wait()
	return may
}

// hostQuestion is the Service a HOST:PORT column names, if its host is a
// cluster service (name.namespace.svc.<domain>, maybe |subset).
func (d disclosure) hostQuestion(hostPort string) (question, bool) {
	host := hostPort[:len(hostPort)-len(hostPortSuffix(hostPort))]
	host = strings.TrimSuffix(host, ".svc."+d.domain)
	name, ns, ok := strings.Cut(host, ".")
	if !ok || strings.Contains(ns, ".") || ns == "" || host == hostPort {
		return question{}, false
	}
	return question{resource: "services", namespace: ns, name: name}, true
}

// hostPortSuffix is the |subset:port tail of a HOST:PORT column.
func hostPortSuffix(hostPort string) string {
	if i := strings.IndexByte(hostPort, '|'); i >= 0 {
		return hostPort[i:]
	}
	if i := strings.LastIndexByte(hostPort, ':'); i >= 0 {
		return hostPort[i:]
	}
	return ""
}

// refs splits a policy column ("name/namespace", comma-separated, or "-").
func refs(column string) []string {
	if column == "" || column == "-" {
		return nil
	}
	return strings.Split(column, ",")
}

func (d disclosure) refQuestion(group, resource, ref string) question {
	name, ns, _ := strings.Cut(ref, "/")
	return question{group: group, resource: resource, namespace: ns, name: name}
}

// keepRefs renders a policy column with the names the requester may not
// get withheld.
func (d disclosure) keepRefs(column, group, resource string, may map[question]bool) string {
	rs := refs(column)
	if rs == nil {
		return column
	}
	for i, r := range rs {
		if !may[d.refQuestion(group, resource, r)] {
			rs[i] = withheld
		}
	}
	return strings.Join(rs, ",")
}
