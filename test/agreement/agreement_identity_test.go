package agreement

import (
	"slices"

	"github.com/mtlsguard/mtlsguard/internal/tlscheck"
)

// identity is what each side says about the server's certificate
// (semantics doc part 2, §4): its identity, the exact SANs the client
// checks (the oracle reads them from the TLS context Istio builds; the
// engine lists only a rule's own, nil when the client checks the
// service's accounts), and whether the check passes.
type identity struct {
	Identity string
	SANs     []string
	Checked  bool
	OK       bool
}

// oracleIdentity is the identity part of an oracle pair.
type oracleIdentity struct {
	ServerIdentity  string   `json:"server_identity"`
	SubjectAltNames []string `json:"subject_alt_names"`
	IdentityChecked bool     `json:"identity_checked"`
	IdentityOK      bool     `json:"identity_ok"`
}

func (o oracleIdentity) identity() identity {
	return identity{o.ServerIdentity, o.SubjectAltNames, o.IdentityChecked, o.IdentityOK}
}

// engineIdentity reads the engine's identity check from tls-check's JSON:
// a rule's subjectAltNames are checked on istio_mutual and mutual_tls
// sent to a sidecar; otherwise the client checks the service's own
// accounts, which the engine takes to hold every endpoint.
func engineIdentity(r tlscheck.JSONRow, ep tlscheck.JSONEndpoint) identity {
	id := identity{Identity: ep.Identity, SANs: r.SubjectAltNames, OK: true}
	if r.SubjectAltNames != nil && ep.Sidecar && (ep.ClientSends == "istio_mutual" || ep.ClientSends == "mutual_tls") {
		id.Checked, id.OK = true, slices.Contains(r.SubjectAltNames, ep.Identity)
	}
	return id
}

// compareIdentity counts the identity fields of one pair:
//
//	identity           the server's identity, where Istio gives it one
//	san_check          whether the client accepts the certificate, where
//	                   Istio's client checks SANs
//	san_rejected       the same, where Istio's client rejects it
//	sans               the SAN list, where the engine says a rule sets it
//	ok_with_rule_sans  the verdict of pairs whose rule lists
//	                   subjectAltNames: the family's agreement
//
// It reports false on a disagreement the ok field does not already show.
func (s counter) compareIdentity(o, e answer, okAgree bool) bool {
	agree := true
	if o.Identity != "" {
		a := o.Identity == e.Identity
		s.count("identity", a)
		agree = agree && a
	}
	if o.Checked {
		a := o.identity.OK == e.identity.OK // answer.OK is the pair's verdict
		s.count("san_check", a)
		if !o.identity.OK {
			s.count("san_rejected", a)
		}
		agree = agree && (a || !okAgree) // a wrong verdict shows as ok already
	}
	if e.SANs != nil {
		if o.Checked {
			a := slices.Equal(o.SANs, e.SANs)
			s.count("sans", a)
			agree = agree && a
		}
		s.count("ok_with_rule_sans", okAgree)
	}
	return agree
}
