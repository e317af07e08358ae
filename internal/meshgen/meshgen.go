// Package meshgen generates small random Istio meshes: namespaces, services
// with named and numbered ports, pods with and without sidecars,
// PeerAuthentications at every level (port-level too) and DestinationRules
// with wildcards, short hosts, exportTo, subsets, port-level settings and
// workloadSelector, and Sidecars that narrow what clients see; NewAmbient
// makes ambient meshes, NewEntries adds ServiceEntries and WorkloadEntries
// (entries.go). Every object it makes is valid, as the API server would
// store it.
//
// It is shared by the conformance agreement test (test/agreement, a seed per
// mesh) and the engine's fuzz tests (policy, webhook), which drive it from
// the fuzzer's bytes (see Rand). It imports nothing of the engine, so the
// engine's own tests can use it.
package meshgen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels, annotations and names of Istio the generated objects carry. They
// equal the engine's constants (policy.TLSModeLabel, ...); policy's tests
// check it.
const (
	TLSModeLabel            = "security.istio.io/tlsMode"
	SidecarStatusAnnotation = "sidecar.istio.io/status"
	InjectionLabel          = "istio-injection"
	MeshConfigMapName       = "istio"
	RootNamespace           = "istio-system"
	DataplaneModeLabel      = "istio.io/dataplane-mode"
	TunnelLabel             = "networking.istio.io/tunnel"
)

// Gen generates one mesh, and changes to it, from a random source.
type Gen struct {
	r     *rand.Rand
	t0    time.Time
	objs  []runtime.Object
	tick  int
	nss   []string
	apps  map[string][]app // by namespace
	hosts []string         // service FQDNs
	// changes numbers the objects Change creates.
	changes int
	// trustDomain and accounts (namespace/app: its pods' service
	// accounts) feed subjectAltNames (identity.go).
	trustDomain string
	accounts    map[string][]string
	// ambient: the ambient family (NewAmbient); ambientNS are the
	// namespaces labelled for it.
	ambient   bool
	ambientNS map[string]bool
	// entries: the entries family (NewEntries, entries.go); entryApps
	// are its ServiceEntries, entryLabels the app labels of their
	// endpoints by namespace.
	entries     bool
	entryApps   []entryApp
	entryLabels map[string][]string
}

type app struct {
	name    string
	ports   []corev1.ServicePort
	targets []int32 // resolved container ports
}

// New returns a generator drawing every choice from r.
func New(r *rand.Rand) *Gen {
	return &Gen{r: r, t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// NewAmbient is New for the ambient family: namespaces labelled
// istio.io/dataplane-mode=ambient, pods captured, opted out with none, or
// enrolled by their own label, sidecars with and without the HBONE tunnel
// label.
func NewAmbient(r *rand.Rand) *Gen {
	g := New(r)
	g.ambient = true
	return g
}

// Mesh generates the mesh: the root namespace (maybe with a mesh ConfigMap
// turning auto mTLS off or moving the trust domain), 2 to 6 namespaces of 1 or 2 services each, then
// PeerAuthentications and DestinationRules. The same random stream always
// gives the same objects, in the same order.
func (g *Gen) Mesh() []runtime.Object {
	g.apps = map[string][]app{}
	root := RootNamespace
	g.add(&corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: root}})
	if mesh := g.meshConfig(); mesh != "" {
		g.add(&corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"),
			ObjectMeta: metav1.ObjectMeta{Name: MeshConfigMapName, Namespace: root},
			Data:       map[string]string{"mesh": mesh}})
	}
	n := 2 + g.intn(5)
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("ns%d", i)
		g.nss = append(g.nss, ns)
		nsObj := &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if g.ambient && g.chance(0.5) {
			nsObj.Labels = map[string]string{DataplaneModeLabel: "ambient"}
			if g.ambientNS == nil {
				g.ambientNS = map[string]bool{}
			}
			g.ambientNS[ns] = true
		}
		g.add(nsObj)
		for a := 0; a < 1+g.intn(2); a++ {
			g.service(ns, fmt.Sprintf("svc%d", a))
		}
	}
	if g.entries {
		for i, ns := range g.nss {
			g.serviceEntries(i, ns)
		}
	}
	g.peerAuthentications(root)
	g.destinationRules(root)
	if g.entries {
		g.entryPolicies(root)
	}
	g.sidecars(root) // last: the objects above stay those of earlier versions
	return g.objs
}

func (g *Gen) intn(n int) int        { return g.r.IntN(n) }
func (g *Gen) chance(p float64) bool { return g.r.Float64() < p }
func pick[T any](g *Gen, l []T) T    { return l[g.intn(len(l))] }

// created hands out creation times with frequent ties, so that name and
// namespace ordering is exercised too. The ambient family has none: Istio's
// ambient index breaks a tie between PeerAuthentications by the informer's
// list order, which changes from run to run (see KNOWN_DIFFERENCES.md).
func (g *Gen) created() metav1.Time {
	if g.ambient || !g.chance(0.3) {
		g.tick++
	}
	return metav1.NewTime(g.t0.Add(time.Duration(g.tick) * time.Second))
}

func (g *Gen) add(o runtime.Object) { g.objs = append(g.objs, o) }

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

var portNames = []string{"http", "grpc", "tcp"}

func (g *Gen) service(ns, name string) {
	a := app{name: name}
	nports := 1 + g.intn(3)
	var containerPorts []corev1.ContainerPort
	for p := 0; p < nports; p++ {
		port := int32(80 + 1000*p)
		target := port
		if g.chance(0.5) {
			target = int32(8080 + p)
		}
		sp := corev1.ServicePort{Name: portNames[p], Port: port, TargetPort: intstr.FromInt32(target)}
		if g.chance(0.3) {
			sp.TargetPort = intstr.FromString("c-" + portNames[p])
		}
		a.ports = append(a.ports, sp)
		a.targets = append(a.targets, target)
		containerPorts = append(containerPorts, corev1.ContainerPort{Name: "c-" + portNames[p], ContainerPort: target})
	}
	s := &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: a.ports},
	}
	if g.chance(0.1) {
		s.Spec.ClusterIP = corev1.ClusterIPNone
	}
	g.add(s)
	g.apps[ns] = append(g.apps[ns], a)
	g.hosts = append(g.hosts, name+"."+ns+".svc.cluster.local")
	for p := 0; p < 1+g.intn(3); p++ {
		pod := &corev1.Pod{
			TypeMeta: typeMeta("v1", "Pod"),
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, p), Namespace: ns,
				Labels: map[string]string{"app": name, "version": fmt.Sprintf("v%d", g.intn(2))}},
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", Ports: containerPorts}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		sidecar := g.chance(0.8)
		if g.ambient {
			sidecar = g.chance(map[bool]float64{true: 0.2, false: 0.6}[g.ambientNS[ns]])
		}
		if sidecar {
			pod.Labels[TLSModeLabel] = "istio"
			pod.Annotations = map[string]string{SidecarStatusAnnotation: "{}"}
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: "proxyv2"})
			if g.ambient && g.chance(0.4) {
				pod.Labels[TunnelLabel] = "http"
			}
		} else if g.ambient {
			switch {
			case g.ambientNS[ns] && g.chance(0.15):
				pod.Labels[DataplaneModeLabel] = "none"
			case !g.ambientNS[ns] && g.chance(0.3):
				pod.Labels[DataplaneModeLabel] = "ambient"
			}
		}
		g.serviceAccount(pod, ns, name)
		g.add(pod)
	}
}

var mtlsModes = []securityapi.PeerAuthentication_MutualTLS_Mode{
	securityapi.PeerAuthentication_MutualTLS_UNSET, securityapi.PeerAuthentication_MutualTLS_DISABLE,
	securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, securityapi.PeerAuthentication_MutualTLS_STRICT,
}

func (g *Gen) mtls() *securityapi.PeerAuthentication_MutualTLS {
	if g.chance(0.1) {
		return nil
	}
	return &securityapi.PeerAuthentication_MutualTLS{Mode: pick(g, mtlsModes)}
}

// peerAuth is a PeerAuthentication without selector: mesh level in the
// root namespace, namespace level elsewhere.
func (g *Gen) peerAuth(ns, name string) *securityv1.PeerAuthentication {
	return &securityv1.PeerAuthentication{
		TypeMeta:   typeMeta("security.istio.io/v1", "PeerAuthentication"),
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: g.created()},
		Spec:       securityapi.PeerAuthentication{Mtls: g.mtls()},
	}
}

// workloadPeerAuth is a PeerAuthentication selecting one app of ns (and
// maybe one version), maybe with port-level modes keyed by target port.
func (g *Gen) workloadPeerAuth(ns, name string) *securityv1.PeerAuthentication {
	a := pick(g, g.apps[ns])
	p := g.peerAuth(ns, name)
	sel := map[string]string{"app": a.name}
	if g.chance(0.3) {
		sel["version"] = fmt.Sprintf("v%d", g.intn(2))
	}
	p.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: sel}
	if g.chance(0.5) {
		p.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{}
		for _, t := range a.targets {
			if g.chance(0.6) {
				p.Spec.PortLevelMtls[uint32(t)] = &securityapi.PeerAuthentication_MutualTLS{Mode: pick(g, mtlsModes)}
			}
		}
		if len(p.Spec.PortLevelMtls) == 0 {
			p.Spec.PortLevelMtls = nil
		}
	}
	return p
}

func (g *Gen) peerAuthentications(root string) {
	for i := 0; i < g.intn(3); i++ { // mesh level, maybe several
		g.add(g.peerAuth(root, fmt.Sprintf("mesh%d", i)))
	}
	for _, ns := range g.nss {
		for i := 0; i < g.intn(3); i++ { // namespace level, maybe several
			g.add(g.peerAuth(ns, fmt.Sprintf("nspa%d", i)))
		}
		for i := 0; i < g.intn(3); i++ { // workload level
			g.add(g.workloadPeerAuth(ns, fmt.Sprintf("wl%d", i)))
		}
	}
	if g.chance(0.1) { // ignored: a selector in the root namespace
		p := g.peerAuth(root, "root-selector")
		p.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "svc0"}}
		g.add(p)
	}
}

var tlsModes = []networkingapi.ClientTLSSettings_TLSmode{
	networkingapi.ClientTLSSettings_DISABLE, networkingapi.ClientTLSSettings_SIMPLE,
	networkingapi.ClientTLSSettings_MUTUAL, networkingapi.ClientTLSSettings_ISTIO_MUTUAL,
}

func (g *Gen) tls() *networkingapi.ClientTLSSettings {
	if g.chance(0.3) {
		return nil
	}
	// ISTIO_MUTUAL and DISABLE are the common cases; SIMPLE and MUTUAL
	// appear too.
	m := tlsModes[[]int{0, 0, 1, 2, 3, 3, 3}[g.intn(7)]]
	tls := &networkingapi.ClientTLSSettings{Mode: m}
	if m == networkingapi.ClientTLSSettings_MUTUAL { // validation wants a certificate
		tls.ClientCertificate, tls.PrivateKey = "/etc/certs/cert.pem", "/etc/certs/key.pem"
	}
	return tls
}

func (g *Gen) trafficPolicy(ports []int32) *networkingapi.TrafficPolicy {
	if g.chance(0.15) {
		return nil
	}
	tp := &networkingapi.TrafficPolicy{Tls: g.tls()}
	for _, p := range ports {
		if g.chance(0.25) {
			pl := &networkingapi.TrafficPolicy_PortTrafficPolicy{Port: &networkingapi.PortSelector{Number: uint32(p)}, Tls: g.tls()}
			if pl.Tls == nil { // validation wants at least one field
				pl.ConnectionPool = connectionPool()
			}
			tp.PortLevelSettings = append(tp.PortLevelSettings, pl)
		}
	}
	if tp.Tls == nil && len(tp.PortLevelSettings) == 0 {
		tp.ConnectionPool = connectionPool()
	}
	return tp
}

func connectionPool() *networkingapi.ConnectionPoolSettings {
	return &networkingapi.ConnectionPoolSettings{Tcp: &networkingapi.ConnectionPoolSettings_TCPSettings{MaxConnections: 10}}
}

func (g *Gen) destinationRules(root string) {
	all := append([]string{root}, g.nss...)
	for i := 0; i < 1+g.intn(6); i++ {
		ns := pick(g, all)
		g.add(g.destinationRule(ns, fmt.Sprintf("dr%d", i)))
	}
}

// destinationRule is a rule in ns for a random service, named in a random
// way (wildcard, short name, FQDN), maybe with subsets, a workloadSelector
// or exportTo.
func (g *Gen) destinationRule(ns, name string) *networkingv1.DestinationRule {
	// Pick a target service and a way to name it.
	tns := pick(g, g.nss)
	a := pick(g, g.apps[tns])
	var host string
	switch g.intn(6) {
	case 0:
		host = "*.local"
	case 1:
		host = "*." + tns + ".svc.cluster.local"
	case 2:
		if ns == tns {
			host = a.name // short name, relative to the rule's namespace
		} else {
			host = a.name + "." + tns + ".svc.cluster.local"
		}
	case 3:
		host = "*"
	default:
		host = a.name + "." + tns + ".svc.cluster.local"
	}
	var ports []int32
	for _, p := range a.ports {
		ports = append(ports, p.Port)
	}
	d := &networkingv1.DestinationRule{
		TypeMeta:   typeMeta("networking.istio.io/v1", "DestinationRule"),
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: g.created()},
		Spec:       networkingapi.DestinationRule{Host: host, TrafficPolicy: g.trafficPolicy(ports)},
	}
	if g.chance(0.3) {
		for v := 0; v < 2; v++ {
			s := &networkingapi.Subset{Name: fmt.Sprintf("v%d", v), Labels: map[string]string{"version": fmt.Sprintf("v%d", v)}}
			if g.chance(0.5) {
				s.TrafficPolicy = g.trafficPolicy(ports)
			}
			d.Spec.Subsets = append(d.Spec.Subsets, s)
		}
	}
	switch {
	case ns != RootNamespace && g.chance(0.15):
		// A workloadSelector rule: private to its namespace.
		ca := pick(g, g.apps[ns])
		d.Spec.WorkloadSelector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": ca.name}}
	case g.chance(0.3):
		d.Spec.ExportTo = g.exportTo(ns)
	}
	g.subjectAltNames(d, tns, a)
	return d
}

func (g *Gen) exportTo(ns string) []string {
	switch g.intn(4) {
	case 0:
		return []string{"."}
	case 1:
		return []string{"*"}
	case 2:
		return []string{pick(g, g.nss)}
	}
	out := []string{"."}
	for _, o := range g.nss {
		if o != ns && g.chance(0.5) && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}
