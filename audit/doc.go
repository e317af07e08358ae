// Package audit keeps mtlsguard's live conflict table: the mTLS conflicts
// that exist in the cluster right now, whoever caused them. Admission only
// sees DestinationRule and PeerAuthentication writes; a Pod without a
// sidecar joining a Service, a Service's targetPort moving, a namespace
// relabelled, the mesh ConfigMap turning auto mTLS off, or a write admitted
// while the webhook was down all create conflicts no admission request
// could catch.
//
// The Auditor reads the same policy.State the webhook answers from (through
// a Source, which webhook.Store is), is told of every object the cache
// applies (Observe), and recomputes what the change can reach: a Pod or
// Service event recomputes the services of its namespace, unless it changes
// the namespace's set of client views; anything else recomputes the whole
// table. Recomputations are debounced to at most one a second, and run
// outside admission: a decision never waits for the audit.
//
// Only the leader (controller-runtime leader election) runs the Auditor. It
// publishes one report per namespace (openreports.io Report or
// wgpolicyk8s.io PolicyReport, per --report-api) holding a conflicting
// service or a rule that causes a conflict, records an Event on the rule
// that causes a new conflict and another when it is resolved, and exports
// the mtlsguard_conflicts, mtlsguard_audit_duration_seconds and
// mtlsguard_audit_last_success_timestamp_seconds metrics.
package audit
