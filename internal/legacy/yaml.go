package legacy

import (
	"fmt"
	"io"
	"slices"
	"strconv"

	"sigs.k8s.io/yaml"
)

// paDocument is a PeerAuthentication as kubectl apply takes it: only the
// fields a conversion sets, modes by name.
type paDocument struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Selector *struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector,omitempty"`
		Mtls          *modeDocument           `json:"mtls,omitempty"`
		PortLevelMtls map[string]modeDocument `json:"portLevelMtls,omitempty"`
	} `json:"spec"`
}

type modeDocument struct {
	Mode string `json:"mode"`
}

// WriteYAML writes the converted PeerAuthentications as one YAML stream,
// each document after a comment naming where its source was read.
func WriteYAML(w io.Writer, r Result) error {
	for i, c := range r.Converted {
		pa := c.PeerAuthentication
		var d paDocument
		d.APIVersion, d.Kind = "security.istio.io/v1", "PeerAuthentication"
		d.Metadata.Name, d.Metadata.Namespace, d.Metadata.Annotations = pa.Name, pa.Namespace, pa.Annotations
		if sel := pa.Spec.GetSelector().GetMatchLabels(); len(sel) > 0 {
			d.Spec.Selector = &struct {
				MatchLabels map[string]string `json:"matchLabels"`
			}{sel}
		}
		if m := pa.Spec.GetMtls(); m != nil {
			d.Spec.Mtls = &modeDocument{m.Mode.String()}
		}
		ports := make([]uint32, 0, len(pa.Spec.GetPortLevelMtls()))
		for p := range pa.Spec.GetPortLevelMtls() {
			ports = append(ports, p)
		}
		slices.Sort(ports)
		for _, p := range ports {
			if d.Spec.PortLevelMtls == nil {
				d.Spec.PortLevelMtls = map[string]modeDocument{}
			}
			d.Spec.PortLevelMtls[strconv.Itoa(int(p))] = modeDocument{pa.Spec.PortLevelMtls[p].Mode.String()}
		}
		out, err := yaml.Marshal(d)
		if err != nil {
			return fmt.Errorf("PeerAuthentication %s/%s: %w", pa.Namespace, pa.Name, err)
		}
		sep := "---\n"
		if i == 0 {
			sep = ""
		}
		if _, err := fmt.Fprintf(w, "%s# From %s %s (%s)\n%s", sep, c.From.Kind, c.From.Name(), c.From.Where, out); err != nil {
			return err
		}
	}
	return nil
}
