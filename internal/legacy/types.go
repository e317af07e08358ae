package legacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtlsguard/mtlsguard/internal/load"
)

// The authentication.istio.io/v1alpha1 schema (api@1.4.0
// authentication/v1alpha1/policy.proto), defined here because istio.io/api
// no longer has it. MeshPolicy and Policy share the spec.

// Version is the only version of the group Istio served.
const Version = "authentication.istio.io/v1alpha1"

// Policy is a MeshPolicy (cluster-scoped) or a Policy (namespaced).
type Policy struct {
	Kind     string
	Metadata metav1.ObjectMeta
	Spec     Spec
	// Where names the file and document it came from.
	Where string
}

// Spec is the policy proto's spec.
type Spec struct {
	// Targets select services by short name and, optionally, service
	// ports. Empty: the whole namespace (or mesh).
	Targets []Target `json:"targets,omitempty"`
	// Peers: the first method with mtls decides; none means plaintext
	// only.
	Peers []PeerMethod `json:"peers,omitempty"`
	// PeerIsOptional, Origins, OriginIsOptional and PrincipalBinding do
	// not change which TLS the server accepts: read, then ignored.
	PeerIsOptional   bool              `json:"peerIsOptional,omitempty"`
	Origins          []json.RawMessage `json:"origins,omitempty"`
	OriginIsOptional bool              `json:"originIsOptional,omitempty"`
	PrincipalBinding json.RawMessage   `json:"principalBinding,omitempty"`
}

// Target is TargetSelector: a service of the policy's namespace.
type Target struct {
	Name  string         `json:"name"`
	Ports []PortSelector `json:"ports,omitempty"`
}

// PortSelector names a service port (not a target port) by number or name.
type PortSelector struct {
	Number uint32 `json:"number,omitempty"`
	Name   string `json:"name,omitempty"`
}

func (p PortSelector) String() string {
	if p.Name != "" {
		return strconv.Quote(p.Name)
	}
	return strconv.Itoa(int(p.Number))
}

// PeerMethod is PeerAuthenticationMethod, a oneof of mtls and jwt. Mtls is
// kept raw so that "mtls:" (null) and "mtls: {}" are told apart from no
// mtls at all: both mean STRICT.
type PeerMethod struct {
	Mtls json.RawMessage `json:"mtls,omitempty"`
	Jwt  json.RawMessage `json:"jwt,omitempty"`
}

// MutualTLS is the MutualTls message.
type MutualTLS struct {
	// AllowTLS is deprecated; true translates to PERMISSIVE.
	AllowTLS bool `json:"allowTls,omitempty"`
	// Mode is STRICT (the enum's zero) or PERMISSIVE, by name or number.
	Mode json.RawMessage `json:"mode,omitempty"`
}

// Decode reads one MeshPolicy or Policy document. Unknown spec fields are
// errors, so that a misspelt field is not silently read as "no mTLS".
func Decode(doc load.Document) (*Policy, error) {
	var env struct {
		APIVersion string            `json:"apiVersion"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       json.RawMessage   `json:"spec"`
	}
	if err := json.Unmarshal(doc.JSON, &env); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", doc.Where, doc.Kind, err)
	}
	p := &Policy{Kind: doc.Kind, Metadata: env.Metadata, Where: doc.Where}
	if env.APIVersion != Version || (doc.Kind != "MeshPolicy" && doc.Kind != "Policy") {
		return nil, fmt.Errorf("%s: %s %s: apiVersion %s: tls-check reads MeshPolicy and Policy of %s only",
			doc.Where, doc.Kind, p.Name(), env.APIVersion, Version)
	}
	if doc.Kind == "Policy" && p.Metadata.Namespace == "" {
		p.Metadata.Namespace = "default" // as kubectl would create it
	}
	if len(env.Spec) > 0 && !bytes.Equal(env.Spec, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(env.Spec))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p.Spec); err != nil {
			return nil, p.errorf("spec: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	return p, nil
}

// Name is the object's name as kubectl prints it: name for a MeshPolicy,
// namespace/name for a Policy.
func (p *Policy) Name() string {
	if p.Kind == "MeshPolicy" {
		return p.Metadata.Name
	}
	return p.Metadata.Namespace + "/" + p.Metadata.Name
}

// Ref is the object as the AUTHN POLICY column of Istio 1.1's tls-check
// named it: name/namespace, with an empty namespace for the cluster-scoped
// MeshPolicy ("default/").
func (p *Policy) Ref() string {
	if p.Kind == "MeshPolicy" {
		return p.Metadata.Name + "/"
	}
	return p.Metadata.Name + "/" + p.Metadata.Namespace
}

// errorf names the file, document and object before a message that names
// the field.
func (p *Policy) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s %s: %s", p.Where, p.Kind, p.Name(), fmt.Sprintf(format, args...))
}
