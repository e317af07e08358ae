package policy

import (
	"slices"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
)

// Workload identity and subjectAltNames (semantics doc part 2, §4).
//
// Every pod's certificate carries one URI SAN,
// spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>
// (pilot/pkg/serviceregistry/kube/conversion.go SecureNamingSAN,
// pkg/spiffe/spiffe.go). The client sidecar checks the server's certificate
// against a list of SANs (core/cluster_tls.go buildUpstreamTLSSettings):
//
//   - auto mTLS, and ISTIO_MUTUAL without tls.subjectAltNames: the service's
//     own accounts (every endpoint's identity, expanded with
//     trustDomainAliases: push_context.go addServiceAccounts). Every endpoint
//     of the service is in that list by construction, so it never fails.
//   - ISTIO_MUTUAL with tls.subjectAltNames: those SANs only. They replace the
//     list, and they are not expanded with trustDomainAliases.
//   - MUTUAL with tls.subjectAltNames: those SANs, checked against the
//     certificate a sidecar server presents, which is its identity.
//   - DISABLE and SIMPLE: no identity check here (SIMPLE checks an
//     application certificate tls-check cannot see).
//
// Matching is exact (Envoy match_subject_alt_names with exact matchers): a
// SAN without the spiffe:// scheme never matches. HBONE, which another wire
// will model, checks only trust-domain prefixes and ignores DR SANs (§4.6):
// accepts checks IstioMutual and MutualTLS and nothing else on purpose.
//
// Choices: every pod holds a certificate of the current trust domain (a pod
// that still holds one of an alias domain cannot be seen in configuration);
// the server side's check of the client's trust domain (§4.4) always passes,
// since every client is in the same mesh.

// defaultServiceAccount is what Kubernetes' ServiceAccount admission sets
// when a pod names none.
const defaultServiceAccount = "default"

func serviceAccountOf(p *corev1.Pod) string {
	if sa := p.Spec.ServiceAccountName; sa != "" {
		return sa
	}
	if sa := p.Spec.DeprecatedServiceAccount; sa != "" {
		return sa
	}
	return defaultServiceAccount
}

// SpiffeID is the identity of service account sa in namespace ns:
// spiffe.MustGenSpiffeURIForTrustDomain, which turns "@" in the trust
// domain into ".".
func SpiffeID(trustDomain, ns, sa string) string {
	return "spiffe://" + strings.ReplaceAll(trustDomain, "@", ".") + "/ns/" + ns + "/sa/" + sa
}

// trustDomain is the mesh's trust domain, cluster.local when unset.
func (m Mesh) trustDomain() string {
	if m.TrustDomain != "" {
		return m.TrustDomain
	}
	return "cluster.local"
}

// overlayTrustDomain lays a mesh ConfigMap's trustDomain and
// trustDomainAliases over m. Aliases add to those already set, as
// pkg/config/mesh ApplyMeshConfig merges them.
func (m *Mesh) overlayTrustDomain(td *string, aliases []string) {
	if td != nil && *td != "" {
		m.TrustDomain = *td
	}
	if len(aliases) > 0 {
		all := append(slices.Clone(m.TrustDomainAliases), aliases...)
		slices.Sort(all)
		m.TrustDomainAliases = slices.Compact(all)
	}
}

// identity is pod p's SPIFFE identity in mesh m; "" for a WorkloadEntry
// or ServiceEntry endpoint that names no service account, which has none
// (a Pod always has one: the API server defaults it).
func (m Mesh) identity(p *pod) string {
	if p.serviceAccount == "" {
		return ""
	}
	return SpiffeID(m.trustDomain(), p.namespace, p.serviceAccount)
}

// identityCheck is the SAN check a cluster's TLS context installs, as far
// as it can fail: only a rule's own subjectAltNames can leave out an
// endpoint of the service.
type identityCheck struct {
	// sans are the rule's subjectAltNames for ISTIO_MUTUAL or MUTUAL; nil
	// when the check cannot fail.
	sans []string
	mode networkingapi.ClientTLSSettings_TLSmode
}

func newIdentityCheck(tls *networkingapi.ClientTLSSettings) identityCheck {
	switch tls.GetMode() {
	case networkingapi.ClientTLSSettings_ISTIO_MUTUAL, networkingapi.ClientTLSSettings_MUTUAL:
		if sans := tls.GetSubjectAltNames(); len(sans) > 0 {
			return identityCheck{sans: sans, mode: tls.GetMode()}
		}
	}
	return identityCheck{}
}

// accepts reports whether a client sending w accepts the certificate of
// pod p, whose identity in mesh m is checked only when p has a sidecar to
// present one.
func (ic identityCheck) accepts(m Mesh, p *pod, w Wire) bool {
	return ic.acceptsIdentity(p.sidecar, w, m.identity(p))
}

// acceptsIdentity is accepts for an endpoint given by whether it has a
// sidecar, what the client sends it and its identity.
func (ic identityCheck) acceptsIdentity(sidecar bool, w Wire, id string) bool {
	if ic.sans == nil || !sidecar || (w != IstioMutual && w != MutualTLS) {
		return true
	}
	return slices.Contains(ic.sans, id)
}

// apply adds pod p's identity to its endpoint verdict out and, when the
// client rejects p's certificate, fails it with the reason.
func (ic identityCheck) apply(out *Endpoint, m Mesh, p *pod, w Wire) {
	out.Identity = m.identity(p)
	switch {
	case ic.accepts(m, p, w):
	case out.OK:
		out.OK, out.Reason = false, ic.mismatchReason(m, p)
	default:
		out.Reason += "; and " + ic.mismatchReason(m, p)
	}
}

// mismatchReason explains why the client rejects pod p's certificate,
// naming the server's identity and the identities the client expects.
func (ic identityCheck) mismatchReason(m Mesh, p *pod) string {
	id := m.identity(p)
	var notes []string
	bare := strings.TrimPrefix(id, "spiffe://")
	for _, san := range ic.sans {
		switch {
		case san == bare:
			notes = append(notes, san+" lacks the spiffe:// scheme, and SANs match exactly")
		case aliasOf(m, san, id):
			notes = append(notes, san+" is under a trustDomainAliases domain, which Istio does not apply to DestinationRule subjectAltNames")
		}
	}
	var b strings.Builder
	b.WriteString("server identity " + id + " is not in the DestinationRule's " + ic.mode.String() +
		" subjectAltNames [" + strings.Join(ic.sans, ", ") + "], so the client rejects its certificate")
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, "; ") + ")")
	}
	b.WriteString(": list " + id + " in subjectAltNames, or remove them to check the service's own accounts")
	return b.String()
}

// aliasOf reports whether san is identity id under one of m's trust-domain
// aliases.
func aliasOf(m Mesh, san, id string) bool {
	path := strings.TrimPrefix(id, "spiffe://"+strings.ReplaceAll(m.trustDomain(), "@", "."))
	for _, td := range m.TrustDomainAliases {
		if san == "spiffe://"+td+path {
			return true
		}
	}
	return false
}
