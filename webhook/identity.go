package webhook

// Why an identity conflict fails. A DestinationRule whose subjectAltNames
// name none of a server pod's SPIFFE identity makes a CONFLICT row whose
// columns (mTLS against ISTIO_MUTUAL) look fine; the row alone does not
// say why. Denials, warnings and the audit log add a line naming the
// rejected identities and the subjectAltNames, e.g.
//
//	httpbin.foo.svc.cluster.local:8000: server identity spiffe://cluster.local/ns/foo/sa/httpbin not in subjectAltNames [spiffe://cluster.local/ns/foo/sa/other]

import (
	"fmt"
	"slices"
	"strings"
)

const (
	// maxRejected is the number of rejected identities a line names.
	maxRejected = 3
	// maxSANs is the number of subjectAltNames a line names.
	maxSANs = 5
	// noIdentity stands for an endpoint without one (a WorkloadEntry that
	// names no service account).
	noIdentity = "(none)"
)

// identityWhy says why the client rejects the servers of c, or "" when its
// subjectAltNames are not why. long spells it out; otherwise it is compact,
// for warnings.
func identityWhy(c conflict, long bool) string {
	if len(c.rejected) == 0 {
		return ""
	}
	return whyText(c.rejected, c.sans, long)
}

// identityWhyUnder is the compact identityWhy with the prefix the listed
// identities and subjectAltNames share (spiffe://<trust domain>/ns/<ns>/,
// usually) said once, for a warning the full names do not fit; "" when they
// share no more than the scheme.
func identityWhyUnder(c conflict) string {
	if len(c.rejected) == 0 {
		return ""
	}
	ids, sans := c.rejected[:min(len(c.rejected), maxRejected)], c.sans[:min(len(c.sans), maxSANs)]
	shown := append(slices.Clone(ids), sans...)
	prefix := ids[0]
	for _, s := range shown {
		for !strings.HasPrefix(s, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	prefix = prefix[:strings.LastIndexByte(prefix, '/')+1]
	if len(prefix) <= len("spiffe://") || slices.Contains(shown, prefix) {
		return ""
	}
	trim := func(l []string, all int) []string {
		out := make([]string, 0, all)
		for _, s := range l {
			out = append(out, strings.TrimPrefix(s, prefix))
		}
		// Those not listed are counted by whyText.
		return append(out, make([]string, all-len(l))...)
	}
	return "under " + prefix + ": " + whyText(trim(ids, len(c.rejected)), trim(sans, len(c.sans)), false)
}

// whyText renders rejected identities and subjectAltNames, spelled out
// when long, else compact.
func whyText(rejected, sans []string, long bool) string {
	subject, list, sep, more := "server identity", "subjectAltNames", ", ", " and %d more"
	if !long {
		subject, list, sep, more = "identity", "SANs", ",", ",+%d"
	}
	if len(rejected) > 1 {
		subject = strings.TrimSuffix(subject, "y") + "ies"
	}
	return fmt.Sprintf("%s %s not in %s [%s]", subject, listFirst(rejected, maxRejected, sep, more), list, listFirst(sans, maxSANs, sep, more))
}

// listFirst joins the first n of l with sep, then formats the number left
// out with more.
func listFirst(l []string, n int, sep, more string) string {
	shown := make([]string, 0, min(len(l), n))
	for _, s := range l[:min(len(l), n)] {
		if s == "" {
			s = noIdentity
		}
		shown = append(shown, s)
	}
	out := strings.Join(shown, sep)
	if len(l) > n {
		out += fmt.Sprintf(more, len(l)-n)
	}
	return out
}

// identityLines are the denial's lines explaining the identity conflicts
// among its rows, one per row, after the table.
func identityLines(v verdict) []string {
	var out []string
	for _, c := range v.conflicts {
		if why := identityWhy(c, true); why != "" {
			out = append(out, c.column(0)+": "+why)
		}
	}
	return out
}

// identityWarning is the warning that follows c's row warning when c is an
// identity conflict, "" otherwise: the most it can say in maxWarning
// characters, the spelled-out form first.
func identityWarning(c conflict, domain string) string {
	long, compact := identityWhy(c, true), identityWhy(c, false)
	if long == "" {
		return ""
	}
	short := strings.Replace(c.column(0), ".svc."+domain, "", 1)
	under := identityWhyUnder(c)
	for _, s := range []string{short + ": " + long, long, short + ": " + compact, compact, under} {
		if s != "" && len(s) <= maxWarning {
			return s
		}
	}
	if under != "" {
		return clip(under)
	}
	return clip(compact)
}

// serviceAccountQuestion is the ServiceAccount a SPIFFE identity
// (spiffe://<trust domain>/ns/<namespace>/sa/<name>) names, which a
// requester must be able to get to see it.
func serviceAccountQuestion(id string) (question, bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return question{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" || parts[2] == "" || parts[4] == "" {
		return question{}, false
	}
	return question{resource: "serviceaccounts", namespace: parts[2], name: parts[4]}, true
}

// identityQuestions are what the requester must be allowed to get to see
// c's identity line: each rejected identity's ServiceAccount.
func identityQuestions(c conflict) []question {
	var qs []question
	for _, id := range c.rejected[:min(len(c.rejected), maxRejected)] {
		if q, ok := serviceAccountQuestion(id); ok {
			qs = append(qs, q)
		}
	}
	return qs
}

// keepIdentities is c's rejected identities and subjectAltNames as the
// requester may see them: an identity whose ServiceAccount they may not
// get is withheld, and the subjectAltNames are withheld unless they may
// get the DestinationRule (shown as column, after keepRefs) that holds them.
func keepIdentities(c conflict, ruleColumn string, may map[question]bool) (rejected, sans []string) {
	if len(c.rejected) == 0 {
		return nil, nil
	}
	for i, id := range c.rejected {
		q, ok := serviceAccountQuestion(id)
		switch {
		case id == "":
			rejected = append(rejected, id) // names nothing
		case ok && i < maxRejected && may[q]:
			rejected = append(rejected, id)
		default:
			rejected = append(rejected, withheld)
		}
	}
	sans = c.sans
	if strings.Contains(ruleColumn, withheld) || ruleColumn == "-" {
		sans = []string{withheld}
	}
	return rejected, sans
}
