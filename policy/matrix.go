package policy

// compatible is the data-plane outcome matrix (semantics doc §5.1): which
// wires a server mode accepts. Everything not listed fails: a STRICT server
// has no plaintext filter chain, a DISABLE server or a pod without a sidecar
// cannot terminate Istio mTLS, and nothing in the mesh terminates SIMPLE or
// MUTUAL TLS originated by a sidecar.
var compatible = [...][HBONETLS + 1]bool{
	Strict:            {IstioMutual: true},
	Permissive:        {IstioMutual: true, Plaintext: true},
	Disable:           {Plaintext: true},
	NoSidecar:         {Plaintext: true},
	AmbientStrict:     {HBONE: true},
	AmbientPermissive: {HBONE: true, Plaintext: true},
}

// Compatible reports whether a server in mode s accepts what a client sends.
func Compatible(s ServerMode, w Wire) bool {
	if s < 0 || int(s) >= len(compatible) || w < 0 || int(w) >= len(compatible[s]) {
		return false
	}
	return compatible[s][w]
}

// reason explains an endpoint verdict in one sentence a person can act on.
func reason(s ServerMode, w Wire) string {
	if r, ok := ambientReason(s, w); ok {
		return r
	}
	switch {
	case Compatible(s, w):
		return "server " + s.String() + " accepts " + w.String()
	case s == Strict && w == Plaintext:
		return "server is STRICT but the client sends plaintext: set tls.mode ISTIO_MUTUAL (or remove tls) in the DestinationRule, or relax the PeerAuthentication"
	case (s == Disable || s == NoSidecar) && w == IstioMutual:
		if s == NoSidecar {
			return "server has no sidecar but the client sends Istio mTLS: set tls.mode DISABLE for this host, or inject a sidecar"
		}
		return "server is DISABLE but the client sends Istio mTLS: set tls.mode DISABLE (or remove tls) in the DestinationRule, or enable mTLS on the server"
	case w == SimpleTLS || w == MutualTLS:
		return "client originates " + w.String() + " which a " + s.String() + " server does not terminate: use ISTIO_MUTUAL or remove tls"
	}
	return "server " + s.String() + " does not accept " + w.String()
}
