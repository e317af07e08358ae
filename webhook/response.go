package webhook

// Every admission response, and the text in it, is built here.

import (
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

const (
	// maxRows is the number of conflict rows a denial or the warnings list
	// before "and N more".
	maxRows = 10
	// maxNamespaces is the number of client namespaces a row lists.
	maxNamespaces = 5
	// maxWarning is the longest warning: Kubernetes asks for under 120
	// characters.
	maxWarning = 119

	warnUnsynced = "mtlsguard: cache not synced, not checked"

	// Audit annotation keys; the API server prefixes them with the webhook
	// name, e.g. destinationrules.mtlsguard.io/decision.
	annotationDecision  = "decision"
	annotationConflicts = "conflicts"
	decisionDenied      = "enforce-denied"
	decisionAudited     = "audit-allowed"
	decisionTimeout     = "timeout"
)

// object identifies the object written, for messages.
type object struct {
	kind      kind
	namespace string
	name      string
	operation admissionv1.Operation
}

func (o object) String() string {
	return o.kind.gk.Kind + " " + o.namespace + "/" + o.name
}

// allowed admits a request.
func allowed(warnings ...string) admission.Response {
	return admission.Allowed("").WithWarnings(warnings...)
}

// unsynced answers a request that arrived before the cache synced.
func unsynced(u Unsynced) admission.Response {
	if u == UnsyncedDeny {
		return statusResponse(apierrors.NewServiceUnavailable(warnUnsynced))
	}
	return allowed(warnUnsynced)
}

// timedOut answers a write whose decision was not finished by the decision
// timeout: refused when deny is set, else admitted with a warning that says
// how to check it later. Either way the audit log records it.
func timedOut(o object, timeout time.Duration, deny bool, warnings []string) admission.Response {
	var resp admission.Response
	if deny {
		resp = statusResponse(apierrors.NewServiceUnavailable(timeoutMessage(o, timeout)))
		resp = resp.WithWarnings(warnings...)
	} else {
		resp = allowed(append(warnings, timeoutWarning(timeout))...)
	}
	resp.AuditAnnotations = map[string]string{annotationDecision: decisionTimeout}
	return resp
}

// timeoutWarning tells the writer that a write was admitted unchecked, and
// how to check it.
func timeoutWarning(timeout time.Duration) string {
	return clip(fmt.Sprintf("mtlsguard: too large to check in %v, admitted unchecked; check later: tls-check or kubectl apply --dry-run=server", timeout))
}

// timeoutMessage explains a write refused because it could not be checked
// in time.
func timeoutMessage(o object, timeout time.Duration) string {
	return fmt.Sprintf("mtlsguard: %s could not be checked in %v and is refused unchecked (--on-timeout=deny); "+
		"retry when the cluster is quieter, or check the change with tls-check", o, timeout)
}

// forbidden denies a write that creates new conflicts (enforce mode),
// showing the requester v; the audit log gets full. Warnings are kept:
// they explain the mode, not the conflicts.
func forbidden(o object, v, full verdict, warnings []string) admission.Response {
	status := metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusForbidden,
		Reason:  metav1.StatusReasonForbidden,
		Message: denialMessage(o, v),
		Details: &metav1.StatusDetails{Group: o.kind.gk.Group, Kind: o.kind.resource, Name: o.name},
	}
	resp := admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
	resp.AuditAnnotations = auditAnnotations(decisionDenied, full)
	return resp.WithWarnings(warnings...)
}

// audited admits a write that creates new conflicts (audit mode), with one
// warning per conflict of v; the audit log gets full.
func audited(v, full verdict, warnings []string, domain string) admission.Response {
	resp := allowed(append(warnings, conflictWarnings(v, domain)...)...)
	resp.AuditAnnotations = auditAnnotations(decisionAudited, full)
	return resp
}

// badRequest rejects an object the webhook or the engine cannot read; err
// names the object and the field.
func badRequest(err error) admission.Response {
	return statusResponse(apierrors.NewBadRequest(err.Error()))
}

// errored reports a failure of the webhook itself: 500, and the webhook's
// failurePolicy decides.
func errored(o object, err error) admission.Response {
	return statusResponse(apierrors.NewInternalError(fmt.Errorf("mtlsguard: checking %s: %w", o, err)))
}

func statusResponse(err *apierrors.StatusError) admission.Response {
	status := err.Status()
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}

// modeWarning explains that an unknown ModeLabel value was ignored.
func modeWarning(value string, used Mode) string {
	return clip(fmt.Sprintf("namespace label %s=%q is not enforce, audit or off; using %s", ModeLabel, value, used))
}

// denialMessage is the message of a denial: the object, the number of new
// conflicts and their tls-check rows, then why each identity conflict
// fails (identity.go). For bad-rule of the Deep-Dive:
//
//	DestinationRule default/bad-rule would create 1 new mTLS conflict:
//	HOST:PORT                                  STATUS       SERVER     CLIENT     AUTHN POLICY             DESTINATION RULE     CLIENT NAMESPACES
//	httpbin.default.svc.cluster.local:8000     CONFLICT     mTLS       HTTP       default/istio-system     bad-rule/default     default
func denialMessage(o object, v verdict) string {
	var b strings.Builder
	if o.operation == admissionv1.Delete {
		b.WriteString("deleting ")
	}
	fmt.Fprintf(&b, "%s would create %s:\n", o, plural(v.total, "new mTLS conflict"))
	tw := tabwriter.NewWriter(&b, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "HOST:PORT\tSTATUS\tSERVER\tCLIENT\tAUTHN POLICY\tDESTINATION RULE\tCLIENT NAMESPACES")
	for _, c := range v.conflicts {
		fmt.Fprintf(tw, "%s\t%s\n", strings.Join(c.columns, "\t"), namespaceList(c, ", ", " and %d more"))
	}
	tw.Flush()
	if more := v.total - len(v.conflicts); more > 0 {
		fmt.Fprintf(&b, "and %d more\n", more)
	}
	for _, line := range identityLines(v) {
		b.WriteString(line + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// conflictWarnings renders one warning per conflict row, at most maxRows,
// each followed by why for an identity conflict, then "and N more".
func conflictWarnings(v verdict, domain string) []string {
	out := make([]string, 0, len(v.conflicts)+1)
	for _, c := range v.conflicts {
		out = append(out, warningLine(c, domain))
		if why := identityWarning(c, domain); why != "" {
			out = append(out, why)
		}
	}
	if more := v.total - len(v.conflicts); more > 0 {
		out = append(out, fmt.Sprintf("and %s", plural(more, "more new mTLS conflict")))
	}
	return out
}

// warningLine renders a conflict row on one line of at most maxWarning
// characters, the tls-check columns as key=value:
//
//	httpbin.default:8000 CONFLICT server=mTLS client=HTTP authn=default/istio-system dr=bad-rule/default clients=default
//
// It uses the service's full host when that fits, else its name.namespace
// form; then it drops the policy names, then it clips.
func warningLine(c conflict, domain string) string {
	short := strings.Replace(c.column(0), ".svc."+domain, "", 1)
	for _, s := range []string{rowText(c, c.column(0), true), rowText(c, short, true)} {
		if len(s) <= maxWarning {
			return s
		}
	}
	return clip(rowText(c, short, false))
}

// rowText renders a conflict row on one line, with hostPort as its
// HOST:PORT and, when policies is set, the AUTHN POLICY and DESTINATION
// RULE columns.
func rowText(c conflict, hostPort string, policies bool) string {
	clients := namespaceList(c, ",", ",+%d")
	if !policies {
		return fmt.Sprintf("%s %s server=%s client=%s clients=%s", hostPort, c.column(1), c.column(2), c.column(3), clients)
	}
	return fmt.Sprintf("%s %s server=%s client=%s authn=%s dr=%s clients=%s",
		hostPort, c.column(1), c.column(2), c.column(3), c.column(4), c.column(5), clients)
}

func (c conflict) column(i int) string {
	if i < len(c.columns) {
		return c.columns[i]
	}
	return ""
}

// namespaceList joins a row's client namespaces with sep, then formats the
// number of namespaces left out with more.
func namespaceList(c conflict, sep, more string) string {
	s := strings.Join(c.namespaces, sep)
	if c.moreNamespaces > 0 {
		s += fmt.Sprintf(more, c.moreNamespaces)
	}
	if s == "" {
		return "-"
	}
	return s
}

// auditAnnotations record the decision and every conflict row, with full
// hosts and no length limit, in the audit log.
func auditAnnotations(decision string, v verdict) map[string]string {
	rows := make([]string, 0, len(v.conflicts)+1)
	for _, c := range v.conflicts {
		row := rowText(c, c.column(0), true)
		if why := identityWhy(c, true); why != "" {
			row += ": " + why
		}
		rows = append(rows, row)
	}
	if more := v.total - len(v.conflicts); more > 0 {
		rows = append(rows, fmt.Sprintf("and %d more", more))
	}
	return map[string]string{
		annotationDecision:  decision,
		annotationConflicts: strings.Join(rows, "; "),
	}
}

// clip shortens s to maxWarning characters, marking the cut with "...".
func clip(s string) string {
	if len(s) <= maxWarning {
		return s
	}
	cut := maxWarning - len("...")
	// Do not split a UTF-8 sequence.
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// uncheckedWarning tells the writer of an audit-mode write that mtlsguard
// could not read it, and why.
func uncheckedWarning(err error) string {
	return clip("mtlsguard: not checked: " + err.Error())
}
