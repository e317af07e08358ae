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
		slices.Equal(r.Endpoints, o.Endpoints)
}

// Endpoint is the verdict for one server pod behind a row.
type Endpoint struct {
	Pod         string // namespace/name
	TargetPort  int32
	Sidecar     bool
	ServerMode  ServerMode
	AuthnPolicy string
	ClientSends Wire
	OK          bool
	Reason      string
}

// endpoint is a pod behind a service port, with its resolved target port.
type endpoint struct {
	pod    *pod
	target int32
}

// endpoints lists the pods a service port (restricted to subset labels)
// sends to, sorted by name.
func (e *env) endpoints(svc *service, sp servicePort, subsetLabels map[string]string) []endpoint {
	var out []endpoint
	for _, p := range svc.members {
		if !subsetOf(subsetLabels, p.labels) {
			continue
		}
		if t, ok := sp.targetPort(p); ok {
			out = append(out, endpoint{pod: p, target: t})
		}
	}
	return out
}

// row evaluates one service port (or subset) against the rule a client uses.
func (e *env) row(svc *service, sp servicePort, subset string, dr *mergedRule) *Row {
	var subsetLabels map[string]string
	if subset != "" {
		subsetLabels = dr.subset(subset).GetLabels()
	}
	eps := e.endpoints(svc, sp, subsetLabels)
	tp := clusterPolicy(dr, subset, sp.port)
	tls := tp.GetTls()
	r := &Row{
		Host:            svc.host,
		Port:            sp.port,
		Subset:          subset,
		DestinationRule: dr.ref(),
		Client:          Auto,
	}
	if tls != nil {
		r.Client = convertTLS(tls.GetMode())
	}
	r.ClientColumn = r.Client.Column()
	if tls == nil && !e.st.mesh.AutoMTLS {
		r.ClientColumn = "HTTP"
	}

	// Auto mTLS: the cluster-level decision (BestEffortInferServiceMTLSMode),
	// then per endpoint the tlsMode metadata (mtlsChecker).
	autoOff := !e.st.mesh.AutoMTLS
	passthrough := svc.headless ||
		passthroughPolicy(dr, subset).GetLoadBalancer().GetSimple() == networkingapi.LoadBalancerSettings_PASSTHROUGH ||
		tp.GetLoadBalancer().GetSimple() == networkingapi.LoadBalancerSettings_PASSTHROUGH
	if tls == nil && !autoOff {
		// BestEffortInferServiceMTLSMode reads every endpoint of the service
		// port (ServiceEndpointsByPort with no labels), also for a subset.
		portEps := eps
		if passthrough && subset != "" {
			portEps = e.endpoints(svc, sp, nil)
		}
		if passthrough && (len(portEps) == 0 || slices.ContainsFunc(portEps, func(ep endpoint) bool { return !ep.pod.tlsIstio })) {
			autoOff = true
		} else if m, _ := e.namespaceMode(svc.namespace); m == Disable {
			autoOff = true
		}
	}
	checker := checkerMode(dr, subset, sp.port)

	var servers, policies []string
	r.Endpoints = make([]Endpoint, 0, len(eps))
	for _, ep := range eps {
		out := Endpoint{Pod: ep.pod.key(), TargetPort: ep.target, Sidecar: ep.pod.sidecar, ServerMode: NoSidecar, AuthnPolicy: "-"}
		var sm serverPolicy
		if ep.pod.sidecar {
			sm = e.serverMode(ep.pod.namespace, ep.pod.labels, ep.target)
			out.ServerMode = sm.mode
			if sm.source != "" {
				out.AuthnPolicy = sm.source
			}
		}
		switch {
		case tls != nil:
			out.ClientSends = explicitWire(tls, dr)
		case autoOff:
			out.ClientSends = Plaintext
		case passthrough:
			// ORIGINAL_DST clusters get no transport socket matches: mTLS to
			// every endpoint once the cluster is auto mTLS.
			out.ClientSends = IstioMutual
		case checker != nil:
			// The rule's mode replaces the PeerAuthentication check, but the
			// endpoint keeps its own tlsMode label: only tlsMode=istio
			// matches the cluster's mTLS transport socket.
			if *checker == networkingapi.ClientTLSSettings_ISTIO_MUTUAL && ep.pod.tlsIstio {
				out.ClientSends = IstioMutual
			}
		case ep.pod.tlsIstio && sm.mode != Disable:
			// tlsIstio implies a sidecar, so sm is the endpoint's own policy.
			out.ClientSends = IstioMutual
		}
		out.OK = Compatible(out.ServerMode, out.ClientSends)
		out.Reason = reason(out.ServerMode, out.ClientSends)
		if !out.OK {
			r.Status = Conflict
		}
		servers = appendUnique(servers, out.ServerMode.Column())
		policies = appendUnique(policies, out.AuthnPolicy)
		r.Endpoints = append(r.Endpoints, out)
	}
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
