package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// sumsFile lists "<sha256>  <archive>" lines, as sha256sum -c reads them.
const sumsFile = "SHA256SUMS"

var allPlatforms = []platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// distBinaries are the release archives: tls-check (also the kubectl plugin)
// everywhere, the webhook for Linux only, where it runs.
var distBinaries = []binary{
	{Name: "tls-check", Package: "./cmd/tls-check", Platforms: allPlatforms},
	{Name: "mtlsguard", Package: "./cmd/mtlsguard", Platforms: imagePlatforms},
}

// archiveName is the file name of b's archive for p.
func archiveName(name, version string, p platform) string {
	return fmt.Sprintf("%s_%s_%s_%s.tar.gz", name, version, p.OS, p.Arch)
}

// buildDist builds bins and writes their archives with writeDist.
func buildDist(ctx context.Context, src, out string, m meta, bins []binary) ([]string, error) {
	tmp, err := os.MkdirTemp("", "mtlsguard-dist-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	built, err := buildAll(ctx, src, tmp, bins)
	if err != nil {
		return nil, err
	}
	return writeDist(out, m, bins, built)
}

// writeDist writes one tar.gz per binary and platform into out, and
// out/SHA256SUMS, and returns the archive names. Archives of those
// binaries and platforms from an earlier version are removed: SHA256SUMS
// does not list them, and an upload of out/*.tar.gz would ship them.
func writeDist(out string, m meta, bins []binary, built map[platform]map[string]string) ([]string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	if err := removeStaleArchives(out, m, bins); err != nil {
		return nil, err
	}
	var names, sums []string
	for _, b := range bins {
		for _, p := range b.Platforms {
			name := archiveName(b.Name, m.Version, p)
			sum, err := writeArchive(filepath.Join(out, name), built[p][b.Name], p, p.exe(b.Name), m)
			if err != nil {
				return nil, fmt.Errorf("archive %s: %w", name, err)
			}
			names = append(names, name)
			sums = append(sums, sum+"  "+name+"\n")
		}
	}
	sort.Strings(sums)
	if err := os.WriteFile(filepath.Join(out, sumsFile), []byte(strings.Join(sums, "")), 0o644); err != nil {
		return nil, err
	}
	return names, nil
}

// writeArchive writes a tar.gz holding the file bin, an executable for p,
// as name, with a fixed owner and time so the same commit gives the same
// sum, and returns its sha256.
func writeArchive(path, bin string, p platform, name string, m meta) (string, error) {
	raw, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	if err := checkExecutable(raw, p); err != nil {
		return "", fmt.Errorf("%s: %w", bin, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	zw := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(raw)), ModTime: m.Created}); err != nil {
		return "", err
	}
	if _, err := tw.Write(raw); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fileSHA256 is the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readSums reads dir/SHA256SUMS into archive name -> sha256.
func readSums(dir string) (map[string]string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, sumsFile))
	if err != nil {
		return nil, err
	}
	sums := map[string]string{}
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			return nil, fmt.Errorf("%s line %d: want \"<sha256>  <file>\", got %q", sumsFile, i+1, line)
		}
		sums[name] = sum
	}
	return sums, nil
}

// removeStaleArchives removes the archives in out of bins for versions
// other than m's.
func removeStaleArchives(out string, m meta, bins []binary) error {
	for _, b := range bins {
		for _, p := range b.Platforms {
			stale, err := filepath.Glob(filepath.Join(out, archiveName(b.Name, "*", p)))
			if err != nil {
				return err
			}
			for _, f := range stale {
				if filepath.Base(f) == archiveName(b.Name, m.Version, p) {
					continue
				}
				if err := os.Remove(f); err != nil {
					return fmt.Errorf("removing an earlier version's archive: %w", err)
				}
			}
		}
	}
	return nil
}
