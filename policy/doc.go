// Package policy decides, for a snapshot of a cluster, whether the mutual-TLS
// mode a server sidecar enforces (PeerAuthentication) and the TLS a client
// sidecar originates (DestinationRule, or auto mTLS) can work together, and
// which (client, host:port) pairs a proposed write would break.
//
// It is the engine behind the mtlsguard admission webhook and the tls-check
// command. It is pure: it imports no client, performs no I/O and keeps no
// global state. Callers build a State from objects (see NewState), keep it
// current with Apply and Remove, and ask it for a Table or a Decision.
//
// # Rules
//
// The rules transcribe Istio's control plane (1.24 and later, checked against
// istio/istio at eed52ebb66ad):
//
//   - Server mode: pilot/pkg/security/authn/policy_applier.go
//     ComposePeerAuthentication. Mesh (root namespace, empty selector) →
//     namespace → workload → port, UNSET inherits, the oldest policy of a level
//     wins (creationTimestamp, then name, then namespace), selectors in the
//     root namespace are ignored, portLevelMtls is keyed by the endpoint's
//     target port. A pod without a sidecar is NoSidecar: plaintext only.
//   - DestinationRule lookup: pilot/pkg/model/push_context.go destinationRule
//     and setDestinationRules, destination_rule.go mergeDestinationRule
//     (enhanced, exportTo-aware merging), sidecar.go SidecarScope.DestinationRule
//     (workloadSelector rules apply only to matching clients in their own
//     namespace; otherwise the last rule without a selector is used).
//   - Client TLS: pilot/pkg/networking/util GetPortLevelTrafficPolicy and
//     MergeSubsetTrafficPolicy (port-level settings replace, they do not
//     inherit), core/cluster_tls.go buildUpstreamTLSSettings and
//     applyUpstreamTLSSettings, xds/endpoints/mtls_checker.go.
//   - Auto mTLS: model.BestEffortInferServiceMTLSMode for the cluster (mesh and
//     namespace policies only; headless services are all or nothing) and the
//     per-endpoint tlsMode metadata, which honours the endpoint's own workload
//     and port-level DISABLE.
//   - Identity: a sidecar endpoint's certificate is
//     spiffe://<trustDomain>/ns/<ns>/sa/<serviceAccount>; an ISTIO_MUTUAL or
//     MUTUAL rule with tls.subjectAltNames rejects endpoints not listed
//     there (core/cluster_tls.go buildUpstreamTLSSettings; identity.go).
//
// # Choices where Istio leaves room
//
//   - A pod has a sidecar when it carries the label security.istio.io/tlsMode,
//     the annotation sidecar.istio.io/status, or a container named istio-proxy.
//     Auto mTLS, like Istio, looks only at the label value "istio".
//   - Pods in phase Succeeded or Failed are not endpoints; pending pods are,
//     since they are about to receive traffic.
//   - UDP and SCTP service ports are skipped: Istio builds no clusters for them.
//   - SIMPLE and MUTUAL are always a conflict with a sidecar server, as in
//     tls-check 1.4: whether the application terminates TLS itself is not
//     visible in configuration.
//   - A SIMPLE or MUTUAL rule with a credentialName and no workloadSelector
//     sends plaintext from sidecars, as Istio drops such TLS contexts.
//   - A service port with no endpoints has no conflict: there is nobody to
//     disagree with.
//   - A write without creationTimestamp (a file, or a create not yet stored)
//     sorts as the given time; the webhook passes the request time.
//   - Client views: every namespace that has a pod with a sidecar or is
//     labelled for injection, split by the workloadSelector DestinationRules
//     that match some of its pods.
//   - Names print as name/namespace, also for the mesh policy
//     (default/istio-system): the Deep-Dive's "default/" was the
//     cluster-scoped MeshPolicy of Istio 1.1, which no longer exists.
//   - STATUS is OK or CONFLICT; CLIENT says AUTO when auto mTLS decides, and
//     the verdict of an AUTO row is that of every endpoint's resolved wire.
//
// ServiceEntries and WorkloadEntries (serviceentry.go) and Sidecar egress
// scoping (sidecarscope.go) have their own rules, listed in those files.
//
// Not modelled: ambient mode, gateways, multi-network meshes. For headless
// services and PASSTHROUGH load balancing, subset rows list the subset's
// pods although Istio's ORIGINAL_DST cluster sends to the original
// destination address.
//
// Mesh-wide DestinationRule changes (host "*" or "*.local") touch every
// service; a mesh-level PeerAuthentication change touches only the
// namespaces whose starting mode (mesh, then namespace policy) it changes;
// everything else is evaluated only for the services and client namespaces
// it can reach. A verdict is a bitset of failing members per (port, subset,
// rule), memoized per service; rows are built only for what a decision
// reports (DecideFirst).
//
// # Concurrency
//
// A State is read by any number of goroutines at once. Clone returns a copy
// in O(1) that Apply and Remove change by replacing, never modifying, what
// the original shares (persistent maps for namespaces, pods and services);
// this is what lets the webhook publish a new state per event while
// decisions keep reading theirs.
package policy
