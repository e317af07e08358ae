package tlscheck

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/mtlsguard/mtlsguard/internal/legacy"
	"github.com/mtlsguard/mtlsguard/internal/load"
)

const convertUsage = `tls-check convert prints the security.istio.io/v1 PeerAuthentications that
replace the authentication.istio.io/v1alpha1 MeshPolicy and Policy objects of
the files, which Istio 1.6 removed:

  MeshPolicy default          -> PeerAuthentication default in the root namespace
  Policy default (no targets) -> PeerAuthentication default in its namespace
  Policy P, target S          -> PeerAuthentication P-S selecting Service S's pods;
                                 target ports become portLevelMtls keyed by target port

"mtls: {}" is STRICT, mode PERMISSIVE (or allowTls) is PERMISSIVE, no mtls
peer is DISABLE. A target needs its Service in the files (and, for a named
targetPort, its pods); peerIsOptional and origins are not converted.

Usage:
  tls-check convert -f PATH... [flags]

Flags:
`

// runConvert is "tls-check convert".
func runConvert(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("tls-check convert", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	var files []string
	var root string
	fs.StringArrayVarP(&files, "filename", "f", nil, "YAML file, directory or - for stdin (repeatable): the legacy policies and the Services (and pods) their targets name")
	fs.StringVar(&root, "root-namespace", "istio-system", "Istio's root namespace, where the MeshPolicy's replacement goes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stderr, convertUsage)
			fs.PrintDefaults()
			return ExitOK
		}
		fmt.Fprintf(stderr, "tls-check convert: %v\nRun 'tls-check convert --help' for usage.\n", err)
		return ExitUsage
	}
	if len(files) == 0 || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tls-check convert: give the files with -f, and no arguments\n")
		return ExitUsage
	}
	res, err := load.Paths(files, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "tls-check convert: %v\n", err)
		return ExitUsage
	}
	if len(res.Legacy) == 0 {
		fmt.Fprintf(stderr, "tls-check convert: no %s MeshPolicy or Policy in the files\n", legacy.Version)
		return ExitUsage
	}
	conv, err := legacy.Convert(res.Legacy, res.Objects, root)
	if err != nil {
		fmt.Fprintf(stderr, "tls-check convert: %v\n", err)
		return ExitUsage
	}
	for _, n := range conv.Notes {
		fmt.Fprintf(stderr, "tls-check convert: note: %s\n", n)
	}
	w := bufio.NewWriter(stdout)
	if err := legacy.WriteYAML(w, conv); err == nil {
		err = w.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "tls-check convert: write the output: %v\n", err)
		return ExitError
	}
	return ExitOK
}
