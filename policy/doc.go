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
//     that match some of its pods; and, beside them, every namespace that has
//     a captured pod or is labelled ambient (ztunnel clients).
//   - Names print as name/namespace, also for the mesh policy
//     (default/istio-system): the Deep-Dive's "default/" was the
//     cluster-scoped MeshPolicy of Istio 1.1, which no longer exists.
//   - STATUS is OK or CONFLICT; CLIENT says AUTO when auto mTLS decides, and
//     the verdict of an AUTO row is that of every endpoint's resolved wire.
//
// # Ambient mode
//
// Transcribed from the same tree (semantics: istio-mtls-semantics-extended.md
// §1 and §5), in ambient*.go:
//
//   - Capture: the istio-cni node agent's default enablement selectors
//     (cni/pkg/util/enablement_selector.go): a pod labelled
//     istio.io/dataplane-mode=ambient, or any pod of a namespace so labelled
//     unless the pod says none; never a pod with a sidecar (sidecar wins), a
//     host-network pod or one in kube-system. A pod carrying
//     ambient.istio.io/redirection=enabled is captured, as istiod trusts it.
//     Ambient is assumed on in istiod (PILOT_ENABLE_AMBIENT, HBONE sending)
//     as soon as a pod is captured or labelled for the tunnel.
//   - Server, captured pod: pilot/pkg/serviceregistry/ambient authorization.go
//     convertedSelectorPeerAuthentications and convertPeerAuthentication turn
//     PeerAuthentications into ztunnel DENY policies; HBONE carries an identity
//     and is always accepted, plaintext is refused where a referenced policy
//     denies connections without one (SERVER HBONE), else accepted
//     (HBONE/HTTP). DISABLE behaves as PERMISSIVE. Istio's code is followed
//     where it differs from the API's promise (§1.5): a DISABLE port under an
//     inherited STRICT keeps refusing plaintext (quirk A); a namespace policy
//     without a mode above a workload policy with a PERMISSIVE port drops
//     STRICT on every port (quirk B); a STRICT port of a PERMISSIVE workload
//     under a STRICT mesh with no namespace mode accepts plaintext (quirk C).
//     A root-namespace policy with selector {} is not mesh-wide for ztunnel.
//     Ties of creationTimestamp within a level are broken by name as for
//     sidecars: Istio's ambient index keeps its informer's list order, which
//     changes from one istiod run to the next.
//   - Server, sidecar: a sidecar labelled networking.istio.io/tunnel=http
//     terminates HBONE on 15008, where PeerAuthentication does not apply
//     (listener_inbound.go buildInboundHBONEListeners).
//   - Sidecar client: cluster_tls.go applyHBONETransportSocketMatches and
//     endpoint_builder.go: HBONE to every tunnel-capable endpoint (captured,
//     or labelled for the tunnel) without tlsMode=istio, whatever the rule's
//     mode (auto, DISABLE, ISTIO_MUTUAL since 1.25); SIMPLE and MUTUAL go
//     inside the tunnel (hbone_tls, a conflict like SIMPLE to a sidecar).
//     ORIGINAL_DST clusters (headless, PASSTHROUGH) never tunnel
//     (istio/istio#54921): auto mTLS sends them plaintext.
//   - Ambient client views: the captured pods of a namespace, or a namespace
//     labelled ambient, are a client view of their own (CLIENT ZTUNNEL,
//     printed ns(ztunnel)). ztunnel reads no DestinationRule: HBONE to
//     tunnel-capable endpoints, plaintext to the others (ztunnel
//     src/proxy/outbound.rs build_request). Every ztunnel view sees the same
//     row, so rows are built once for all of them.
//   - Waypoints: a Service bound by istio.io/use-waypoint (its own label,
//     else its namespace's; none opts out; istio.io/use-waypoint-namespace
//     names the waypoint's namespace) is reached by ztunnel clients through
//     the waypoint (CLIENT WAYPOINT). The waypoint's rule is looked up as a
//     client in the waypoint's namespace, skipping workloadSelector rules
//     (DefaultSidecarScopeForGateway, inbound direction); SIMPLE and MUTUAL
//     make it originate TLS (WAYPOINT+TLS), anything else sends raw
//     (cluster_waypoint.go buildWaypointTLSContext). It sends HBONE to
//     tunnel-capable endpoints and plaintext to the others, never Istio mTLS.
//     Sidecars bypass waypoints. The waypoint is assumed to exist and to
//     handle service traffic; workload waypoints (pod-addressed traffic)
//     are not modelled.
//
// ServiceEntries and WorkloadEntries (serviceentry.go) and Sidecar egress
// scoping (sidecarscope.go) have their own rules, listed in those files.
//
// Not modelled: gateways, multi-network meshes, PILOT_PREFER_SENDING_HBONE,
// PILOT_ENABLE_EDS_FOR_HEADLESS_SERVICES, per-proxy DISABLE_HBONE_SEND,
// AuthorizationPolicy, Istio 1.24 and older (ISTIO_MUTUAL to a captured pod
// sends Istio mTLS there). For headless
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
