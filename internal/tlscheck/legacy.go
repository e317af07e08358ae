package tlscheck

import (
	"fmt"
	"io"
	"strings"

	"github.com/mtlsguard/mtlsguard/internal/legacy"
	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

// withLegacy adds to snap the PeerAuthentications converted from the
// v1alpha1 MeshPolicy and Policy documents of res (internal/legacy), and
// returns how to name them in the table: as the objects the user wrote.
func withLegacy(snap policy.Snapshot, res load.Result, stderr io.Writer) (policy.Snapshot, map[string]string, error) {
	if len(res.Legacy) == 0 {
		return snap, nil, nil
	}
	conv, err := legacy.Convert(res.Legacy, res.Objects, snap.Mesh.RootNamespace)
	if err != nil {
		return snap, nil, err
	}
	for _, n := range conv.Notes {
		fmt.Fprintf(stderr, "tls-check: note: %s\n", n)
	}
	for _, c := range conv.Converted {
		snap.PeerAuthentications = append(snap.PeerAuthentications, c.PeerAuthentication)
	}
	return snap, conv.Refs(), nil
}

// renameAuthn names converted PeerAuthentications in the AUTHN POLICY
// columns as the legacy objects they came from (the MeshPolicy prints
// "default/", as Istio 1.1's tls-check printed it). Rows are copied, not
// changed: groups may share them.
func renameAuthn(groups []policy.Group, refs map[string]string) {
	if len(refs) == 0 {
		return
	}
	rename := func(s string) string {
		parts := strings.Split(s, ",")
		for i, p := range parts {
			if r, ok := refs[p]; ok {
				parts[i] = r
			}
		}
		return strings.Join(parts, ",")
	}
	done := map[*policy.Row]*policy.Row{}
	for i := range groups {
		r := groups[i].Row
		if c, ok := done[r]; ok {
			groups[i].Row = c
			continue
		}
		c := *r
		c.AuthnPolicy = rename(r.AuthnPolicy)
		c.Endpoints = append([]policy.Endpoint(nil), r.Endpoints...)
		for j := range c.Endpoints {
			c.Endpoints[j].AuthnPolicy = rename(c.Endpoints[j].AuthnPolicy)
		}
		done[r] = &c
		groups[i].Row = &c
	}
}
