package oracle

import (
	"fmt"
	"runtime/debug"
	"sort"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/util"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/pkg/xds/endpoints"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/host"
	"istio.io/istio/pkg/config/kube"
	"istio.io/istio/pkg/config/protocol"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/workloadapi"
)

// Client TLS kinds reported in Pair.ClientSends.
const (
	Plaintext   = "plaintext"
	IstioMutual = "istio_mutual"
	SimpleTLS   = "simple_tls"
	MutualTLS   = "mutual_tls"
)

// ProxyIstioVersion is the Istio version announced by every simulated sidecar
// (the version of the istio.io/istio module this oracle is built against).
const ProxyIstioVersion = "1.31.0"

// Pair is one (client sidecar, service port [, subset], endpoint) answer.
type Pair struct {
	ClientPod     string `json:"client_pod"`
	Host          string `json:"host"`
	Port          int    `json:"port"`
	Subset        string `json:"subset"`
	ServerPod     string `json:"server_pod"`
	TargetPort    int    `json:"target_port"`
	ClientSends   string `json:"client_sends"`
	ServerAccepts bool   `json:"server_accepts"`
	OK            bool   `json:"ok"`
	Detail        string `json:"detail"`
	// ServerIdentity is the server sidecar's certificate identity;
	// SubjectAltNames the exact SANs the client checks it against;
	// IdentityOK their verdict when IdentityChecked (identity.go).
	ServerIdentity  string   `json:"server_identity"`
	SubjectAltNames []string `json:"subject_alt_names"`
	IdentityChecked bool     `json:"identity_checked"`
	IdentityOK      bool     `json:"identity_ok"`
}

// Less orders pairs by client pod, host, port, subset, then server pod: the
// order of Result.Pairs.
func (a Pair) Less(b Pair) bool {
	if a.ClientPod != b.ClientPod {
		return a.ClientPod < b.ClientPod
	}
	if a.Host != b.Host {
		return a.Host < b.Host
	}
	if a.Port != b.Port {
		return a.Port < b.Port
	}
	if a.Subset != b.Subset {
		return a.Subset < b.Subset
	}
	return a.ServerPod < b.ServerPod
}

// Result is the oracle output for one scenario.
type Result struct {
	Pairs []Pair `json:"pairs"`
	// Rejected lists Istio configs that failed Istio validation (not applied unless -keep-invalid).
	Rejected []string `json:"rejected,omitempty"`
	// Warnings lists validation warnings and ignored documents.
	Warnings []string `json:"warnings,omitempty"`
}

// Evaluate runs Istio's control plane on the scenario and computes all pairs.
func Evaluate(sc *Scenario) (*Result, error) {
	res := &Result{Pairs: []Pair{}, Rejected: sc.Rejected, Warnings: sc.Warnings}
	err := test.Wrap(func(t test.Failer) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		objs := sc.KubernetesObjects()
		if ambientOn() {
			objs = append(objs, sc.ambientKubeObjects()...)
		}
		fds := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
			KubernetesObjects: objs,
			Configs:           sc.Configs,
			MeshConfig:        sc.Mesh,
		})
		e := &evaluator{sc: sc, fds: fds, t: t, proxies: map[string]*proxyState{}}
		res.Pairs = e.run()
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

type evaluator struct {
	sc      *Scenario
	fds     *xds.FakeDiscoveryServer
	t       test.Failer
	proxies map[string]*proxyState
	// workloads are the ambient index's workloads by pod (ambient.go).
	workloads map[string]*workloadapi.Workload
}

type proxyState struct {
	pod   *corev1.Pod
	proxy *model.Proxy
	// client side (lazily built)
	clusters map[string]*cluster.Cluster
	clas     map[string]*endpoint.ClusterLoadAssignment
	// server side (lazily built)
	sim *simulation.Simulation
}

func (e *evaluator) state(pod *corev1.Pod) *proxyState {
	key := PodKey(pod)
	if ps, ok := e.proxies[key]; ok {
		return ps
	}
	lbls := map[string]string{}
	for k, v := range pod.Labels {
		lbls[k] = v
	}
	p := &model.Proxy{
		Type:            model.SidecarProxy,
		ID:              pod.Name + "." + pod.Namespace,
		IPAddresses:     []string{pod.Status.PodIP},
		ConfigNamespace: pod.Namespace,
		DNSDomain:       pod.Namespace + ".svc." + DomainSuffix,
		Labels:          lbls,
		Metadata: &model.NodeMetadata{
			Namespace:      pod.Namespace,
			Labels:         lbls,
			ClusterID:      constants.DefaultClusterName,
			IstioVersion:   ProxyIstioVersion,
			ServiceAccount: serviceAccount(pod),
		},
	}
	// The injector sets ENABLE_HBONE and the tunnel label together.
	for _, proto := range strings.Split(pod.Labels[tunnelLabel], ",") {
		if strings.TrimSpace(proto) == "http" {
			p.Metadata.EnableHBONE = true
		}
	}
	// What istiod does when a proxy connects (computeProxyState): labels from the pod, then targets/scope.
	p.SetWorkloadLabels(e.fds.Env())
	p = e.fds.SetupProxy(p)
	ps := &proxyState{pod: pod, proxy: p}
	e.proxies[key] = ps
	return ps
}

func serviceAccount(pod *corev1.Pod) string {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", DomainSuffix, pod.Namespace, sa)
}

func (ps *proxyState) outboundClusters(e *evaluator) map[string]*cluster.Cluster {
	if ps.clusters == nil {
		ps.clusters = map[string]*cluster.Cluster{}
		for _, c := range e.fds.Clusters(ps.proxy) {
			ps.clusters[c.Name] = c
		}
		ps.clas = map[string]*endpoint.ClusterLoadAssignment{}
	}
	return ps.clusters
}

// cla returns the ClusterLoadAssignment Istio's EDS generator builds for this proxy and cluster.
func (ps *proxyState) cla(e *evaluator, c *cluster.Cluster) *endpoint.ClusterLoadAssignment {
	if got, ok := ps.clas[c.Name]; ok {
		return got
	}
	var out *endpoint.ClusterLoadAssignment
	switch {
	case c.GetType() == cluster.Cluster_EDS:
		b := endpoints.NewEndpointBuilder(c.Name, ps.proxy, e.fds.PushContext())
		out = b.BuildClusterLoadAssignment(e.fds.Discovery.Env.EndpointIndex)
	case c.LoadAssignment != nil:
		out = c.LoadAssignment
	}
	ps.clas[c.Name] = out
	return out
}

func (ps *proxyState) simulation(e *evaluator) *simulation.Simulation {
	if ps.sim == nil {
		l := e.fds.Listeners(ps.proxy)
		ps.sim = &simulation.Simulation{
			Listeners: l,
			Routes:    e.fds.RoutesFromListeners(ps.proxy, l),
		}
	}
	return ps.sim
}

// endpointRef is one endpoint of a service port: a pod, or a workload
// outside Kubernetes (a WorkloadEntry or a ServiceEntry's inline endpoint,
// serviceentry.go).
type endpointRef struct {
	pod        *corev1.Pod
	vm         *vmWorkload
	targetPort int32
}

// key names the endpoint as Pair.ServerPod does: "namespace/name" for a
// pod, the engine's reference for a workload outside Kubernetes.
func (ep endpointRef) key() string {
	if ep.vm != nil {
		return ep.vm.key
	}
	return PodKey(ep.pod)
}

func (ep endpointRef) ip() string {
	if ep.vm != nil {
		return ep.vm.address
	}
	return ep.pod.Status.PodIP
}

func (ep endpointRef) labels() map[string]string {
	if ep.vm != nil {
		return ep.vm.labels
	}
	return ep.pod.Labels
}

// sidecar reports whether a proxy of Istio's serves the endpoint.
func (ep endpointRef) sidecar() bool {
	if ep.vm != nil {
		return ep.vm.sidecar()
	}
	return HasSidecar(ep.pod)
}

// svcPort is a service port as a client calls it: its number and the
// protocol the registry gives it.
type svcPort struct {
	port  int32
	proto protocol.Instance
}

// kubePort is the registry's view of a Kubernetes Service port.
func kubePort(sp corev1.ServicePort) svcPort {
	return svcPort{port: sp.Port, proto: kube.ConvertProtocol(sp.Port, sp.Name, sp.Protocol, sp.AppProtocol)}
}

func (e *evaluator) run() []Pair {
	var pairs []Pair
	var clients []*corev1.Pod
	for _, p := range e.sc.Pods {
		if HasSidecar(p) {
			clients = append(clients, p)
		}
	}
	for _, svc := range e.sc.Services {
		hostname := Hostname(svc)
		for _, sp := range svc.Spec.Ports {
			if sp.Protocol == corev1.ProtocolUDP || sp.Protocol == corev1.ProtocolSCTP {
				continue
			}
			var eps []endpointRef
			for _, pod := range e.sc.Pods {
				if Terminated(pod) || !Selects(svc, pod) {
					continue
				}
				tp, ok := ResolveTargetPort(pod, sp)
				if !ok {
					continue
				}
				eps = append(eps, endpointRef{pod: pod, targetPort: tp})
			}
			if len(eps) == 0 {
				continue
			}
			pairs = append(pairs, e.clientPairs(clients, hostname, kubePort(sp), eps)...)
			if ambientOn() {
				pairs = append(pairs, e.ztunnelPairs(hostname, kubePort(sp), eps)...)
			}
		}
	}
	if !ambientOn() {
		pairs = append(pairs, e.entryPairs(clients)...)
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].Less(pairs[j]) })
	return pairs
}

// clientPairs are the pairs of the sidecar clients with the endpoints eps
// of a service port: the default cluster, and every subset cluster a
// client has for the port.
func (e *evaluator) clientPairs(clients []*corev1.Pod, hostname string, sp svcPort, eps []endpointRef) []Pair {
	var pairs []Pair
	for _, client := range clients {
		cs := e.state(client)
		clusters := cs.outboundClusters(e)
		defaultName := model.BuildSubsetKey(model.TrafficDirectionOutbound, "", host.Name(hostname), int(sp.port))
		if clusters[defaultName] == nil && dropsTrafficWithoutCluster(cs) {
			continue // the request never reaches a server: no pair
		}
		for _, ep := range eps {
			pairs = append(pairs, e.evalPair(cs, clusters[defaultName], defaultName, hostname, sp, "", ep))
		}
		// Subset clusters this client has for the service port.
		for _, subset := range e.subsetsFor(cs, clusters, hostname, int(sp.port)) {
			name := model.BuildSubsetKey(model.TrafficDirectionOutbound, subset.name, host.Name(hostname), int(sp.port))
			for _, ep := range eps {
				if !labelsSubset(subset.labels, ep.labels()) {
					continue
				}
				pairs = append(pairs, e.evalPair(cs, clusters[name], name, hostname, sp, subset.name, ep))
			}
		}
	}
	return pairs
}

type subsetInfo struct {
	name   string
	labels map[string]string
}

// subsetsFor lists the subset clusters (outbound|port|subset|host) the client actually
// has, with the subset labels from the DestinationRule the client's sidecar scope resolves.
func (e *evaluator) subsetsFor(cs *proxyState, clusters map[string]*cluster.Cluster, hostname string, port int) []subsetInfo {
	prefix := fmt.Sprintf("outbound|%d|", port)
	suffix := "|" + hostname
	var names []string
	for name := range clusters {
		if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix) {
			subset := strings.TrimSuffix(strings.TrimPrefix(name, prefix), suffix)
			if subset != "" {
				names = append(names, subset)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	labelsBySubset := map[string]map[string]string{}
	if cdr := cs.proxy.SidecarScope.DestinationRule(model.TrafficDirectionOutbound, cs.proxy, host.Name(hostname)); cdr != nil {
		if rule := cdr.GetRule(); rule != nil {
			if dr, ok := rule.Spec.(*networking.DestinationRule); ok {
				for _, s := range dr.Subsets {
					if _, seen := labelsBySubset[s.Name]; !seen {
						labelsBySubset[s.Name] = s.Labels
					}
				}
			}
		}
	}
	out := make([]subsetInfo, 0, len(names))
	for _, n := range names {
		out = append(out, subsetInfo{name: n, labels: labelsBySubset[n]})
	}
	return out
}

func (e *evaluator) evalPair(cs *proxyState, c *cluster.Cluster, clusterName, hostname string, sp svcPort,
	subset string, ep endpointRef,
) Pair {
	pair := Pair{
		ClientPod:  PodKey(cs.pod),
		Host:       hostname,
		Port:       int(sp.port),
		Subset:     subset,
		ServerPod:  ep.key(),
		TargetPort: int(ep.targetPort),
	}
	var details []string
	var ts *core.TransportSocket
	if c == nil {
		pair.ClientSends = Plaintext
		details = append(details, fmt.Sprintf("client has no cluster %s (treated as plaintext)", clusterName))
	} else {
		var how string
		ts, how = e.transportSocketFor(cs, c, ep)
		kind, desc := classifyTransportSocket(ts)
		if k, d, ok := classifyTunnel(ts); ok {
			kind, desc = k, d
		}
		pair.ClientSends = kind
		details = append(details, fmt.Sprintf("cluster %s (%s): %s; %s", clusterName, c.GetType(), how, desc))
	}
	accepts, sdesc := e.serverAcceptsAny(ep, hostname, sp, pair.ClientSends, ts)
	pair.ServerAccepts = accepts
	pair.OK = accepts
	details = append(details, sdesc)
	pair.Detail = strings.Join(details, "; ")
	e.checkIdentity(&pair, cs, ep, ts)
	return pair
}

// transportSocketFor returns the transport socket Envoy would use for this endpoint:
// the first transport_socket_matches entry whose match is a subset of the endpoint's
// envoy.transport_socket_match metadata (as generated by Istio's EDS for this client),
// else the cluster's transport_socket.
func (e *evaluator) transportSocketFor(cs *proxyState, c *cluster.Cluster, ep endpointRef) (*core.TransportSocket, string) {
	if len(c.TransportSocketMatches) == 0 {
		if c.TransportSocket == nil {
			return nil, "no transport_socket"
		}
		return c.TransportSocket, "cluster transport_socket"
	}
	var meta *structpb.Struct
	found := false
	if cla := cs.cla(e, c); cla != nil {
		for _, lle := range cla.Endpoints {
			for _, lbe := range lle.LbEndpoints {
				sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
				// A tunnelled endpoint is an internal address whose id is the target.
				tunnelled := lbe.GetEndpoint().GetAddress().GetEnvoyInternalAddress().GetEndpointId() ==
					fmt.Sprintf("%s:%d", ep.ip(), ep.targetPort)
				if tunnelled || (sa.GetAddress() == ep.ip() && int32(sa.GetPortValue()) == ep.targetPort) {
					meta = lbe.GetMetadata().GetFilterMetadata()[util.EnvoyTransportSocketMetadataKey]
					found = true
				}
			}
		}
	}
	epDesc := "endpoint metadata " + structString(meta)
	if !found {
		epDesc = "endpoint NOT in client's EDS"
	}
	for _, m := range c.TransportSocketMatches {
		if structSubset(m.GetMatch(), meta) {
			return m.TransportSocket, fmt.Sprintf("transport_socket_matches -> %q (%s)", m.Name, epDesc)
		}
	}
	return c.TransportSocket, fmt.Sprintf("no transport_socket_match matched (%s)", epDesc)
}

func structString(s *structpb.Struct) string {
	if s == nil || len(s.Fields) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(s.Fields))
	for k := range s.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%s", k, s.Fields[k].GetStringValue()))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func structSubset(match, meta *structpb.Struct) bool {
	for k, v := range match.GetFields() {
		got, ok := meta.GetFields()[k]
		if !ok || !proto.Equal(v, got) {
			return false
		}
	}
	return true
}

// classifyTransportSocket maps an upstream transport socket to the TLS kind the client sends.
func classifyTransportSocket(ts *core.TransportSocket) (string, string) {
	if ts == nil {
		return Plaintext, "no TLS"
	}
	tc := ts.GetTypedConfig()
	if tc == nil {
		return Plaintext, fmt.Sprintf("transport socket %q without config", ts.Name)
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if tc.MessageIs(ctx) {
		if err := tc.UnmarshalTo(ctx); err != nil {
			return Plaintext, fmt.Sprintf("bad UpstreamTlsContext: %v", err)
		}
		return classifyUpstreamTLS(ctx)
	}
	if tc.GetTypeUrl() == "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer" {
		return Plaintext, "raw_buffer (no TLS)"
	}
	return Plaintext, fmt.Sprintf("unrecognised transport socket %q (%s) treated as plaintext", ts.Name, tc.GetTypeUrl())
}

func classifyUpstreamTLS(ctx *tlsv3.UpstreamTlsContext) (string, string) {
	common := ctx.GetCommonTlsContext()
	var certs []string
	for _, s := range common.GetTlsCertificateSdsSecretConfigs() {
		certs = append(certs, s.GetName())
	}
	if len(common.GetTlsCertificates()) > 0 {
		certs = append(certs, "inline")
	}
	root := common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName()
	desc := fmt.Sprintf("UpstreamTlsContext sni=%q alpn=%v certs=%v root=%q", ctx.GetSni(), common.GetAlpnProtocols(), certs, root)
	switch {
	case len(certs) > 0 && certs[0] == "default":
		return IstioMutual, desc
	case len(certs) > 0:
		return MutualTLS, desc
	default:
		return SimpleTLS, desc
	}
}

// serverAccepts simulates the client's connection on the server sidecar's inbound
// listener (pilot/pkg/simulation), or applies "plaintext only" for a sidecar-less server.
func (e *evaluator) serverAccepts(ep endpointRef, hostname string, sp svcPort, kind string,
	clientTS *core.TransportSocket,
) (bool, string) {
	if !ep.sidecar() {
		if kind == Plaintext {
			return true, "server has no sidecar: plaintext reaches the app"
		}
		return false, "server has no sidecar: " + kind + " reaches a plaintext app"
	}
	ss := e.serverState(ep)
	sim := ss.simulation(e)
	proto := simulation.TCP
	// The protocol the client speaks is the registry's conversion of the
	// service port, whether or not the server's own Sidecar imports it.
	p := sp.proto
	protoDesc := string(p)
	switch {
	case p.IsHTTP2() || p.IsGRPC():
		proto = simulation.HTTP2
	case p.IsHTTP():
		proto = simulation.HTTP
	}
	call := simulation.Call{
		Address:    ep.ip(),
		Port:       int(ep.targetPort),
		Protocol:   proto,
		CallMode:   simulation.CallModeInbound,
		HostHeader: hostname,
	}
	switch kind {
	case Plaintext:
		call.TLS = simulation.Plaintext
	case IstioMutual:
		// ALPN defaults to what Istio's istio.alpn filter / in-mesh clusters send: istio-http/1.1, istio-h2 or istio.
		call.TLS = simulation.MTLS
	default:
		// One-way TLS or TLS with user certificates: no istio ALPN; use the cluster's ALPN if any.
		call.TLS = simulation.TLS
		if alpn := clientALPN(clientTS); len(alpn) > 0 {
			call.Alpn = alpn[0]
		}
	}
	var matched *listener.FilterChain
	call.CustomListenerValidations = []simulation.CustomFilterChainValidation{func(fc *listener.FilterChain) error {
		matched = fc
		return nil
	}}
	r := runSim(sim, call)
	desc := fmt.Sprintf("server %s sim %s call (%s, port %d, alpn %q, svc protocol %s)", ep.key(), call.TLS, proto, call.Port,
		call.FillDefaults().Alpn, protoDesc)
	if r.Error != nil {
		return false, fmt.Sprintf("%s: error %q (listener %q, filter chain %q)", desc, r.Error, r.ListenerMatched, r.FilterChainMatched)
	}
	terminated := matched != nil && matched.TransportSocket != nil
	desc = fmt.Sprintf("%s: filter chain %q tls_terminated=%v cluster %q", desc, r.FilterChainMatched, terminated, r.ClusterMatched)
	if r.ClusterMatched == util.BlackHoleCluster {
		return false, desc + " (blackhole)"
	}
	if kind != Plaintext && !terminated {
		return false, desc + " (TLS not terminated by the sidecar: passed through to the app)"
	}
	return true, desc
}

func runSim(sim *simulation.Simulation, call simulation.Call) (r simulation.Result) {
	defer func() {
		if p := recover(); p != nil {
			r = simulation.Result{Error: fmt.Errorf("simulation panicked: %v", p)}
		}
	}()
	return sim.Run(call)
}

func clientALPN(ts *core.TransportSocket) []string {
	if ts == nil || ts.GetTypedConfig() == nil {
		return nil
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		return nil
	}
	return ctx.GetCommonTlsContext().GetAlpnProtocols()
}

// dropsTrafficWithoutCluster reports whether a client sends the traffic
// for a host it has no cluster for (its Sidecar does not import it) to the
// BlackHoleCluster (outbound traffic policy REGISTRY_ONLY, the Sidecar's or
// the mesh's) or to an egress proxy, rather than through the
// PassthroughCluster in plaintext to the original destination.
func dropsTrafficWithoutCluster(cs *proxyState) bool {
	if !util.IsAllowAnyOutbound(cs.proxy) {
		return true
	}
	return cs.proxy.SidecarScope.OutboundTrafficPolicy.GetEgressProxy() != nil
}
