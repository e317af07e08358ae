// Package agreement checks the engine against Istio's own control plane:
// it generates random small meshes (Generate), has the oracle in
// test/conformance (a separate module that builds Istio's pilot) and
// tls-check -o json answer for each, and compares the answers.
package agreement

import (
	"bytes"
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
	"sigs.k8s.io/yaml"

	"github.com/mtlsguard/mtlsguard/policy"
)

// Generate returns a random, valid Istio scenario for seed as
// multi-document YAML. The same seed always gives the same scenario.
func Generate(seed uint64) []byte {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g.scenario(seed)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# generated scenario, seed %d\n", seed)
	for _, o := range g.objs {
		raw, err := yaml.Marshal(o)
		if err != nil {
			panic(err)
		}
		b.WriteString("---\n")
		b.Write(raw)
	}
	return b.Bytes()
}

type gen struct {
	r     *rand.Rand
	t0    time.Time
	objs  []runtime.Object
	tick  int
	nss   []string
	apps  map[string][]app // by namespace
	hosts []string         // service FQDNs
}

type app struct {
	name    string
	ports   []corev1.ServicePort
	targets []int32 // resolved container ports
}

func (g *gen) intn(n int) int        { return g.r.IntN(n) }
func (g *gen) chance(p float64) bool { return g.r.Float64() < p }
func pick[T any](g *gen, l []T) T    { return l[g.intn(len(l))] }

// created hands out creation times with frequent ties, so that name and
// namespace ordering is exercised too.
func (g *gen) created() metav1.Time {
	if !g.chance(0.3) {
		g.tick++
	}
	return metav1.NewTime(g.t0.Add(time.Duration(g.tick) * time.Second))
}

func (g *gen) add(o runtime.Object) { g.objs = append(g.objs, o) }

func (g *gen) scenario(seed uint64) {
	g.apps = map[string][]app{}
	root := "istio-system"
	g.add(&corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: root}})
	if g.chance(0.25) {
		g.add(&corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"),
			ObjectMeta: metav1.ObjectMeta{Name: policy.MeshConfigMapName, Namespace: root},
			Data:       map[string]string{"mesh": "enableAutoMtls: false\n"}})
	}
	n := 2 + g.intn(5)
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("ns%d", i)
		g.nss = append(g.nss, ns)
		g.add(&corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: ns}})
		for a := 0; a < 1+g.intn(2); a++ {
			g.service(ns, fmt.Sprintf("svc%d", a))
		}
	}
	g.peerAuthentications(root)
	g.destinationRules(root)
	g.sidecars(root) // last: the objects above stay those of earlier seeds
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

var portNames = []string{"http", "grpc", "tcp"}

func (g *gen) service(ns, name string) {
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
		if g.chance(0.8) {
			pod.Labels[policy.TLSModeLabel] = "istio"
			pod.Annotations = map[string]string{policy.SidecarStatusAnnotation: "{}"}
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: "proxyv2"})
		}
		g.add(pod)
	}
}

var mtlsModes = []securityapi.PeerAuthentication_MutualTLS_Mode{
	securityapi.PeerAuthentication_MutualTLS_UNSET, securityapi.PeerAuthentication_MutualTLS_DISABLE,
	securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, securityapi.PeerAuthentication_MutualTLS_STRICT,
}

func (g *gen) mtls() *securityapi.PeerAuthentication_MutualTLS {
	if g.chance(0.1) {
		return nil
	}
	return &securityapi.PeerAuthentication_MutualTLS{Mode: pick(g, mtlsModes)}
}

func (g *gen) peerAuthentications(root string) {
	pa := func(ns, name string) *securityv1.PeerAuthentication {
		return &securityv1.PeerAuthentication{
			TypeMeta:   typeMeta("security.istio.io/v1", "PeerAuthentication"),
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: g.created()},
			Spec:       securityapi.PeerAuthentication{Mtls: g.mtls()},
		}
	}
	for i := 0; i < g.intn(3); i++ { // mesh level, maybe several
		g.add(pa(root, fmt.Sprintf("mesh%d", i)))
	}
	for _, ns := range g.nss {
		for i := 0; i < g.intn(3); i++ { // namespace level, maybe several
			g.add(pa(ns, fmt.Sprintf("nspa%d", i)))
		}
		for i := 0; i < g.intn(3); i++ { // workload level
			a := pick(g, g.apps[ns])
			p := pa(ns, fmt.Sprintf("wl%d", i))
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
			g.add(p)
		}
	}
	if g.chance(0.1) { // ignored: a selector in the root namespace
		p := pa(root, "root-selector")
		p.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "svc0"}}
		g.add(p)
	}
}

var tlsModes = []networkingapi.ClientTLSSettings_TLSmode{
	networkingapi.ClientTLSSettings_DISABLE, networkingapi.ClientTLSSettings_SIMPLE,
	networkingapi.ClientTLSSettings_MUTUAL, networkingapi.ClientTLSSettings_ISTIO_MUTUAL,
}

func (g *gen) tls() *networkingapi.ClientTLSSettings {
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

func (g *gen) trafficPolicy(ports []int32) *networkingapi.TrafficPolicy {
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

func (g *gen) destinationRules(root string) {
	all := append([]string{root}, g.nss...)
	for i := 0; i < 1+g.intn(6); i++ {
		ns := pick(g, all)
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
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dr%d", i), Namespace: ns, CreationTimestamp: g.created()},
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
		case ns != root && g.chance(0.15):
			// A workloadSelector rule: private to its namespace.
			ca := pick(g, g.apps[ns])
			d.Spec.WorkloadSelector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": ca.name}}
		case g.chance(0.3):
			d.Spec.ExportTo = g.exportTo(ns)
		}
		g.add(d)
	}
}

func (g *gen) exportTo(ns string) []string {
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

// sidecars adds, to some scenarios, Sidecar resources that narrow what
// clients have clusters for (extended semantics doc §3): namespace
// defaults, workloadSelector Sidecars, a root-namespace default, port-scoped
// listeners and outbound traffic policies of the Sidecar and of the mesh.
func (g *gen) sidecars(root string) {
	if !g.chance(0.4) {
		return
	}
	egress := func(ns string) []*networkingapi.IstioEgressListener {
		choices := []string{"./*", root + "/*", "*/*"}
		for _, o := range g.nss {
			choices = append(choices, o+"/*")
		}
		for _, h := range g.hosts {
			choices = append(choices, "*/"+h)
		}
		var hosts []string
		for i := 0; i < 1+g.intn(3); i++ {
			if h := pick(g, choices); !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
		l := &networkingapi.IstioEgressListener{Hosts: hosts}
		if g.chance(0.2) {
			l.Port = &networkingapi.SidecarPort{Number: 80, Protocol: "HTTP", Name: "http"}
		}
		return []*networkingapi.IstioEgressListener{l}
	}
	outbound := func() *networkingapi.OutboundTrafficPolicy {
		switch g.intn(6) {
		case 0:
			return &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY}
		case 1:
			return &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_ALLOW_ANY}
		}
		return nil
	}
	sidecar := func(ns, name string) *networkingv1.Sidecar {
		return &networkingv1.Sidecar{
			TypeMeta:   typeMeta("networking.istio.io/v1", "Sidecar"),
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: g.created()},
			Spec:       networkingapi.Sidecar{Egress: egress(ns), OutboundTrafficPolicy: outbound()},
		}
	}
	if g.chance(0.3) {
		g.add(sidecar(root, "default"))
	}
	for _, ns := range g.nss {
		if g.chance(0.5) {
			g.add(sidecar(ns, "default"))
		}
		if g.chance(0.25) {
			sc := sidecar(ns, "selected")
			sc.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": pick(g, g.apps[ns]).name}}
			g.add(sc)
		}
	}
	if g.chance(0.2) {
		mode := "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"
		for _, o := range g.objs {
			if cm, ok := o.(*corev1.ConfigMap); ok {
				cm.Data["mesh"] += mode
				return
			}
		}
		g.add(&corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"),
			ObjectMeta: metav1.ObjectMeta{Name: policy.MeshConfigMapName, Namespace: root},
			Data:       map[string]string{"mesh": mode}})
	}
}
