// Command release builds what mtlsguard ships, with nothing but Go and the
// module proxy: a multi-arch OCI image (no Docker engine, no base image to
// pull: the binaries are static and sit on an empty base), tar.gz archives of
// tls-check and mtlsguard with their sha256 sums, and the krew plugin
// manifest generated from those archives.
//
//	release image -src . -out dist        # dist/oci (OCI layout), dist/sbom/*.spdx.json
//	release dist  -src . -out dist        # dist/*.tar.gz, dist/SHA256SUMS
//	release krew  -dist dist -out plugins/tls-check.yaml
//
// Every binary is built with the flags in build.go; the Makefile's build
// target and the Dockerfile use the same ones (TestBuildFlagsAgree).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		os.Exit(1)
	}
}

const usage = `usage: release image|dist|krew [flags]
`

func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command")
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("release "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := fs.String("src", ".", "the mtlsguard repository")
	out := fs.String("out", "dist", "output directory (krew: the manifest file)")
	var m meta
	fs.StringVar(&m.Version, "version", "", "release version (default: git describe, or a pseudo-version)")
	fs.StringVar(&m.Revision, "revision", "", "source revision (default: git rev-parse HEAD)")
	fs.StringVar(&m.Source, "source-url", defaultSource, "org.opencontainers.image.source")
	fs.StringVar(&m.Licenses, "licenses", "NOASSERTION", "org.opencontainers.image.licenses, an SPDX expression")
	dist := fs.String("dist", "dist", "krew: directory with the archives and SHA256SUMS")
	urlBase := fs.String("url-base", "", "krew: where the archives are published (default: the release download URL of -version)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := m.complete(ctx, *src); err != nil {
		return err
	}
	switch cmd {
	case "image":
		idx, err := buildImage(ctx, imageOptions{Src: *src, Out: *out, Platforms: imagePlatforms, Meta: m})
		if err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s/oci: index %s (%v)\n", *out, d, imagePlatforms)
	case "dist":
		files, err := buildDist(ctx, *src, *out, m, distBinaries)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %d archives and %s/%s\n", len(files), *out, sumsFile)
	case "krew":
		base := *urlBase
		if base == "" {
			base = m.Source + "/releases/download/" + m.Version
		}
		if err := writeKrewManifest(*dist, *out, base, m, distBinaries[0].Platforms); err != nil {
			return err
		}
		if err := validateKrewManifest(*out, *dist, distBinaries[0].Platforms); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", *out)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}
