// Package webhook is mtlsguard's validating admission webhook. A
// DestinationRule whose TLS mode disagrees with the server's
// PeerAuthentication is valid YAML, and Istio accepts it: the first sign of
// the mistake is 503s in production. The API server sends every
// DestinationRule and PeerAuthentication write (create, update, delete, in
// every served version) to this webhook, which replays it against an
// informer-fed copy of the cluster (policy.State) and asks the engine
// which tls-check rows it turns into new conflicts.
//
// The answer depends on the mode of the object's namespace, the label
// mtlsguard.io/mode (enforce, audit, off), else --default-mode:
//
//   - no new conflict: allowed. Conflicts that already exist never block an
//     unrelated write, and a write that only removes conflicts is allowed.
//   - enforce: denied, 403 Forbidden, with the rows in the message.
//   - audit: allowed, one warning per row, and the audit annotations
//     "decision" (audit-allowed; enforce-denied on denials) and "conflicts"
//     (the rows).
//
// Server-side dry-run gets the same answer; the webhook has no side
// effects. Until every informer has synced, requests are answered per
// --unsynced and never from a half-filled cache. An object the engine
// cannot read is rejected with 400 Bad Request, naming the field; a failure
// of the engine is a 500, and the webhook configuration's failurePolicy
// decides what the API server does with it. Deletes in a namespace that is
// being deleted are always allowed, so a namespace never hangs in
// Terminating.
package webhook
