package policy

import (
	"slices"
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
)

// Row is one line of the tls-check table: a service port (or a subset of
// it) as a set of clients sees it.
type Row struct {
	Host   string
	Port   int32
	Subset string
	Status Status
	// Server is the SERVER column: mTLS, HTTP/mTLS, HTTP, "mixed" when
	// endpoints differ, "-" without endpoints.
	Server string
	// Client is the TLS the DestinationRule sets, Auto when auto mTLS
	// decides.
	Client ClientTLS
	// ClientColumn is the CLIENT column: Client.Column(), or HTTP when auto
	// mTLS is off and the rule sets no TLS.
	ClientColumn string
	// AuthnPolicy names the PeerAuthentication(s) that decided the server
	// mode (name/namespace), "-" for none.
	AuthnPolicy string
	// DestinationRule names the rule the client uses (name/namespace), "-"
	// for none.
	DestinationRule string
	// SubjectAltNames are the rule's tls.subjectAltNames the client checks
	// the server's identity against (identity.go); nil when it checks the
	// service's own accounts, or nothing.
	SubjectAltNames []string
	Endpoints       []Endpoint
}

// HostPort is the HOST:PORT column; subsets render as host|subset:port.
func (r *Row) HostPort() string {
	return r.DisplayHost() + ":" + strconv.Itoa(int(r.Port))
}

// DisplayHost is the host, with |subset for subset rows.
func (r *Row) DisplayHost() string {
	if r.Subset == "" {
		return r.Host
	}
	return r.Host + "|" + r.Subset
}

// sameContent reports whether two rows say the same, whichever rule entry
// produced them.
func (r *Row) sameContent(o *Row) bool {
	return r.Host == o.Host && r.Port == o.Port && r.Subset == o.Subset && r.Status == o.Status &&
		r.Server == o.Server && r.Client == o.Client && r.ClientColumn == o.ClientColumn &&
		r.AuthnPolicy == o.AuthnPolicy && r.DestinationRule == o.DestinationRule &&
		slices.Equal(r.SubjectAltNames, o.SubjectAltNames) && slices.Equal(r.Endpoints, o.Endpoints)
}

// Endpoint is the verdict for one server pod behind a row.
type Endpoint struct {
	Pod         string // namespace/name
	TargetPort  int32
	Sidecar     bool
	Dataplane   Dataplane
	ServerMode  ServerMode
	AuthnPolicy string
	ClientSends Wire
	OK          bool
	Reason      string
	// Identity is the pod's SPIFFE identity (identity.go); a pod without a
	// sidecar has one but presents no certificate.
	Identity string
}

// endpoint is a pod behind a service port, with its resolved target port.
type endpoint struct {
	pod    *pod
	target int32
}

// cluster is what a client's cluster for one service port (or subset of
// it) does, from the rule it uses: the part of a row that is the same for
// every endpoint.
type cluster struct {
	svc          *service
	port         servicePort
	subsetLabels selector
	// tls is the rule's TLS for the cluster; nil leaves it to auto mTLS.
	tls *networkingapi.ClientTLSSettings
	dr  *mergedRule
	// autoOff: auto mTLS sends plaintext to every endpoint.
	autoOff bool
	// passthrough: an ORIGINAL_DST cluster, which gets no transport socket
	// matches.
	passthrough bool
	// checker is the rule's mode as the endpoint builder's mtlsChecker
	// sees it.
	checker *networkingapi.ClientTLSSettings_TLSmode
	// servers resolves the endpoints' PeerAuthentications.
	servers paChain
	// modes, when set, are the server policies of svc.members on this
	// port, computed once for all the clusters of the port; targets, when
	// set, their target ports (noTarget for none).
	modes   []serverPolicy
	targets []int32
	// id is the rule's subjectAltNames check of the server's identity.
	id  identityCheck
	env *env
	// nsAmbient: svc's namespace is labelled for ambient.
	nsAmbient bool
}

// noTarget marks a member that does not serve a service port.
const noTarget = -1

// cluster works out the client side of (service port, subset) under rule dr.
func (e *env) cluster(svc *service, sp servicePort, subset string, dr *mergedRule) cluster {
	return e.clusterWith(e.chain(svc.namespace), svc, sp, subset, dr)
}

// clusterWith is cluster with the PeerAuthentications of svc's namespace
// already resolved.
func (e *env) clusterWith(servers paChain, svc *service, sp servicePort, subset string, dr *mergedRule) cluster {
	c := cluster{svc: svc, port: sp, dr: dr, servers: servers, env: e, nsAmbient: e.namespaceAmbient(svc.namespace)}
	if subset != "" {
		c.subsetLabels = dr.subsetSelector(subset)
	}
	tls, lb := clusterTLS(dr, subset, sp.port)
	c.tls = tls
	c.autoOff = !e.st.mesh.AutoMTLS || dr.viaPassthrough()
	c.passthrough = svc.headless || lb == networkingapi.LoadBalancerSettings_PASSTHROUGH ||
		passthroughPolicy(dr, subset).GetLoadBalancer().GetSimple() == networkingapi.LoadBalancerSettings_PASSTHROUGH
	if tls == nil && !c.autoOff {
		// Auto mTLS: the cluster-level decision
		// (BestEffortInferServiceMTLSMode) reads every endpoint of the
		// service port (ServiceEndpointsByPort with no labels), also for a
		// subset; per endpoint, the tlsMode metadata decides (mtlsChecker).
		if c.passthrough && !allIstio(svc, sp) {
			c.autoOff = true
		} else if m, _ := c.servers.namespaceMode(); m == Disable {
			c.autoOff = true
		}
	}
	c.checker = checkerMode(dr, subset, sp.port)
	c.id = newIdentityCheck(tls)
	return c
}

// allIstio reports whether a service port has endpoints and all of them
// carry tlsMode=istio.
func allIstio(svc *service, sp servicePort) bool {
	any := false
	for _, p := range svc.members {
		if _, ok := sp.targetPort(p); ok {
			if !p.tlsIstio {
				return false
			}
			any = true
		}
	}
	return any
}

// each calls fn for every endpoint of the cluster, in name order, with the
// index of its pod in svc.members, its server policy and what the client
// sends it.
func (c *cluster) each(fn func(member int, ep endpoint, sm serverPolicy, w Wire)) {
	for i, p := range c.svc.members {
		if !c.subsetLabels.matches(p.labels) {
			continue
		}
		var target int32
		if c.targets != nil {
			if target = c.targets[i]; target == noTarget {
				continue
			}
		} else {
			var ok bool
			if target, ok = c.port.targetPort(p); !ok {
				continue
			}
		}
		var sm serverPolicy
		switch {
		case c.modes != nil:
			sm = c.modes[i]
		default:
			sm = c.env.endpointServer(c.servers, p, c.servers.workload(p.labels), target, c.nsAmbient)
		}
		fn(i, endpoint{pod: p, target: target}, sm, c.wire(p, sm))
	}
}

// wire is what the client sends to pod p, whose policy is sm.
func (c *cluster) wire(p *pod, sm serverPolicy) Wire {
	if w, ok := c.tunnelWire(p); ok {
		return w
	}
	switch {
	case c.tls != nil:
		return explicitWire(c.tls, c.dr)
	case c.autoOff:
		return Plaintext
	case c.passthrough:
		// ORIGINAL_DST clusters get no transport socket matches: mTLS to
		// every endpoint once the cluster is auto mTLS.
		return IstioMutual
	case c.checker != nil:
		// The rule's mode replaces the PeerAuthentication check, but the
		// endpoint keeps its own tlsMode label: only tlsMode=istio matches
		// the cluster's mTLS transport socket.
		if *c.checker == networkingapi.ClientTLSSettings_ISTIO_MUTUAL && p.tlsIstio {
			return IstioMutual
		}
		return Plaintext
	case p.tlsIstio && sm.mode != Disable:
		// tlsIstio implies a sidecar, so sm is the endpoint's own policy.
		return IstioMutual
	}
	return Plaintext
}

// row evaluates one service port (or subset) against the rule a client uses.
func (e *env) row(svc *service, sp servicePort, subset string, dr *mergedRule) *Row {
	c := e.cluster(svc, sp, subset, dr)
	r := &Row{
		Host:            svc.host,
		Port:            sp.port,
		Subset:          subset,
		DestinationRule: dr.ref(),
		Client:          Auto,
	}
	if c.tls != nil {
		r.Client = convertTLS(c.tls.GetMode())
	}
	r.ClientColumn = r.Client.Column()
	r.SubjectAltNames = c.id.sans
	if c.tls == nil && !e.st.mesh.AutoMTLS {
		r.ClientColumn = "HTTP"
	}
	if dr.viaPassthrough() {
		r.Client, r.ClientColumn = TLSDisable, "HTTP"
	}
	var servers, policies []string
	r.Endpoints = []Endpoint{}
	c.each(func(_ int, ep endpoint, sm serverPolicy, w Wire) {
		out := Endpoint{Pod: ep.pod.key(), TargetPort: ep.target, Sidecar: ep.pod.sidecar, Dataplane: ep.pod.dataplane(c.nsAmbient),
			ServerMode: sm.mode, AuthnPolicy: "-", ClientSends: w}
		if sm.source != nil {
			out.AuthnPolicy = sm.source.ref()
		}
		out.OK = accepts(sm, w)
		out.Reason = reasonFor(sm, w)
		if dr.viaPassthrough() {
			out.Reason = passthroughReason(dr, out.ServerMode, out.OK)
		}
		c.id.apply(&out, e.st.mesh, ep.pod, w)
		if !out.OK {
			r.Status = Conflict
		}
		servers = appendUnique(servers, out.ServerMode.Column())
		policies = appendUnique(policies, out.AuthnPolicy)
		r.Endpoints = append(r.Endpoints, out)
	})
	r.Server = single(servers, "-", "mixed")
	r.AuthnPolicy = single(policies, "-", "")
	return r
}

func appendUnique(l []string, v string) []string {
	if slices.Contains(l, v) {
		return l
	}
	return append(l, v)
}

// single renders a set of column values: none → empty, one → it, several →
// many (or, when many is "", the sorted values joined by ",").
func single(values []string, empty, many string) string {
	switch {
	case len(values) == 0:
		return empty
	case len(values) == 1:
		return values[0]
	case many != "":
		return many
	}
	slices.Sort(values)
	return strings.Join(values, ",")
}
