package policy

import "fmt"

// ServerMode is the mutual-TLS mode a server endpoint enforces on a port.
type ServerMode int

const (
	// Permissive accepts Istio mTLS and plaintext. It is Istio's default.
	Permissive ServerMode = iota
	// Strict accepts Istio mTLS only.
	Strict
	// Disable accepts plaintext only.
	Disable
	// NoSidecar is a pod without a proxy: what the application speaks,
	// assumed to be plaintext.
	NoSidecar
)

func (m ServerMode) String() string {
	switch m {
	case Permissive:
		return "PERMISSIVE"
	case Strict:
		return "STRICT"
	case Disable:
		return "DISABLE"
	case NoSidecar:
		return "NO_SIDECAR"
	}
	return fmt.Sprintf("ServerMode(%d)", int(m))
}

// Column is the SERVER column of the old istioctl authn tls-check.
func (m ServerMode) Column() string {
	switch m {
	case Strict:
		return "mTLS"
	case Permissive:
		return "HTTP/mTLS"
	default:
		return "HTTP"
	}
}

// ClientTLS is the TLS mode a DestinationRule asks the client sidecar to use.
type ClientTLS int

const (
	// Auto means the rule sets no TLS: auto mTLS decides per endpoint.
	Auto ClientTLS = iota
	// TLSDisable is mode DISABLE: plaintext.
	TLSDisable
	// TLSSimple is mode SIMPLE: TLS without a client certificate.
	TLSSimple
	// TLSMutual is mode MUTUAL: TLS with user-supplied certificates.
	TLSMutual
	// TLSIstioMutual is mode ISTIO_MUTUAL: Istio mTLS.
	TLSIstioMutual
)

func (c ClientTLS) String() string {
	switch c {
	case Auto:
		return "AUTO"
	case TLSDisable:
		return "DISABLE"
	case TLSSimple:
		return "SIMPLE"
	case TLSMutual:
		return "MUTUAL"
	case TLSIstioMutual:
		return "ISTIO_MUTUAL"
	}
	return fmt.Sprintf("ClientTLS(%d)", int(c))
}

// Column is the CLIENT column of the old istioctl authn tls-check.
func (c ClientTLS) Column() string {
	switch c {
	case Auto:
		return "AUTO"
	case TLSSimple:
		return "TLS"
	case TLSMutual:
		return "custom mTLS"
	case TLSIstioMutual:
		return "mTLS"
	default:
		return "HTTP"
	}
}

// Wire is what a client sidecar actually sends to one endpoint.
type Wire int

const (
	Plaintext Wire = iota
	IstioMutual
	SimpleTLS
	MutualTLS
)

func (w Wire) String() string {
	switch w {
	case Plaintext:
		return "plaintext"
	case IstioMutual:
		return "istio_mutual"
	case SimpleTLS:
		return "simple_tls"
	case MutualTLS:
		return "mutual_tls"
	}
	return fmt.Sprintf("Wire(%d)", int(w))
}

// Status is the verdict of a row.
type Status int

const (
	OK Status = iota
	Conflict
)

func (s Status) String() string {
	if s == Conflict {
		return "CONFLICT"
	}
	return "OK"
}
