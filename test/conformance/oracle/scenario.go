// Package oracle answers "what TLS does a client sidecar send to each endpoint
// of a service port, and does the server sidecar accept it?" by running Istio's
// own control plane code (pilot's fake discovery server, config generators and
// the pilot/pkg/simulation traffic simulator) on a scenario of Kubernetes and
// Istio objects.
package oracle

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
)

const (
	// DomainSuffix is the cluster DNS domain used for every scenario.
	DomainSuffix = "cluster.local"
	// TLSModeLabel marks a pod as having an Istio sidecar when set to "istio".
	TLSModeLabel = "security.istio.io/tlsMode"
)

// Scenario is a parsed and normalised scenario file.
type Scenario struct {
	Namespaces map[string]*corev1.Namespace
	Services   []*corev1.Service
	Pods       []*corev1.Pod
	// Configs are the Istio configs (PeerAuthentication, DestinationRule, ...) accepted into the store.
	Configs []config.Config
	// Rejected lists Istio configs that failed Istio's own validation (what istiod's
	// validating webhook would refuse); they are not fed to the control plane unless KeepInvalid.
	Rejected []string
	// Warnings lists validation warnings and ignored documents.
	Warnings []string
	Mesh     *meshconfig.MeshConfig
}

// ParseOptions tunes scenario parsing.
type ParseOptions struct {
	// KeepInvalid feeds configs that fail Istio validation to the control plane anyway.
	KeepInvalid bool
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// HasSidecar reports whether the pod has an Istio sidecar (label security.istio.io/tlsMode=istio).
func HasSidecar(p *corev1.Pod) bool {
	return p.Labels[TLSModeLabel] == "istio"
}

// Terminated reports whether the pod has finished (Succeeded/Failed); such pods are no endpoints.
func Terminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// ParseScenario parses a multi-document YAML scenario.
func ParseScenario(data []byte, opts ParseOptions) (*Scenario, error) {
	sc := &Scenario{Namespaces: map[string]*corev1.Namespace{}}
	var meshCMs []*corev1.ConfigMap
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm typeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		if tm.Kind == "" {
			continue // empty / comment-only document
		}
		switch {
		case tm.APIVersion == "v1" && tm.Kind == "Namespace":
			ns := &corev1.Namespace{}
			if err := yaml.Unmarshal(doc, ns); err != nil {
				return nil, fmt.Errorf("namespace %s: %v", tm.Metadata.Name, err)
			}
			sc.Namespaces[ns.Name] = ns
		case tm.APIVersion == "v1" && tm.Kind == "Service":
			svc := &corev1.Service{}
			if err := yaml.Unmarshal(doc, svc); err != nil {
				return nil, fmt.Errorf("service %s: %v", tm.Metadata.Name, err)
			}
			sc.Services = append(sc.Services, svc)
		case tm.APIVersion == "v1" && tm.Kind == "Pod":
			pod := &corev1.Pod{}
			if err := yaml.Unmarshal(doc, pod); err != nil {
				return nil, fmt.Errorf("pod %s: %v", tm.Metadata.Name, err)
			}
			sc.Pods = append(sc.Pods, pod)
		case tm.APIVersion == "v1" && tm.Kind == "ConfigMap":
			cm := &corev1.ConfigMap{}
			if err := yaml.Unmarshal(doc, cm); err != nil {
				return nil, fmt.Errorf("configmap %s: %v", tm.Metadata.Name, err)
			}
			if cm.Name == "istio" {
				meshCMs = append(meshCMs, cm)
			} else {
				sc.Warnings = append(sc.Warnings, fmt.Sprintf("ignored ConfigMap %s/%s", cm.Namespace, cm.Name))
			}
		default:
			if err := sc.addIstioConfig(doc, tm, opts); err != nil {
				return nil, err
			}
		}
	}
	if err := sc.applyMesh(meshCMs); err != nil {
		return nil, err
	}
	sc.normalize()
	return sc, nil
}

func (sc *Scenario) addIstioConfig(doc []byte, tm typeMeta, opts ParseOptions) error {
	obj := crd.IstioKind{}
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return fmt.Errorf("%s %s: %v", tm.Kind, tm.Metadata.Name, err)
	}
	gvk := obj.GroupVersionKind()
	s, ok := collections.PilotGatewayAPI().FindByGroupVersionAliasesKind(resource.FromKubernetesGVK(&gvk))
	if !ok {
		sc.Warnings = append(sc.Warnings, fmt.Sprintf("ignored unsupported kind %s %s", tm.APIVersion, tm.Kind))
		return nil
	}
	cfg, err := crd.ConvertObject(s, &obj, DomainSuffix)
	if err != nil {
		return fmt.Errorf("%s %s: %v", tm.Kind, tm.Metadata.Name, err)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	id := fmt.Sprintf("%s %s/%s", tm.Kind, cfg.Namespace, cfg.Name)
	warn, verr := s.ValidateConfig(*cfg)
	if warn != nil {
		sc.Warnings = append(sc.Warnings, fmt.Sprintf("%s: validation warning: %v", id, warn))
	}
	if verr != nil {
		sc.Rejected = append(sc.Rejected, fmt.Sprintf("%s: %v", id, verr))
		if !opts.KeepInvalid {
			return nil
		}
	}
	sc.Configs = append(sc.Configs, *cfg)
	return nil
}

func (sc *Scenario) applyMesh(cms []*corev1.ConfigMap) error {
	m := mesh.DefaultMeshConfig()
	if len(cms) > 0 {
		// Prefer the one in istio-system; otherwise the first one.
		cm := cms[0]
		for _, c := range cms {
			if c.Namespace == "istio-system" {
				cm = c
				break
			}
		}
		if y := cm.Data["mesh"]; strings.TrimSpace(y) != "" {
			var err error
			m, err = mesh.ApplyMeshConfigDefaults(y)
			if err != nil {
				return fmt.Errorf("mesh config in ConfigMap %s/%s: %v", cm.Namespace, cm.Name, err)
			}
		}
	}
	if m.RootNamespace == "" {
		m.RootNamespace = "istio-system"
	}
	sc.Mesh = m
	return nil
}

// normalize defaults namespaces and service accounts, assigns pod IPs and
// service cluster IPs, and makes every non-terminated pod Running+Ready so
// that it is an endpoint.
func (sc *Scenario) normalize() {
	ensureNS := func(ns string) {
		if _, ok := sc.Namespaces[ns]; !ok {
			sc.Namespaces[ns] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		}
	}
	ensureNS("default")
	ensureNS(sc.Mesh.RootNamespace)
	used := map[string]bool{}
	for _, p := range sc.Pods {
		if p.Namespace == "" {
			p.Namespace = "default"
		}
		if p.Spec.ServiceAccountName == "" {
			// The API server's ServiceAccount admission: without it Istio
			// would name the pod's identity ".../sa/".
			p.Spec.ServiceAccountName = "default"
		}
		ensureNS(p.Namespace)
		if p.Status.PodIP != "" {
			used[p.Status.PodIP] = true
		}
	}
	for _, s := range sc.Services {
		if s.Namespace == "" {
			s.Namespace = "default"
		}
		ensureNS(s.Namespace)
		if s.Spec.ClusterIP != "" {
			used[s.Spec.ClusterIP] = true
		}
	}
	for _, c := range sc.Configs {
		ensureNS(c.Namespace)
	}
	podIP := netip.MustParseAddr("10.244.0.10")
	nextIP := func(a netip.Addr) (netip.Addr, string) {
		for used[a.String()] {
			a = a.Next()
		}
		used[a.String()] = true
		return a.Next(), a.String()
	}
	for _, p := range sc.Pods {
		if p.Status.PodIP == "" {
			var ip string
			podIP, ip = nextIP(podIP)
			p.Status.PodIP = ip
		}
		p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
		// The API server's defaulting: a container port's protocol is TCP.
		for i := range p.Spec.Containers {
			for j := range p.Spec.Containers[i].Ports {
				if cp := &p.Spec.Containers[i].Ports[j]; cp.Protocol == "" {
					cp.Protocol = corev1.ProtocolTCP
				}
			}
		}
		if !Terminated(p) {
			p.Status.Phase = corev1.PodRunning
			conds := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			for _, c := range p.Status.Conditions {
				if c.Type != corev1.PodReady {
					conds = append(conds, c)
				}
			}
			p.Status.Conditions = conds
		}
	}
	svcIP := netip.MustParseAddr("10.96.0.10")
	for _, s := range sc.Services {
		if s.Spec.ClusterIP == "" {
			var ip string
			svcIP, ip = nextIP(svcIP)
			s.Spec.ClusterIP = ip
		}
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		}
		if s.Spec.Type == "" {
			s.Spec.Type = corev1.ServiceTypeClusterIP
		}
		for i := range s.Spec.Ports {
			pt := &s.Spec.Ports[i]
			if pt.Protocol == "" {
				pt.Protocol = corev1.ProtocolTCP
			}
			if pt.TargetPort.Type == intstr.Int && pt.TargetPort.IntVal == 0 {
				pt.TargetPort = intstr.FromInt32(pt.Port)
			}
		}
	}
	sort.SliceStable(sc.Services, func(i, j int) bool {
		return sc.Services[i].Namespace+"/"+sc.Services[i].Name < sc.Services[j].Namespace+"/"+sc.Services[j].Name
	})
	sort.SliceStable(sc.Pods, func(i, j int) bool { return PodKey(sc.Pods[i]) < PodKey(sc.Pods[j]) })
	if ambientOn() {
		sc.markCaptured()
	}
}

// PodKey is "namespace/name".
func PodKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// Hostname is the service FQDN.
func Hostname(s *corev1.Service) string {
	return fmt.Sprintf("%s.%s.svc.%s", s.Name, s.Namespace, DomainSuffix)
}

// Selects reports whether the service's selector selects the pod (same namespace,
// non-empty selector that is a subset of the pod labels).
func Selects(s *corev1.Service, p *corev1.Pod) bool {
	if s.Namespace != p.Namespace || len(s.Spec.Selector) == 0 {
		return false
	}
	return labelsSubset(s.Spec.Selector, p.Labels)
}

func labelsSubset(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if lv, ok := lbls[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// ResolveTargetPort resolves a service port's targetPort for a pod the way the
// Kubernetes endpoints controller does (podutil.FindPort).
func ResolveTargetPort(p *corev1.Pod, sp corev1.ServicePort) (int32, bool) {
	if sp.TargetPort.Type == intstr.Int {
		return sp.TargetPort.IntVal, true
	}
	name := sp.TargetPort.StrVal
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if cp.Name == name && proto == sp.Protocol {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// KubernetesObjects returns the objects fed to the fake Kubernetes client,
// including the EndpointSlices that the Kubernetes endpointslice controller
// would have created (one slice per service/pod, holding that pod's resolved ports).
func (sc *Scenario) KubernetesObjects() []runtime.Object {
	var out []runtime.Object
	nsNames := make([]string, 0, len(sc.Namespaces))
	for n := range sc.Namespaces {
		nsNames = append(nsNames, n)
	}
	sort.Strings(nsNames)
	for _, n := range nsNames {
		out = append(out, sc.Namespaces[n].DeepCopy())
	}
	for _, p := range sc.Pods {
		out = append(out, p.DeepCopy())
	}
	for _, s := range sc.Services {
		out = append(out, s.DeepCopy())
		for _, p := range sc.Pods {
			if Terminated(p) || !Selects(s, p) {
				continue
			}
			var ports []discoveryv1.EndpointPort
			for _, sp := range s.Spec.Ports {
				tp, ok := ResolveTargetPort(p, sp)
				if !ok {
					continue
				}
				ports = append(ports, discoveryv1.EndpointPort{
					Name:     ptr(sp.Name),
					Port:     ptr(tp),
					Protocol: ptr(sp.Protocol),
				})
			}
			if len(ports) == 0 {
				continue
			}
			out = append(out, &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					Name:      fmt.Sprintf("%s-%s", s.Name, p.Name),
					Namespace: s.Namespace,
					Labels: map[string]string{
						discoveryv1.LabelServiceName: s.Name,
						discoveryv1.LabelManagedBy:   "endpointslice-controller.k8s.io",
					},
				},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints: []discoveryv1.Endpoint{{
					Addresses:  []string{p.Status.PodIP},
					Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
					TargetRef: &corev1.ObjectReference{
						Kind:      "Pod",
						Namespace: p.Namespace,
						Name:      p.Name,
						UID:       p.UID,
					},
				}},
				Ports: ports,
			})
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
