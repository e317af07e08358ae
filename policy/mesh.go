package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Mesh holds the mesh-wide settings the rules depend on.
type Mesh struct {
	// RootNamespace holds mesh-wide policies. Defaults to istio-system.
	RootNamespace string
	// AutoMTLS is MeshConfig.enableAutoMtls. Defaults to true.
	AutoMTLS bool
	// ClusterDomain is the DNS suffix of services. Defaults to cluster.local.
	ClusterDomain string
	// DefaultDestinationRuleExportTo is MeshConfig.defaultDestinationRuleExportTo.
	// Empty means "*". Istio honours only "." and "*" here.
	DefaultDestinationRuleExportTo []string
	// TrustDomain is MeshConfig.trustDomain: the trust domain of every
	// workload identity (identity.go). Empty means cluster.local.
	TrustDomain string
	// TrustDomainAliases is MeshConfig.trustDomainAliases.
	TrustDomainAliases []string
	// OutboundTrafficPolicy is MeshConfig.outboundTrafficPolicy.mode,
	// ALLOW_ANY or REGISTRY_ONLY: where a sidecar sends traffic for a host
	// it has no cluster for (sidecarscope.go). Empty means ALLOW_ANY.
	OutboundTrafficPolicy string
}

// DefaultMesh returns Istio's defaults (pkg/config/mesh DefaultMeshConfig).
func DefaultMesh() Mesh {
	return Mesh{RootNamespace: "istio-system", AutoMTLS: true, ClusterDomain: "cluster.local", TrustDomain: "cluster.local"}
}

// MeshConfigMapName is the ConfigMap in the root namespace whose "mesh" key
// holds MeshConfig.
const MeshConfigMapName = "istio"

// meshConfig is the part of MeshConfig the rules read.
type meshConfig struct {
	RootNamespace                  *string  `json:"rootNamespace,omitempty"`
	EnableAutoMtls                 *bool    `json:"enableAutoMtls,omitempty"`
	DefaultDestinationRuleExportTo []string `json:"defaultDestinationRuleExportTo,omitempty"`
	TrustDomain                    *string  `json:"trustDomain,omitempty"`
	TrustDomainAliases             []string `json:"trustDomainAliases,omitempty"`
	OutboundTrafficPolicy          *struct {
		Mode string `json:"mode,omitempty"`
	} `json:"outboundTrafficPolicy,omitempty"`
}

// WithConfigMap returns m overlaid with the MeshConfig in cm's "mesh" key.
// Fields the ConfigMap leaves out keep their value in m.
func (m Mesh) WithConfigMap(cm *corev1.ConfigMap) (Mesh, error) {
	raw, ok := cm.Data["mesh"]
	if !ok {
		return m, nil
	}
	var mc meshConfig
	if err := yaml.Unmarshal([]byte(raw), &mc); err != nil {
		return m, fmt.Errorf("ConfigMap %s/%s: data.mesh: %w", cm.Namespace, cm.Name, err)
	}
	if mc.RootNamespace != nil && *mc.RootNamespace != "" {
		m.RootNamespace = *mc.RootNamespace
	}
	if mc.EnableAutoMtls != nil {
		m.AutoMTLS = *mc.EnableAutoMtls
	}
	if mc.DefaultDestinationRuleExportTo != nil {
		m.DefaultDestinationRuleExportTo = mc.DefaultDestinationRuleExportTo
	}
	m.overlayTrustDomain(mc.TrustDomain, mc.TrustDomainAliases)
	if p := mc.OutboundTrafficPolicy; p != nil && p.Mode != "" {
		switch p.Mode {
		case "ALLOW_ANY", "REGISTRY_ONLY", "ALLOW_ANY_DYNAMIC_DNS":
			m.OutboundTrafficPolicy = p.Mode
		default:
			return m, fmt.Errorf("ConfigMap %s/%s: data.mesh: outboundTrafficPolicy.mode: unknown mode %q", cm.Namespace, cm.Name, p.Mode)
		}
	}
	return m, nil
}

// defaultExportPrivate reports whether DestinationRules without exportTo are
// private to their namespace.
func (m Mesh) defaultExportPrivate() bool {
	for _, e := range m.DefaultDestinationRuleExportTo {
		if e == "." {
			return true
		}
	}
	return false
}
