package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mtlsguard/mtlsguard/policy"
)

// result is one result of a report. Both report APIs share its shape.
type result = openreportsv1alpha1.ReportResult

const (
	reportSource = "mtlsguard"
	// policyConflict is the policy of conflict results: the server does not
	// accept what its clients send.
	policyConflict = "mtls-conflict"
	// policyTLSMode is the policy of pods that run a sidecar without the
	// injector's tlsMode label.
	policyTLSMode = "sidecar-tls-mode"
	category      = "Istio mTLS"

	// maxResults bounds the results of one report (an object must stay far
	// below etcd's 1.5 MiB); the summary counts every result.
	maxResults = 500
)

// Properties of results.
const (
	propService         = "service" // host:port, host|subset:port
	propServer          = "server"
	propClient          = "client"
	propAuthnPolicy     = "authnPolicy"
	propDestinationRule = "destinationRule"
	propClients         = "clientNamespaces"
	propEndpoints       = "endpoints"
	propPod             = "pod"
)

// Kinds the results and events refer to.
const (
	kindService            = "Service"
	kindPod                = "Pod"
	kindDestinationRule    = "DestinationRule"
	kindPeerAuthentication = "PeerAuthentication"
)

var apiVersions = map[string]string{
	kindService:            "v1",
	kindPod:                "v1",
	kindDestinationRule:    "networking.istio.io/v1",
	kindPeerAuthentication: "security.istio.io/v1",
}

// reference builds an object reference; uid may be "" when unknown.
func reference(kind, namespace, name string, uids func(ref) types.UID) corev1.ObjectReference {
	r := corev1.ObjectReference{APIVersion: apiVersions[kind], Kind: kind, Namespace: namespace, Name: name}
	if uids != nil {
		r.UID = uids(ref{kind, namespace, name})
	}
	return r
}

// nameRef splits name/namespace.
func nameRef(kind, r string, uids func(ref) types.UID) corev1.ObjectReference {
	name, ns, _ := strings.Cut(r, "/")
	return reference(kind, ns, name, uids)
}

// subjects are the objects a conflict comes from: the service, the
// DestinationRule, the PeerAuthentications.
func (f *finding) subjects(uids func(ref) types.UID) []corev1.ObjectReference {
	out := []corev1.ObjectReference{reference(kindService, f.namespace, f.service, uids)}
	if f.rule != "" {
		out = append(out, nameRef(kindDestinationRule, f.rule, uids))
	}
	for _, a := range f.authn {
		out = append(out, nameRef(kindPeerAuthentication, a, uids))
	}
	return out
}

// message is the one line a person acts on: the service port, what is
// wrong and what to change (tls-check's reason), and where.
func (f *finding) message() string {
	return fmt.Sprintf("%s: %s (server pods %s)", f.hostPort, f.reason, listed(f.pods, f.morePods))
}

func listed(l []string, more int) string {
	s := strings.Join(l, ", ")
	if more > 0 {
		s += " and " + strconv.Itoa(more) + " more"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// conflictResult renders a finding.
func (f *finding) result(uids func(ref) types.UID) result {
	return result{
		Source:      reportSource,
		Policy:      policyConflict,
		Rule:        "server-accepts-client-tls",
		Category:    category,
		Severity:    "high",
		Result:      "fail",
		Scored:      true,
		Subjects:    f.subjects(uids),
		Description: f.message(),
		Properties: map[string]string{
			propService:         f.hostPort,
			propServer:          f.server,
			propClient:          f.client,
			propAuthnPolicy:     dash(strings.Join(f.authn, ",")),
			propDestinationRule: dash(f.rule),
			propClients:         listed(f.clients, f.moreClients),
			propEndpoints:       listed(f.pods, f.morePods),
		},
	}
}

// tlsModeResult is the warning for a pod that runs a sidecar but lacks the
// injector's tlsMode label.
func tlsModeResult(namespace, pod string) result {
	return result{
		Source:   reportSource,
		Policy:   policyTLSMode,
		Rule:     "tls-mode-label",
		Category: category,
		Severity: "medium",
		Result:   "warn",
		Subjects: []corev1.ObjectReference{reference(kindPod, namespace, pod, nil)},
		Description: fmt.Sprintf("pod %s/%s runs an Istio sidecar without the label %s=istio: auto mTLS sends it plaintext, "+
			"and a STRICT PeerAuthentication would then break its clients; restore the label the injector sets", namespace, pod, policy.TLSModeLabel),
		Properties: map[string]string{propPod: namespace + "/" + pod},
	}
}

// resultKey identifies a result across recomputations, to keep its
// timestamp.
func resultKey(r *result) string {
	p := r.Properties
	if r.Policy == policyTLSMode {
		return r.Policy + " " + p[propPod]
	}
	return strings.Join([]string{r.Policy, p[propService], p[propServer], p[propClient], p[propAuthnPolicy], p[propDestinationRule]}, " ")
}

// reportSet is the desired content of every report, by namespace.
type reportSet map[string][]result

// rendered is a finding as a result, with what laying it out needs. The
// Auditor keeps them per service namespace until that namespace is
// recomputed, so that publishing after a pod event renders one namespace.
type rendered struct {
	f      *finding
	key    string
	causes []string
	res    result
}

func render(fs []finding, uids func(ref) types.UID) []rendered {
	out := make([]rendered, len(fs))
	for i := range fs {
		f := &fs[i]
		out[i] = rendered{f: f, key: f.key(), causes: f.causes(), res: f.result(uids)}
	}
	return out
}

// buildReports lays the findings out per namespace: a conflict goes into
// the report of the service's namespace and of the blamed rule's. Conflicts
// whose service or rule is in a namespace labelled off, and pods in such
// namespaces, are left out. cache holds the rendered findings by service
// namespace and is filled in where missing. It returns the reported
// conflicts too.
func buildReports(table map[string][]finding, cache map[string][]rendered, snap snapshot, uids func(ref) types.UID) (reportSet, []*finding) {
	byNS := map[string][]*rendered{}
	var reported []*finding
	for ns, fs := range table {
		rs, ok := cache[ns]
		if !ok {
			rs = render(fs, uids)
			cache[ns] = rs
		}
		for i := range rs {
			r := &rs[i]
			if slices.ContainsFunc(r.causes, func(ns string) bool { return snap.off[ns] }) {
				continue
			}
			reported = append(reported, r.f)
			for _, ns := range r.causes {
				byNS[ns] = append(byNS[ns], r)
			}
		}
	}
	for ns, pods := range snap.noTLSMode {
		if snap.off[ns] {
			continue
		}
		for _, p := range pods {
			res := tlsModeResult(ns, p)
			byNS[ns] = append(byNS[ns], &rendered{key: resultKey(&res), res: res})
		}
	}
	out := make(reportSet, len(byNS))
	for ns, rs := range byNS {
		slices.SortFunc(rs, func(a, b *rendered) int { return cmp.Compare(a.key, b.key) })
		l := make([]result, len(rs))
		for i, r := range rs {
			l[i] = r.res
		}
		out[ns] = l
	}
	slices.SortFunc(reported, func(a, b *finding) int { return cmp.Compare(a.hostPort, b.hostPort) })
	return out, reported
}

// summarize counts results by outcome.
func summarize(rs []result) openreportsv1alpha1.ReportSummary {
	var s openreportsv1alpha1.ReportSummary
	for _, r := range rs {
		switch r.Result {
		case "fail":
			s.Fail++
		case "warn":
			s.Warn++
		case "pass":
			s.Pass++
		case "error":
			s.Error++
		case "skip":
			s.Skip++
		}
	}
	return s
}

// stamp sets each result's timestamp: the one it had in prev, else now.
func stamp(rs []result, prev []result, now metav1.Timestamp) {
	seen := make(map[string]metav1.Timestamp, len(prev))
	for i := range prev {
		seen[resultKey(&prev[i])] = prev[i].Timestamp
	}
	for i := range rs {
		if t, ok := seen[resultKey(&rs[i])]; ok {
			rs[i].Timestamp = t
		} else {
			rs[i].Timestamp = now
		}
	}
}
