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
	// AmbientStrict is a pod captured by ztunnel whose port refuses
	// connections without a peer identity: HBONE only.
	AmbientStrict
	// AmbientPermissive is a captured pod's port that takes HBONE and
	// plaintext (PeerAuthentication PERMISSIVE, DISABLE or none).
	AmbientPermissive
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
	case AmbientStrict:
		return "AMBIENT_STRICT"
	case AmbientPermissive:
		return "AMBIENT_PERMISSIVE"
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
	case AmbientStrict:
		return "HBONE"
	case AmbientPermissive:
		return "HBONE/HTTP"
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
	// Ztunnel is an ambient client: ztunnel reads no DestinationRule.
	Ztunnel
	// Waypoint is an ambient client whose traffic a waypoint proxy
	// re-originates with the waypoint's DestinationRule.
	Waypoint
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
	case Ztunnel:
		return "ZTUNNEL"
	case Waypoint:
		return "WAYPOINT"
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
	case Ztunnel:
		return "ZTUNNEL"
	case Waypoint:
		return "WAYPOINT"
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
	// HBONE is an HTTP CONNECT tunnel over Istio mTLS to port 15008,
	// carrying the application's bytes.
	HBONE
	// HBONETLS is HBONE whose inner stream is TLS the client proxy
	// originates (DestinationRule SIMPLE or MUTUAL).
	HBONETLS
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
	case HBONE:
		return "hbone"
	case HBONETLS:
		return "hbone_tls"
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
