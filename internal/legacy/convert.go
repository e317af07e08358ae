// Package legacy reads the authentication.istio.io/v1alpha1 MeshPolicy and
// Policy that Istio removed in 1.6 (Istio's mutual TLS Deep-Dive was
// written for them) and converts them to security.istio.io/v1
// PeerAuthentications, the way Istio's migration tool
// (istio-ecosystem/security-policy-migrate) and the 1.6 upgrade notes did:
//
//   - the MeshPolicy "default" becomes the PeerAuthentication "default" of
//     the root namespace, with no selector;
//   - a Policy without targets (it must be named "default") becomes the
//     PeerAuthentication "default" of its namespace;
//   - each target of a Policy becomes a PeerAuthentication
//     "<policy>-<service>" in the policy's namespace that selects the
//     Service's pods (its spec.selector) and, when the target names ports,
//     sets portLevelMtls keyed by each port's target port. Both need the
//     Service, and a named targetPort needs its pods, in the same files.
//
// Modes: "mtls:" or "mtls: {}" is STRICT, mode PERMISSIVE or the deprecated
// allowTls is PERMISSIVE, and a policy without an mtls peer accepts
// plaintext only, so it becomes DISABLE (semantics doc §6). The migration
// tool wrote PERMISSIVE there, because auto mTLS of Istio 1.6 ignored a
// workload's DISABLE; Istio 1.12 and later honour it, and DISABLE is what
// the old policy did.
//
// A port-level target converts to a PeerAuthentication with portLevelMtls
// only: its other ports inherit the namespace and mesh modes, as the alpha
// policy let them fall through. peerIsOptional, origins (JWT),
// originIsOptional and principalBinding do not change the TLS a server
// accepts and are not converted; Convert notes them.
package legacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mtlsguard/mtlsguard/internal/load"
)

// Converted is one PeerAuthentication and the legacy object it came from.
type Converted struct {
	PeerAuthentication *securityv1.PeerAuthentication
	From               *Policy
	// Target is the service of the policy's target, "" for a mesh or
	// namespace policy.
	Target string
}

// Result is what Convert made of a set of documents.
type Result struct {
	// Converted is sorted by namespace and name.
	Converted []Converted
	// Notes name the fields that were read and not converted.
	Notes []string
}

// Objects are the converted PeerAuthentications.
func (r Result) Objects() []runtime.Object {
	out := make([]runtime.Object, len(r.Converted))
	for i, c := range r.Converted {
		out[i] = c.PeerAuthentication
	}
	return out
}

// Refs maps each converted PeerAuthentication's name/namespace to the
// legacy object's (Policy.Ref), so that a table names what the user wrote.
func (r Result) Refs() map[string]string {
	out := make(map[string]string, len(r.Converted))
	for _, c := range r.Converted {
		out[c.PeerAuthentication.Name+"/"+c.PeerAuthentication.Namespace] = c.From.Ref()
	}
	return out
}

// Convert converts every legacy document. objs are the other objects of
// the same files: the Services and Pods targets need, and the
// PeerAuthentications a converted one must not collide with.
func Convert(docs []load.Document, objs []runtime.Object, rootNamespace string) (Result, error) {
	c := converter{root: rootNamespace, services: map[string]*corev1.Service{}, names: map[string]string{}, targeted: map[string]string{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Service:
			c.services[o.Namespace+"/"+o.Name] = o
		case *corev1.Pod:
			c.pods = append(c.pods, o)
		case *securityv1.PeerAuthentication:
			c.names[o.Namespace+"/"+o.Name] = "a PeerAuthentication of the files"
		}
	}
	var res Result
	for _, doc := range docs {
		p, err := Decode(doc)
		if err != nil {
			return Result{}, err
		}
		out, err := c.convert(p)
		if err != nil {
			return Result{}, err
		}
		res.Converted = append(res.Converted, out...)
		res.Notes = append(res.Notes, notes(p)...)
	}
	slices.SortFunc(res.Converted, func(a, b Converted) int {
		if a.PeerAuthentication.Namespace != b.PeerAuthentication.Namespace {
			return compare(a.PeerAuthentication.Namespace, b.PeerAuthentication.Namespace)
		}
		return compare(a.PeerAuthentication.Name, b.PeerAuthentication.Name)
	})
	return res, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type converter struct {
	root     string
	services map[string]*corev1.Service
	pods     []*corev1.Pod
	// names maps a PeerAuthentication namespace/name already taken to who
	// took it; targeted maps a namespace/service to the policy targeting it.
	names, targeted map[string]string
}

func (c *converter) convert(p *Policy) ([]Converted, error) {
	mode, err := p.mode()
	if err != nil {
		return nil, err
	}
	name := p.Metadata.Name
	switch {
	case p.Kind == "MeshPolicy":
		if name != "default" {
			return nil, p.errorf("metadata.name: Istio reads only the MeshPolicy named default")
		}
		if len(p.Spec.Targets) > 0 {
			return nil, p.errorf("spec.targets: a MeshPolicy applies to the whole mesh and takes no targets")
		}
		pa := c.newPA(p, c.root, "default", "mesh-wide")
		pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
		return c.claim(p, "metadata.name", Converted{PeerAuthentication: pa, From: p})
	case p.Metadata.Namespace == c.root:
		return nil, p.errorf("metadata.namespace: a Policy in the root namespace %s cannot be converted: "+
			"a PeerAuthentication there is mesh-wide, and Istio ignores its selector", c.root)
	case len(p.Spec.Targets) == 0:
		if name != "default" {
			return nil, p.errorf("metadata.name: a Policy without targets applies to its namespace and must be named default")
		}
		pa := c.newPA(p, p.Metadata.Namespace, "default", "namespace-wide")
		pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
		return c.claim(p, "metadata.name", Converted{PeerAuthentication: pa, From: p})
	case name == "default":
		return nil, p.errorf("spec.targets: a Policy named default applies to its namespace and takes no targets")
	}
	var out []Converted
	for i, t := range p.Spec.Targets {
		conv, err := c.target(p, i, t, mode)
		if err != nil {
			return nil, err
		}
		claimed, err := c.claim(p, fmt.Sprintf("spec.targets[%d].name", i), conv)
		if err != nil {
			return nil, err
		}
		out = append(out, claimed...)
	}
	return out, nil
}

// target converts target i of p to a workload PeerAuthentication.
func (c *converter) target(p *Policy, i int, t Target, mode securityapi.PeerAuthentication_MutualTLS_Mode) (Converted, error) {
	field := fmt.Sprintf("spec.targets[%d]", i)
	ns := p.Metadata.Namespace
	if t.Name == "" {
		return Converted{}, p.errorf("%s.name: empty: a target names a Service of namespace %s", field, ns)
	}
	svc := c.services[ns+"/"+t.Name]
	if svc == nil {
		return Converted{}, p.errorf("%s.name: Service %s/%s is not in the files: the target becomes a PeerAuthentication "+
			"that selects the Service's pods, so give tls-check the Service with -f", field, ns, t.Name)
	}
	if len(svc.Spec.Selector) == 0 {
		return Converted{}, p.errorf("%s.name: Service %s/%s has no selector, so there are no pods to select", field, ns, t.Name)
	}
	key := ns + "/" + t.Name
	if other, ok := c.targeted[key]; ok {
		return Converted{}, p.errorf("%s.name: Service %s is also a target of %s; Istio applies only the oldest "+
			"PeerAuthentication that selects a pod, so merge the two targets into one", field, key, other)
	}
	c.targeted[key] = fmt.Sprintf("%s %s (%s)", p.Kind, p.Name(), p.Where)
	pa := c.newPA(p, ns, p.Metadata.Name+"-"+t.Name, "target "+t.Name)
	pa.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: clone(svc.Spec.Selector)}
	if len(t.Ports) == 0 {
		pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
		return Converted{PeerAuthentication: pa, From: p, Target: t.Name}, nil
	}
	pa.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{}
	for j, ps := range t.Ports {
		port, err := c.targetPort(svc, ps)
		if err != nil {
			return Converted{}, p.errorf("%s.ports[%d]: %v", field, j, err)
		}
		pa.Spec.PortLevelMtls[port] = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
	}
	return Converted{PeerAuthentication: pa, From: p, Target: t.Name}, nil
}

// targetPort resolves a service port selector to the pods' port number,
// which portLevelMtls is keyed by.
func (c *converter) targetPort(svc *corev1.Service, ps PortSelector) (uint32, error) {
	if ps.Name == "" && ps.Number == 0 {
		return 0, fmt.Errorf("neither number nor name is set")
	}
	for _, sp := range svc.Spec.Ports {
		if (ps.Name != "" && sp.Name != ps.Name) || (ps.Name == "" && uint32(sp.Port) != ps.Number) {
			continue
		}
		switch {
		case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
			return c.namedPort(svc, sp)
		case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0:
			return uint32(sp.TargetPort.IntVal), nil
		}
		return uint32(sp.Port), nil
	}
	return 0, fmt.Errorf("Service %s/%s has no port %s", svc.Namespace, svc.Name, ps)
}

// namedPort resolves a named targetPort through the pods the Service
// selects, which must agree on its number.
func (c *converter) namedPort(svc *corev1.Service, sp corev1.ServicePort) (uint32, error) {
	var found []int32
	for _, p := range c.pods {
		if p.Namespace != svc.Namespace || !selects(svc.Spec.Selector, p.Labels) {
			continue
		}
		for _, ct := range p.Spec.Containers {
			for _, cp := range ct.Ports {
				if cp.Name == sp.TargetPort.StrVal && !slices.Contains(found, cp.ContainerPort) {
					found = append(found, cp.ContainerPort)
				}
			}
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("port %d of Service %s/%s has the named targetPort %q, and no pod of the Service in the files declares it: "+
			"give tls-check the pods with -f, since portLevelMtls is keyed by the port number", sp.Port, svc.Namespace, svc.Name, sp.TargetPort.StrVal)
	case 1:
		return uint32(found[0]), nil
	}
	slices.Sort(found)
	return 0, fmt.Errorf("port %d of Service %s/%s has the named targetPort %q, which its pods number differently (%v): "+
		"one PeerAuthentication cannot key them all", sp.Port, svc.Namespace, svc.Name, sp.TargetPort.StrVal, found)
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if w, ok := labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ConvertedFromAnnotation records, on each PeerAuthentication, what it was
// converted from.
const ConvertedFromAnnotation = "mtlsguard.io/converted-from"

func (c *converter) newPA(p *Policy, ns, name, what string) *securityv1.PeerAuthentication {
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{
		Namespace:         ns,
		Name:              name,
		CreationTimestamp: p.Metadata.CreationTimestamp,
		Annotations:       map[string]string{ConvertedFromAnnotation: fmt.Sprintf("v1alpha1 %s %s, %s", p.Kind, p.Name(), what)},
	}}
	pa.SetGroupVersionKind(securityv1.SchemeGroupVersion.WithKind("PeerAuthentication"))
	return pa
}

// claim reserves the converted PeerAuthentication's namespace/name.
func (c *converter) claim(p *Policy, field string, conv Converted) ([]Converted, error) {
	key := conv.PeerAuthentication.Namespace + "/" + conv.PeerAuthentication.Name
	if other, ok := c.names[key]; ok {
		return nil, p.errorf("%s: converts to PeerAuthentication %s, which is already %s", field, key, other)
	}
	c.names[key] = fmt.Sprintf("converted from %s %s (%s)", p.Kind, p.Name(), p.Where)
	return []Converted{conv}, nil
}

var null = []byte("null")

// mode is the server mode the policy sets: the first peer method with
// mtls decides (istio@1.4.0 GetMutualTLS); none is plaintext only.
func (p *Policy) mode() (securityapi.PeerAuthentication_MutualTLS_Mode, error) {
	for i, peer := range p.Spec.Peers {
		field := fmt.Sprintf("spec.peers[%d]", i)
		switch {
		case peer.Mtls != nil && peer.Jwt != nil:
			return 0, p.errorf("%s: mtls and jwt are one of: set only one", field)
		case peer.Mtls == nil && peer.Jwt == nil:
			return 0, p.errorf("%s: set mtls (jwt peers were never supported)", field)
		case peer.Mtls == nil:
			continue // a jwt peer: never implemented by Istio
		case bytes.Equal(peer.Mtls, null):
			return securityapi.PeerAuthentication_MutualTLS_STRICT, nil
		}
		var m MutualTLS
		dec := json.NewDecoder(bytes.NewReader(peer.Mtls))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return 0, p.errorf("%s.mtls: %v", field, err)
		}
		mode, err := alphaMode(m.Mode)
		if err != nil {
			return 0, p.errorf("%s.mtls.mode: %v", field, err)
		}
		if m.AllowTLS {
			mode = securityapi.PeerAuthentication_MutualTLS_PERMISSIVE
		}
		return mode, nil
	}
	return securityapi.PeerAuthentication_MutualTLS_DISABLE, nil
}

// alphaMode reads MutualTls.Mode by name or number; unset is STRICT.
func alphaMode(raw json.RawMessage) (securityapi.PeerAuthentication_MutualTLS_Mode, error) {
	if len(raw) == 0 || bytes.Equal(raw, null) {
		return securityapi.PeerAuthentication_MutualTLS_STRICT, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		s = string(raw) // a number
	}
	switch s {
	case "STRICT", "0":
		return securityapi.PeerAuthentication_MutualTLS_STRICT, nil
	case "PERMISSIVE", "1":
		return securityapi.PeerAuthentication_MutualTLS_PERMISSIVE, nil
	}
	return 0, fmt.Errorf("unknown mode %s: v1alpha1 knows STRICT and PERMISSIVE", strconv.Quote(s))
}

// notes names the fields of p that were read and not converted.
func notes(p *Policy) []string {
	var out []string
	note := func(field, why string) {
		out = append(out, fmt.Sprintf("%s: %s %s: %s is not converted: %s", p.Where, p.Kind, p.Name(), field, why))
	}
	if p.Spec.PeerIsOptional {
		note("spec.peerIsOptional", "PeerAuthentication has no equivalent; the server mode is the peers' mode")
	}
	if len(p.Spec.Origins) > 0 || p.Spec.OriginIsOptional || len(p.Spec.PrincipalBinding) > 0 {
		note("origin authentication (spec.origins, originIsOptional, principalBinding)", "write a RequestAuthentication and an AuthorizationPolicy for it")
	}
	for i, peer := range p.Spec.Peers {
		if peer.Jwt != nil && peer.Mtls == nil {
			note(fmt.Sprintf("spec.peers[%d].jwt", i), "Istio never implemented JWT peer authentication")
		}
	}
	return out
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
