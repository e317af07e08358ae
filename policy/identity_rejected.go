package policy

import "slices"

// RejectedIdentities lists, sorted and once each, the identities of r's
// endpoints whose certificates the client rejects because r's
// subjectAltNames do not name them (identity.go); nil when the SAN check
// rejects none. An endpoint without an identity (a WorkloadEntry with no
// service account) is listed as "". Writers of a rule read these beside
// r.SubjectAltNames to see why the row is a CONFLICT.
func (r *Row) RejectedIdentities() []string {
	if r.SubjectAltNames == nil {
		return nil
	}
	ic := identityCheck{sans: r.SubjectAltNames}
	var out []string
	for _, ep := range r.Endpoints {
		if !ep.OK && !ic.acceptsIdentity(ep.Sidecar, ep.ClientSends, ep.Identity) {
			out = append(out, ep.Identity)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
