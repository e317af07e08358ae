package tlscheck

import (
	"bufio"
	"bytes"
	"encoding/json"

	"github.com/mtlsguard/mtlsguard/policy"
)

// JSONRow is one row of -o json for one client view: the form of a single
// pod, of --namespace and of -A --per-view.
type JSONRow struct {
	Host            string   `json:"host"`
	Port            int32    `json:"port"`
	Subset          string   `json:"subset"`
	ClientNamespace string   `json:"client_namespace"`
	ClientView      string   `json:"client_view"`
	ClientPod       string   `json:"client_pod"`
	ClientPods      []string `json:"client_pods"`
	Status          string   `json:"status"`
	Server          string   `json:"server"`
	Client          string   `json:"client"`
	ClientTLS       string   `json:"client_tls"`
	AuthnPolicy     string   `json:"authn_policy"`
	DestinationRule string   `json:"destination_rule"`
	// SubjectAltNames are the rule's tls.subjectAltNames the client checks
	// each endpoint's identity against; absent when it checks the
	// service's own accounts, or nothing.
	SubjectAltNames []string       `json:"subject_alt_names,omitempty"`
	Endpoints       []JSONEndpoint `json:"endpoints"`
}

// JSONGroupRow is one row of -A -o json: a service port (or subset) and
// its verdict, with every client namespace whose clients see that row.
type JSONGroupRow struct {
	Host            string         `json:"host"`
	Port            int32          `json:"port"`
	Subset          string         `json:"subset"`
	Status          string         `json:"status"`
	Server          string         `json:"server"`
	Client          string         `json:"client"`
	ClientTLS       string         `json:"client_tls"`
	AuthnPolicy     string         `json:"authn_policy"`
	DestinationRule string         `json:"destination_rule"`
	SubjectAltNames []string       `json:"subject_alt_names,omitempty"`
	Endpoints       []JSONEndpoint `json:"endpoints"`
	// ClientViews counts the client views (namespaces, split by
	// workloadSelector rules) behind the row.
	ClientViews      int      `json:"client_views"`
	ClientNamespaces []string `json:"client_namespaces"`
}

// JSONEndpoint is one server pod of a row.
type JSONEndpoint struct {
	Pod        string `json:"pod"`
	TargetPort int32  `json:"target_port"`
	Sidecar    bool   `json:"sidecar"`
	// Dataplane is sidecar, ambient (captured by ztunnel) or none.
	Dataplane   string `json:"dataplane"`
	ServerMode  string `json:"server_mode"`
	AuthnPolicy string `json:"authn_policy"`
	ClientSends string `json:"client_sends"`
	OK          bool   `json:"ok"`
	Reason      string `json:"reason"`
	// Identity is the pod's SPIFFE identity, the URI SAN of its certificate.
	Identity string `json:"identity"`
}

// viewRow renders r as view sees it. clientPod, when set, is the pod the
// user asked about; otherwise the view's first pod stands for it.
func viewRow(r *policy.Row, view policy.ClientView, clientPod string) JSONRow {
	jr := JSONRow{
		Host: r.Host, Port: r.Port, Subset: r.Subset,
		ClientNamespace: view.Namespace, ClientView: view.String(),
		ClientPod: view.Pod(), ClientPods: view.Pods,
		Status: r.Status.String(), Server: r.Server, Client: r.ClientColumn, ClientTLS: r.Client.String(),
		AuthnPolicy: r.AuthnPolicy, DestinationRule: r.DestinationRule,
		SubjectAltNames: r.SubjectAltNames, Endpoints: endpoints(r),
	}
	if clientPod != "" {
		jr.ClientPod = clientPod
	}
	if jr.ClientPods == nil {
		jr.ClientPods = []string{}
	}
	return jr
}

// groupRow renders a group of -A.
func groupRow(g policy.Group, namespaces []string) JSONGroupRow {
	r := g.Row
	if namespaces == nil {
		namespaces = []string{}
	}
	return JSONGroupRow{
		Host: r.Host, Port: r.Port, Subset: r.Subset,
		ClientNamespaces: namespaces, ClientViews: g.Views.Len(),
		Status: r.Status.String(), Server: r.Server, Client: r.ClientColumn, ClientTLS: r.Client.String(),
		AuthnPolicy: r.AuthnPolicy, DestinationRule: r.DestinationRule,
		SubjectAltNames: r.SubjectAltNames, Endpoints: endpoints(r),
	}
}

func endpoints(r *policy.Row) []JSONEndpoint {
	out := make([]JSONEndpoint, 0, len(r.Endpoints))
	for _, ep := range r.Endpoints {
		out = append(out, JSONEndpoint{
			Pod: ep.Pod, TargetPort: ep.TargetPort, Sidecar: ep.Sidecar, Dataplane: ep.Dataplane.String(),
			ServerMode: ep.ServerMode.String(), AuthnPolicy: ep.AuthnPolicy,
			ClientSends: ep.ClientSends.String(), OK: ep.OK, Reason: ep.Reason,
			Identity: ep.Identity,
		})
	}
	return out
}

// placeholder stands for the client namespaces while a grouped row is
// indented; no Kubernetes name holds a NUL.
const placeholder = "\x00client_namespaces\x00"

var quotedPlaceholder = []byte(`"\u0000client_namespaces\u0000"`)

// marshalGroupRow renders a grouped row indented as jsonArray indents,
// except its client namespaces: one line, after the endpoints. A mesh-wide
// row names every namespace, and one name per line was most of the output
// and of the time spent indenting it at 2,000 namespaces.
func marshalGroupRow(row JSONGroupRow) ([]byte, error) {
	names, err := json.Marshal(row.ClientNamespaces)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(struct {
		JSONGroupRow
		ClientNamespaces string `json:"client_namespaces"` // shadows the embedded field
	}{row, placeholder}, "  ", "  ")
	if err != nil {
		return nil, err
	}
	return bytes.Replace(b, quotedPlaceholder, names, 1), nil
}

// jsonArray writes a JSON array one element at a time, indented as
// json.Encoder with SetIndent("", "  ") indents a whole array, so that no
// more than one row is ever held in memory.
type jsonArray struct {
	w *bufio.Writer
	n int
}

func (a *jsonArray) add(v any) error {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	return a.addMarshaled(b)
}

// addMarshaled adds an element marshaled with the array's indentation.
func (a *jsonArray) addMarshaled(b []byte) error {
	if a.n == 0 {
		a.w.WriteString("[\n  ")
	} else {
		a.w.WriteString(",\n  ")
	}
	a.n++
	_, err := a.w.Write(b)
	return err
}

func (a *jsonArray) close() error {
	if a.n == 0 {
		_, err := a.w.WriteString("[]\n")
		return err
	}
	_, err := a.w.WriteString("\n]\n")
	return err
}
