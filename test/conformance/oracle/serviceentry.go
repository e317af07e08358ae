package oracle

import (
	"fmt"
	"maps"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/protocol"
	"istio.io/istio/pkg/config/schema/gvk"
)

// ServiceEntry hosts (extended semantics doc §2). Istio's service registry
// makes one service per host of a MESH_INTERNAL ServiceEntry; its endpoints
// are the entry's inline endpoints, or the Pods and WorkloadEntries of the
// entry's namespace its workloadSelector selects
// (pilot/pkg/serviceregistry/serviceentry/conversion.go
// convertServiceEntryToInstances, convertWorkloadEntryToWorkloadInstance,
// convertWorkloadInstanceToServiceInstance). Clients are the sidecar pods,
// as for Kubernetes Services; their clusters outbound|port|subset|host come
// from CDS as for any host.
//
// A workload outside Kubernetes is served by a proxy when its tlsMode
// (getTLSModeFromWorkloadEntry: the security.istio.io/tlsMode label, else
// "istio" when it names a serviceAccount, else "disabled") is "istio": the
// oracle then builds the model.Proxy istiod builds for a VM's sidecar when
// its istio-agent connects, and runs the same inbound simulation as for a
// pod. Any other tlsMode is a workload without a proxy, which accepts
// plaintext only; this is the engine's rule too (policy/serviceentry.go).
//
// Left out, as the engine leaves them out: MESH_EXTERNAL entries (TLS
// origination, endpoints outside the mesh's policies), DYNAMIC_DNS, a DNS
// entry's synthetic endpoint (the host name itself: what answers there is
// not in the configuration), WorkloadEntries addressed by host name or unix
// socket, and ambient mode (the ambient family has no ServiceEntries).

// vmWorkload is a WorkloadEntry, or an inline endpoint of a ServiceEntry,
// as a workload instance.
type vmWorkload struct {
	// key is the engine's name for the endpoint: "WorkloadEntry ns/name",
	// or "ServiceEntry ns/name endpoints[i] address".
	key string
	// name is the workload instance's name: the WorkloadEntry's, or
	// "<entry>-<index>" for an inline endpoint.
	name, namespace, address, serviceAccount string
	labels                                   map[string]string
	ports                                    map[string]uint32
}

// tlsMode is getTLSModeFromWorkloadEntry.
func (vm *vmWorkload) tlsMode() string {
	if v, ok := vm.labels[TLSModeLabel]; ok {
		return v
	}
	if vm.serviceAccount != "" {
		return model.IstioMutualTLSModeLabel
	}
	return model.DisabledTLSModeLabel
}

// sidecar reports whether the workload runs a proxy of Istio's.
func (vm *vmWorkload) sidecar() bool { return vm.tlsMode() == model.IstioMutualTLSModeLabel }

// newVMWorkload is convertWorkloadEntryToWorkloadInstance reduced to what
// the oracle reads; meta are the WorkloadEntry's metadata labels, which win
// over its spec's (ConvertWorkloadEntry).
func newVMWorkload(key, ns, name string, we *networking.WorkloadEntry, meta map[string]string) *vmWorkload {
	lbls := maps.Clone(we.GetLabels())
	if lbls == nil {
		lbls = map[string]string{}
	}
	maps.Copy(lbls, meta)
	return &vmWorkload{
		key: key, name: name, namespace: ns, address: we.GetAddress(),
		serviceAccount: we.GetServiceAccount(), labels: lbls, ports: we.GetPorts(),
	}
}

// addressedByIP reports whether the workload has an IP address: one
// addressed by host name or unix socket serves DNS entries only, which the
// oracle leaves out.
func (vm *vmWorkload) addressedByIP() bool {
	_, err := netip.ParseAddr(vm.address)
	return err == nil
}

// entryTargetPort is convertWorkloadInstanceToServiceInstance's priority:
// the workload's port of the entry port's name, the entry port's
// targetPort, its number.
func entryTargetPort(ports map[string]uint32, p *networking.ServicePort) int32 {
	if n, ok := ports[p.GetName()]; ok && n > 0 {
		return int32(n)
	}
	if p.GetTargetPort() > 0 {
		return int32(p.GetTargetPort())
	}
	return int32(p.GetNumber())
}

// podPortMap is kube/controller/pod.go getPortMap: a pod's named TCP
// container ports, the first of a name winning.
func podPortMap(p *corev1.Pod) map[string]uint32 {
	out := map[string]uint32{}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "" || cp.Protocol != corev1.ProtocolTCP {
				continue
			}
			if _, ok := out[cp.Name]; !ok {
				out[cp.Name] = uint32(cp.ContainerPort)
			}
		}
	}
	return out
}

// EntryModelled reports whether the oracle lists pairs for the hosts of a
// ServiceEntry: MESH_INTERNAL, resolved statically, by DNS or not at all.
func EntryModelled(se *networking.ServiceEntry) bool {
	if se.GetLocation() != networking.ServiceEntry_MESH_INTERNAL {
		return false
	}
	switch se.GetResolution() {
	case networking.ServiceEntry_STATIC, networking.ServiceEntry_DNS,
		networking.ServiceEntry_DNS_ROUND_ROBIN, networking.ServiceEntry_NONE:
		return true
	}
	return false
}

func (sc *Scenario) configsOf(kind config.GroupVersionKind) []config.Config {
	var out []config.Config
	for _, c := range sc.Configs {
		if c.GroupVersionKind == kind {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out
}

// entryEndpoints are the endpoints of one port of a ServiceEntry.
func (sc *Scenario) entryEndpoints(c config.Config, se *networking.ServiceEntry, p *networking.ServicePort) []endpointRef {
	var eps []endpointRef
	for i, we := range se.GetEndpoints() {
		key := fmt.Sprintf("ServiceEntry %s/%s endpoints[%d] %s", c.Namespace, c.Name, i, we.GetAddress())
		vm := newVMWorkload(key, c.Namespace, fmt.Sprintf("%s-%d", c.Name, i), we, nil)
		if vm.addressedByIP() {
			eps = append(eps, endpointRef{vm: vm, targetPort: entryTargetPort(vm.ports, p)})
		}
	}
	sel := se.GetWorkloadSelector()
	if sel == nil {
		return eps
	}
	for _, pod := range sc.Pods {
		if pod.Namespace != c.Namespace || Terminated(pod) || !labelsSubset(sel.GetLabels(), pod.Labels) {
			continue
		}
		eps = append(eps, endpointRef{pod: pod, targetPort: entryTargetPort(podPortMap(pod), p)})
	}
	for _, wc := range sc.configsOf(gvk.WorkloadEntry) {
		if wc.Namespace != c.Namespace {
			continue
		}
		vm := newVMWorkload("WorkloadEntry "+wc.Namespace+"/"+wc.Name, wc.Namespace, wc.Name, wc.Spec.(*networking.WorkloadEntry), wc.Labels)
		if vm.addressedByIP() && labelsSubset(sel.GetLabels(), vm.labels) {
			eps = append(eps, endpointRef{vm: vm, targetPort: entryTargetPort(vm.ports, p)})
		}
	}
	return eps
}

// entryPairs are the pairs of the sidecar clients with the endpoints of
// every modelled ServiceEntry host.
func (e *evaluator) entryPairs(clients []*corev1.Pod) []Pair {
	var pairs []Pair
	for _, c := range e.sc.configsOf(gvk.ServiceEntry) {
		se := c.Spec.(*networking.ServiceEntry)
		if !EntryModelled(se) {
			continue
		}
		for _, p := range se.GetPorts() {
			proto := protocol.Parse(p.GetProtocol())
			if proto.IsUnsupported() || proto == protocol.UDP {
				continue
			}
			eps := e.sc.entryEndpoints(c, se, p)
			if len(eps) == 0 {
				continue
			}
			for _, h := range se.GetHosts() {
				pairs = append(pairs, e.clientPairs(clients, h, svcPort{port: int32(p.GetNumber()), proto: proto}, eps)...)
			}
		}
	}
	return pairs
}

// serverState is the proxy that serves an endpoint: the pod's sidecar, or
// the VM's.
func (e *evaluator) serverState(ep endpointRef) *proxyState {
	if ep.vm == nil {
		return e.state(ep.pod)
	}
	key := "vm:" + ep.vm.namespace + "/" + ep.vm.name
	if ps, ok := e.proxies[key]; ok {
		return ps
	}
	lbls := maps.Clone(ep.vm.labels)
	// What a VM's istio-agent announces (its cluster.env: namespace,
	// labels, service account, workload name) and istiod's handling of it
	// on connect: SetWorkloadLabels finds the workload instance by IP, else
	// keeps the metadata labels, then targets and sidecar scope.
	p := &model.Proxy{
		Type:            model.SidecarProxy,
		ID:              ep.vm.name + "." + ep.vm.namespace,
		IPAddresses:     []string{ep.vm.address},
		ConfigNamespace: ep.vm.namespace,
		DNSDomain:       ep.vm.namespace + ".svc." + DomainSuffix,
		Labels:          lbls,
		Metadata: &model.NodeMetadata{
			Namespace:        ep.vm.namespace,
			Labels:           lbls,
			ClusterID:        constants.DefaultClusterName,
			IstioVersion:     ProxyIstioVersion,
			WorkloadName:     ep.vm.name,
			InterceptionMode: model.InterceptionRedirect,
		},
	}
	if ep.vm.serviceAccount != "" {
		p.Metadata.ServiceAccount = ep.vm.serviceAccount
	}
	p.SetWorkloadLabels(e.fds.Env())
	p = e.fds.SetupProxy(p)
	ps := &proxyState{proxy: p}
	e.proxies[key] = ps
	return ps
}
