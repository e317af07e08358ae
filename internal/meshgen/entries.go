package meshgen

import (
	"fmt"
	"math/rand/v2"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The entries family (NewEntries): the sidecar family's mesh plus
// ServiceEntries and WorkloadEntries (extended semantics doc §2).
// MESH_INTERNAL entries, resolved STATIC, DNS or NONE, select
// WorkloadEntries (VMs with a sidecar: a serviceAccount or the tlsMode
// label istio; without: neither, or the label disabled), select the pods
// of a Service, or list endpoints inline; some MESH_EXTERNAL entries too,
// which are outside the mesh's policies. PeerAuthentications select the
// WorkloadEntries' labels, port-level ones by their target ports, and
// DestinationRules name the entries' hosts, with version subsets and
// subjectAltNames. WorkloadEntries carry labels no Service selects, so
// Kubernetes Services keep their pods.

// NewEntries is New for the entries family.
func NewEntries(r *rand.Rand) *Gen {
	g := New(r)
	g.entries = true
	return g
}

// entryApp is a ServiceEntry the generator made, as its rules and policies
// need it: its namespace and host, its ports, its endpoints' target ports
// (portLevelMtls keys) and service accounts (subjectAltNames).
type entryApp struct {
	ns, host string
	ports    []int32 // service port numbers
	targets  []int32 // the endpoints' target ports, for portLevelMtls
	accounts []string
}

var vmPorts = []*networkingapi.ServicePort{
	{Number: 80, Name: "http", Protocol: "HTTP"},
	{Number: 5432, Name: "tcp", Protocol: "TCP"},
	{Number: 9000, Name: "grpc", Protocol: "GRPC"},
}

func (g *Gen) entryPorts() []*networkingapi.ServicePort {
	var out []*networkingapi.ServicePort
	for _, p := range vmPorts {
		if len(out) == 0 || g.chance(0.4) {
			sp := &networkingapi.ServicePort{Number: p.Number, Name: p.Name, Protocol: p.Protocol}
			if g.chance(0.4) {
				sp.TargetPort = 8000 + p.Number%1000
			}
			out = append(out, sp)
		}
	}
	return out
}

func (g *Gen) resolution() networkingapi.ServiceEntry_Resolution {
	switch g.intn(10) {
	case 0:
		return networkingapi.ServiceEntry_NONE
	case 1, 2, 3:
		return networkingapi.ServiceEntry_DNS
	}
	return networkingapi.ServiceEntry_STATIC
}

// vmEndpoint is a WorkloadEntry spec: with a sidecar (a serviceAccount,
// maybe the tlsMode label istio) or without (no account, or the label
// disabled), maybe serving a port on a port of its own.
func (g *Gen) vmEndpoint(we *networkingapi.WorkloadEntry, address, app string, ports []*networkingapi.ServicePort) *networkingapi.WorkloadEntry {
	we.Address = address
	we.Labels = map[string]string{"app": app, "version": fmt.Sprintf("v%d", g.intn(2))}
	switch g.intn(10) {
	case 0, 1, 2, 3, 4, 5:
		we.ServiceAccount = pick(g, []string{app, "vm-sa"})
	case 6:
		we.ServiceAccount = app
		we.Labels[TLSModeLabel] = "disabled" // an account, but no sidecar
	case 7:
		we.Labels[TLSModeLabel] = "istio" // a sidecar without an account
	}
	for _, p := range ports {
		if g.chance(0.2) {
			if we.Ports == nil {
				we.Ports = map[string]uint32{}
			}
			we.Ports[p.Name] = 9000 + p.Number%1000
		}
	}
	return we
}

func targetsOf(ports []*networkingapi.ServicePort, eps ...*networkingapi.WorkloadEntry) []int32 {
	var out []int32
	for _, p := range ports {
		t := p.Number
		if p.TargetPort > 0 {
			t = p.TargetPort
		}
		out = append(out, int32(t))
		for _, ep := range eps {
			if n, ok := ep.Ports[p.Name]; ok {
				out = append(out, int32(n))
			}
		}
	}
	return out
}

func (g *Gen) serviceEntry(ns, name string) *networkingv1.ServiceEntry {
	return &networkingv1.ServiceEntry{
		TypeMeta:   typeMeta("networking.istio.io/v1", "ServiceEntry"),
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: g.created()},
	}
}

// serviceEntries adds, to some namespaces (the i-th of g.nss), VMs and
// the entries that reach them, an entry selecting a Service's pods, one
// with inline endpoints, and maybe a MESH_EXTERNAL one.
func (g *Gen) serviceEntries(i int, ns string) {
	if !g.chance(0.7) {
		return
	}
	// VMs: WorkloadEntries of one or two apps, and an entry per app.
	for a := 0; a < 1+g.intn(2); a++ {
		app := fmt.Sprintf("vm%d", a)
		ports := g.entryPorts()
		var wes []*networkingapi.WorkloadEntry
		for k := 0; k < 1+g.intn(3); k++ {
			obj := &networkingv1.WorkloadEntry{
				TypeMeta:   typeMeta("networking.istio.io/v1", "WorkloadEntry"),
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", app, k), Namespace: ns, CreationTimestamp: g.created()},
			}
			we := g.vmEndpoint(&obj.Spec, fmt.Sprintf("10.10.%d.%d", i, 10*a+k+1), app, ports)
			if v, ok := we.Labels[TLSModeLabel]; ok && g.chance(0.5) {
				// The label on the object's metadata, which wins over the spec's.
				delete(obj.Spec.Labels, TLSModeLabel)
				obj.Labels = map[string]string{TLSModeLabel: v}
			}
			g.add(obj)
			wes = append(wes, we)
			if we.ServiceAccount != "" {
				g.accounts[ns+"/"+app] = append(g.accounts[ns+"/"+app], we.ServiceAccount)
			}
		}
		se := g.serviceEntry(ns, app)
		spec := &se.Spec
		spec.Hosts = []string{app + "." + ns + ".internal"}
		spec.Location = networkingapi.ServiceEntry_MESH_INTERNAL
		spec.Resolution = g.resolution()
		spec.Ports = ports
		spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": app}}
		if g.chance(0.2) {
			spec.ExportTo = g.exportTo(ns)
		}
		g.add(se)
		g.addEntryApp(entryApp{ns: ns, host: spec.Hosts[0], ports: portNumbers(ports), targets: targetsOf(ports, wes...)}, app)
	}
	// An entry over a Service's pods, by its port names or the pods'
	// container port names.
	if g.chance(0.5) {
		a := pick(g, g.apps[ns])
		var ports []*networkingapi.ServicePort
		for p, sp := range a.ports {
			name := sp.Name
			if g.chance(0.5) {
				name = "c-" + sp.Name // the pods' container port: its number is the target
			}
			// The Service port's protocol (by its name): a second protocol
			// on one target port is a conflict neither side models.
			ports = append(ports, &networkingapi.ServicePort{Number: uint32(7000 + p), Name: name, Protocol: strings.ToUpper(sp.Name)})
		}
		se := g.serviceEntry(ns, "pods-"+a.name)
		spec := &se.Spec
		spec.Hosts = []string{a.name + "." + ns + ".internal"}
		spec.Location = networkingapi.ServiceEntry_MESH_INTERNAL
		spec.Resolution = pick(g, []networkingapi.ServiceEntry_Resolution{networkingapi.ServiceEntry_STATIC, networkingapi.ServiceEntry_DNS})
		spec.Ports = ports
		spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": a.name}}
		g.add(se)
		var numbers []int32
		for _, p := range ports {
			numbers = append(numbers, int32(p.Number))
		}
		g.addEntryApp(entryApp{ns: ns, host: spec.Hosts[0], ports: numbers, targets: a.targets}, a.name)
	}
	// Inline endpoints.
	if g.chance(0.5) {
		ports := g.entryPorts()
		se := g.serviceEntry(ns, "inline")
		spec := &se.Spec
		spec.Hosts = []string{"inline." + ns + ".internal"}
		spec.Location = networkingapi.ServiceEntry_MESH_INTERNAL
		spec.Resolution = pick(g, []networkingapi.ServiceEntry_Resolution{networkingapi.ServiceEntry_STATIC, networkingapi.ServiceEntry_DNS})
		spec.Ports = ports
		for k := 0; k < 1+g.intn(3); k++ {
			spec.Endpoints = append(spec.Endpoints, g.vmEndpoint(&networkingapi.WorkloadEntry{}, fmt.Sprintf("10.11.%d.%d", i, k+1), "inline", ports))
		}
		g.add(se)
		ea := entryApp{ns: ns, host: spec.Hosts[0], ports: portNumbers(ports), targets: targetsOf(ports, spec.Endpoints...)}
		for _, ep := range spec.Endpoints {
			if ep.ServiceAccount != "" {
				g.accounts[ns+"/inline"] = append(g.accounts[ns+"/inline"], ep.ServiceAccount)
			}
		}
		g.addEntryApp(ea, "inline")
	}
	// MESH_EXTERNAL (location unset): no rows, whatever its endpoints.
	if g.chance(0.2) {
		ports := g.entryPorts()
		se := g.serviceEntry(ns, "external")
		spec := &se.Spec
		spec.Hosts = []string{"api" + ns + ".example.com"}
		spec.Resolution = networkingapi.ServiceEntry_STATIC
		spec.Ports = ports
		spec.Endpoints = []*networkingapi.WorkloadEntry{g.vmEndpoint(&networkingapi.WorkloadEntry{}, fmt.Sprintf("10.12.%d.1", i), "external", ports)}
		g.add(se)
		g.addEntryApp(entryApp{ns: ns, host: spec.Hosts[0], ports: portNumbers(ports)}, "external")
	}
}

func portNumbers(ports []*networkingapi.ServicePort) []int32 {
	var out []int32
	for _, p := range ports {
		out = append(out, int32(p.Number))
	}
	return out
}

// addEntryApp records an entry for rules and policies, and its host for
// Sidecars' egress hosts.
func (g *Gen) addEntryApp(ea entryApp, app string) {
	ea.accounts = g.accounts[ea.ns+"/"+app]
	g.entryApps = append(g.entryApps, ea)
	if g.entryLabels == nil {
		g.entryLabels = map[string][]string{}
	}
	g.entryLabels[ea.ns] = append(g.entryLabels[ea.ns], app)
	g.hosts = append(g.hosts, ea.host)
}

// entryPolicies adds PeerAuthentications selecting the entries' workloads
// and DestinationRules for the entries' hosts.
func (g *Gen) entryPolicies(root string) {
	for _, ns := range g.nss {
		for i, app := range g.entryLabels[ns] {
			if !g.chance(0.4) {
				continue
			}
			p := g.peerAuth(ns, fmt.Sprintf("entry%d", i))
			sel := map[string]string{"app": app}
			if g.chance(0.3) {
				sel["version"] = fmt.Sprintf("v%d", g.intn(2))
			}
			p.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: sel}
			if g.chance(0.5) {
				for _, ea := range g.entryApps {
					if ea.ns != ns {
						continue
					}
					for _, t := range ea.targets {
						if g.chance(0.3) {
							if p.Spec.PortLevelMtls == nil {
								p.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{}
							}
							p.Spec.PortLevelMtls[uint32(t)] = &securityapi.PeerAuthentication_MutualTLS{Mode: pick(g, mtlsModes)}
						}
					}
				}
			}
			g.add(p)
		}
	}
	if len(g.entryApps) == 0 {
		return
	}
	all := append([]string{root}, g.nss...)
	for i := 0; i < 1+g.intn(4); i++ {
		ea := pick(g, g.entryApps)
		ns := pick(g, all)
		host := ea.host
		switch g.intn(5) {
		case 0:
			host = "*." + ea.ns + ".internal"
		case 1:
			host = "*"
		}
		d := &networkingv1.DestinationRule{
			TypeMeta:   typeMeta("networking.istio.io/v1", "DestinationRule"),
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("entry-dr%d", i), Namespace: ns, CreationTimestamp: g.created()},
			Spec:       networkingapi.DestinationRule{Host: host, TrafficPolicy: g.trafficPolicy(ea.ports)},
		}
		if g.chance(0.3) {
			for v := 0; v < 2; v++ {
				s := &networkingapi.Subset{Name: fmt.Sprintf("v%d", v), Labels: map[string]string{"version": fmt.Sprintf("v%d", v)}}
				if g.chance(0.5) {
					s.TrafficPolicy = g.trafficPolicy(ea.ports)
				}
				d.Spec.Subsets = append(d.Spec.Subsets, s)
			}
		}
		if g.chance(0.2) {
			d.Spec.ExportTo = g.exportTo(ns)
		}
		g.entrySubjectAltNames(d, ea)
		g.add(d)
	}
}

// entrySubjectAltNames is subjectAltNames for an entry's accounts:
// subjectAltNames draws from g.accounts by namespace and app, so the
// entry's accounts are filed there under its host.
func (g *Gen) entrySubjectAltNames(d *networkingv1.DestinationRule, ea entryApp) {
	key := ea.ns + "/" + ea.host
	g.accounts[key] = ea.accounts
	g.subjectAltNames(d, ea.ns, app{name: ea.host})
}
