package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image runs as this user and group, the "nonroot" of distroless
// images; the Deployment's runAsUser says the same.
const imageUser = "65532:65532"

// imagePlatforms are the architectures of the image index.
var imagePlatforms = []platform{{"linux", "amd64"}, {"linux", "arm64"}}

// imageBinaries are the files at / in the image; the first is the entrypoint.
var imageBinaries = []binary{
	{Name: "mtlsguard", Package: "./cmd/mtlsguard"},
	{Name: "tls-check", Package: "./cmd/tls-check"},
}

// Annotations of each platform's manifest that point at its SBOM, which is
// written beside the layout (dist/sbom/) rather than into it, so the layout
// holds exactly one entry and pushes as it is.
const (
	annotationSBOMDigest = "io.mtlsguard.sbom.digest"
	annotationSBOMFile   = "io.mtlsguard.sbom.file"
)

type imageOptions struct {
	Src       string // the repository
	Out       string // writes Out/oci (OCI image layout) and Out/sbom/
	Platforms []platform
	Meta      meta
}

// buildImage cross-compiles the binaries for every platform and writes the
// image with writeImage.
func buildImage(ctx context.Context, o imageOptions) (v1.ImageIndex, error) {
	tmp, err := os.MkdirTemp("", "mtlsguard-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	built, err := buildAll(ctx, o.Src, tmp, withPlatforms(imageBinaries, o.Platforms))
	if err != nil {
		return nil, err
	}
	return writeImage(o, built)
}

// withPlatforms is bins, each built for platforms.
func withPlatforms(bins []binary, platforms []platform) []binary {
	out := make([]binary, len(bins))
	for i, b := range bins {
		b.Platforms = platforms
		out[i] = b
	}
	return out
}

// writeImage writes a multi-arch image index on an empty base with the
// built binaries to o.Out/oci (an OCI image layout with one entry, the
// index), and one SPDX SBOM per platform to o.Out/sbom.
func writeImage(o imageOptions, built map[platform]map[string]string) (v1.ImageIndex, error) {
	sbomDir := filepath.Join(o.Out, "sbom")
	if err := os.MkdirAll(sbomDir, 0o755); err != nil {
		return nil, err
	}

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		var files []layerFile
		for _, b := range imageBinaries {
			files = append(files, layerFile{Name: b.Name, Path: built[p][b.Name]})
		}
		sbom, err := spdxDocument(o.Meta, p, files)
		if err != nil {
			return nil, err
		}
		sbomName := fmt.Sprintf("mtlsguard_%s_%s_%s.spdx.json", o.Meta.Version, p.OS, p.Arch)
		if err := os.WriteFile(filepath.Join(sbomDir, sbomName), sbom, 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(sbom)

		img, err := platformImage(p, files, o.Meta)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", p, err)
		}
		// On the manifest and on its descriptor in the index, so a client
		// that reads only the index finds the SBOM too.
		anns := map[string]string{
			annotationSBOMDigest: "sha256:" + hex.EncodeToString(sum[:]),
			annotationSBOMFile:   "sbom/" + sbomName,
		}
		img = mutate.Annotations(img, anns).(v1.Image)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform:    &v1.Platform{OS: p.OS, Architecture: p.Arch},
				Annotations: anns,
			},
		})
	}
	idx = mutate.Annotations(idx, o.Meta.ociAnnotations()).(v1.ImageIndex)

	dir := filepath.Join(o.Out, "oci")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": o.Meta.Version,
	})); err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return idx, nil
}

// ociAnnotations are the pre-defined OCI annotation keys, used both as image
// labels and as index annotations.
func (m meta) ociAnnotations() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "mtlsguard",
		"org.opencontainers.image.description": "Validating admission webhook that denies Istio DestinationRule and PeerAuthentication writes that would break mutual TLS; with tls-check",
		"org.opencontainers.image.source":      m.Source,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.licenses":    m.Licenses,
		"org.opencontainers.image.created":     m.Created.Format("2006-01-02T15:04:05Z"),
	}
}

// platformImage is one architecture's image: one layer with the binaries at
// /, nothing else (no shell, no libc, no passwd: the user is numeric).
func platformImage(p platform, files []layerFile, m meta) (v1.Image, error) {
	layerTar, err := layerTarball(files, m)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Created:      v1.Time{Time: m.Created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       imageUser,
			Entrypoint: []string{"/" + files[0].Name},
			WorkingDir: "/",
			Labels:     m.ociAnnotations(),
		},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: m.Created},
			CreatedBy: "hack/release image",
			Comment:   "static binaries built with " + fmt.Sprint(buildFlags),
		},
	})
}

// layerFile is a binary to put at /Name.
type layerFile struct{ Name, Path string }

// layerTarball is the layer's uncompressed tar: root-owned, world-executable
// files with the commit's time, so the layer digest depends on the binaries
// only.
func layerTarball(files []layerFile, m meta) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		raw, err := os.ReadFile(f.Path)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.Name,
			Mode:     0o755,
			Size:     int64(len(raw)),
			ModTime:  m.Created,
		}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(raw); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
