package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const repo = "../.."

// testMeta is a release of the checked-out commit under a made-up version.
func testMeta(t *testing.T) meta {
	t.Helper()
	m := meta{Version: "v1.2.3-test.1", Source: defaultSource, Licenses: "NOASSERTION"}
	if err := m.complete(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	builtOnce sync.Once
	builtDir  string
	built     map[platform]map[string]string
	builtErr  error
)

// testBinaries are what the tests build: the image's binaries for its
// platforms. The archives and the krew manifest are checked on these too:
// every further GOOS/GOARCH costs a cold compile of the whole dependency tree
// on a fresh machine, and the code is the same for all platforms (make
// krew-manifest checks the full manifest with validateKrewManifest as well,
// and TestKrewManifestHasOneWellFormedEntryPerPlatform covers the other four
// platforms with testdata/exe).
var testBinaries = withPlatforms(imageBinaries, imagePlatforms)

// builtBinaries cross-compiles testBinaries once for all tests of the package.
func builtBinaries(t *testing.T) map[platform]map[string]string {
	t.Helper()
	builtOnce.Do(func() {
		builtDir, builtErr = os.MkdirTemp("", "mtlsguard-release-test-")
		if builtErr != nil {
			return
		}
		built, builtErr = buildAll(context.Background(), repo, builtDir, testBinaries)
	})
	if builtErr != nil {
		t.Fatal(builtErr)
	}
	return built
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// TestImageIsMultiArchStaticAndNonRoot builds the image into a temporary
// layout with the code make image runs and inspects what a registry and a
// kubelet would see.
func TestImageIsMultiArchStaticAndNonRoot(t *testing.T) {
	m := testMeta(t)
	out := t.TempDir()
	if _, err := writeImage(imageOptions{Src: repo, Out: out, Platforms: imagePlatforms, Meta: m}, builtBinaries(t)); err != nil {
		t.Fatal(err)
	}

	lp, err := layout.FromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	// One entry, so `crane push dist/oci REF` pushes the index as it is.
	if len(topm.Manifests) != 1 || topm.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json: want one image index, got %+v", topm.Manifests)
	}
	if got := topm.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != m.Version {
		t.Errorf("index.json ref.name %q, want %q", got, m.Version)
	}
	idx, err := top.ImageIndex(topm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.source":   defaultSource,
		"org.opencontainers.image.version":  m.Version,
		"org.opencontainers.image.revision": m.Revision,
		"org.opencontainers.image.licenses": "NOASSERTION",
	}
	for k, v := range wantLabels {
		if im.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, im.Annotations[k], v)
		}
	}

	var platforms []string
	ranHelp := false
	for _, desc := range im.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %s has no platform", desc.Digest)
		}
		p := platform{desc.Platform.OS, desc.Platform.Architecture}
		platforms = append(platforms, p.String())
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != p.OS || cf.Architecture != p.Arch {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: config user %q, want 65532:65532", p, cf.Config.User)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/mtlsguard"}) || len(cf.Config.Cmd) != 0 {
			t.Errorf("%s: entrypoint %q cmd %q, want [/mtlsguard] and none", p, cf.Config.Entrypoint, cf.Config.Cmd)
		}
		if cf.Config.WorkingDir != "/" {
			t.Errorf("%s: workdir %q, want /", p, cf.Config.WorkingDir)
		}
		for k, v := range wantLabels {
			if cf.Config.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", p, k, cf.Config.Labels[k], v)
			}
		}

		files := layerFiles(t, img)
		var names []string
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		if !slices.Equal(names, []string{"mtlsguard", "tls-check"}) {
			t.Errorf("%s: layer holds %q, want exactly mtlsguard and tls-check", p, names)
		}
		dir := t.TempDir()
		for name, f := range files {
			if f.hdr.Uid != 0 || f.hdr.Gid != 0 || f.hdr.Mode&0o777 != 0o755 {
				t.Errorf("%s: /%s is %d:%d %o, want root-owned 755 (the user 65532 can run it, not change it)", p, name, f.hdr.Uid, f.hdr.Gid, f.hdr.Mode)
			}
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, f.data, 0o755); err != nil {
				t.Fatal(err)
			}
			assertStaticELF(t, path, p)
			if p.Arch == runtime.GOARCH && runtime.GOOS == "linux" {
				runHelp(t, path)
				ranHelp = true
			}
		}
		mf, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{annotationSBOMDigest, annotationSBOMFile} {
			if mf.Annotations[k] == "" || mf.Annotations[k] != desc.Annotations[k] {
				t.Errorf("%s: annotation %s: manifest %q, index descriptor %q; want both, equal", p, k, mf.Annotations[k], desc.Annotations[k])
			}
		}
		assertSBOM(t, out, desc, files)
	}
	sort.Strings(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("image platforms %v, want linux/amd64 and linux/arm64", platforms)
	}
	if !ranHelp {
		t.Errorf("no binary in the image for this machine (%s/%s) to run", runtime.GOOS, runtime.GOARCH)
	}
}

type tarFile struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]tarFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]tarFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "/")] = tarFile{h, data}
	}
}

// assertStaticELF fails unless path is an ELF executable for p that needs
// no dynamic loader and no shared library, so it runs on an empty base.
func assertStaticELF(t *testing.T, path string, p platform) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s (%s): %v", path, p, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Arch]
	if f.Machine != want {
		t.Errorf("%s: ELF machine %v, want %v for %s", filepath.Base(path), f.Machine, want, p)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Errorf("%s (%s): has a PT_INTERP program header (needs a dynamic loader)", filepath.Base(path), p)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(libs) != 0 {
		t.Errorf("%s (%s): DT_NEEDED %v, want none", filepath.Base(path), p, libs)
	}
}

func runHelp(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--help").CombinedOutput()
	if err != nil {
		t.Errorf("%s --help: %v\n%s", filepath.Base(path), err, out)
		return
	}
	if !bytes.Contains(out, []byte("Usage")) && !bytes.Contains(out, []byte("usage")) {
		t.Errorf("%s --help printed no usage:\n%s", filepath.Base(path), out)
	}
}

// assertSBOM checks that the manifest's SBOM annotations name the SBOM file
// by its digest, and that the SBOM lists each binary by its sha256 and every
// module its build info (go version -m) names.
func assertSBOM(t *testing.T, out string, desc v1.Descriptor, files map[string]tarFile) {
	t.Helper()
	p := desc.Platform.OS + "/" + desc.Platform.Architecture
	raw, err := os.ReadFile(filepath.Join(out, desc.Annotations[annotationSBOMFile]))
	if err != nil {
		t.Fatalf("%s: SBOM named by annotation %s: %v", p, annotationSBOMFile, err)
	}
	sum := sha256.Sum256(raw)
	if got := "sha256:" + hex.EncodeToString(sum[:]); desc.Annotations[annotationSBOMDigest] != got {
		t.Errorf("%s: annotation %s = %q, file has %s", p, annotationSBOMDigest, desc.Annotations[annotationSBOMDigest], got)
	}
	var doc spdxDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: SBOM: %v", p, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" {
		t.Errorf("%s: SBOM header %q %q %q", p, doc.SPDXVersion, doc.DataLicense, doc.SPDXID)
	}
	pkgs := map[string]spdxPackage{}
	ids := map[string]bool{}
	for _, pkg := range doc.Packages {
		pkgs[pkg.Name+"@"+pkg.VersionInfo] = pkg
		if ids[pkg.SPDXID] {
			t.Errorf("%s: SBOM SPDXID %s twice", p, pkg.SPDXID)
		}
		ids[pkg.SPDXID] = true
	}
	for _, r := range doc.Relationships {
		if !ids[r.Related] || (r.Element != "SPDXRef-DOCUMENT" && !ids[r.Element]) {
			t.Errorf("%s: SBOM relationship %+v names an unknown element", p, r)
		}
	}
	for name, f := range files {
		var bin *spdxPackage
		for _, pkg := range doc.Packages {
			if pkg.Name == "/"+name {
				bin = &pkg
			}
		}
		binSum := sha256.Sum256(f.data)
		if bin == nil || len(bin.Checksums) != 1 || bin.Checksums[0].ChecksumValue != hex.EncodeToString(binSum[:]) {
			t.Errorf("%s: SBOM has no package /%s with the binary's sha256: %+v", p, name, bin)
		}
		bi, err := buildinfo.Read(bytes.NewReader(f.data))
		if err != nil {
			t.Fatalf("%s: build info of /%s: %v", p, name, err)
		}
		if _, ok := pkgs["stdlib@"+bi.GoVersion]; !ok {
			t.Errorf("%s: SBOM lacks stdlib@%s", p, bi.GoVersion)
		}
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			if _, ok := pkgs[d.Path+"@"+d.Version]; !ok {
				t.Errorf("%s: SBOM lacks module %s@%s that /%s is built from", p, d.Path, d.Version, name)
			}
		}
		if len(bi.Deps) < 10 {
			t.Errorf("%s: /%s has %d modules in its build info; stripped of it?", p, name, len(bi.Deps))
		}
	}
}

// TestBuildFlagsAgree holds the Makefile's build target, the Dockerfile and
// this tool to the same flags, so every way of building ships the same
// binaries.
func TestBuildFlagsAgree(t *testing.T) {
	want := append(slices.Clone(buildEnv), buildFlags...)
	sort.Strings(want)

	mk, err := os.ReadFile(filepath.Join(repo, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var mkFlags []string
	for _, line := range strings.Split(string(mk), "\n") {
		if v, ok := strings.CutPrefix(line, "GO_BUILD_FLAGS :="); ok {
			mkFlags = shellWords(v)
		}
	}
	var builds int
	for _, line := range strings.Split(string(mk), "\n") {
		if strings.Contains(line, "$(GO) build") && shipped(line) {
			builds++
			got := flagsOf(strings.ReplaceAll(line, "$(GO_BUILD_FLAGS)", strings.Join(quoteWords(mkFlags), " ")))
			if !slices.Equal(got, want) {
				t.Errorf("Makefile: %q builds with %q, want %q", strings.TrimSpace(line), got, want)
			}
		}
	}
	if builds < 2 {
		t.Errorf("Makefile: found %d go build lines of the shipped commands, want the build target's two", builds)
	}

	df, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, then split the RUN into its commands.
	run := strings.ReplaceAll(string(df), "\\\n", " ")
	builds = 0
	for _, cmd := range strings.FieldsFunc(run, func(r rune) bool { return r == '\n' || r == '&' }) {
		if !strings.Contains(cmd, "go build") || !shipped(cmd) {
			continue
		}
		builds++
		if got := flagsOf(cmd); !slices.Equal(got, want) {
			t.Errorf("Dockerfile: %q builds with %q, want %q", strings.TrimSpace(cmd), got, want)
		}
	}
	if builds != len(imageBinaries) {
		t.Errorf("Dockerfile: %d go build commands, want %d", builds, len(imageBinaries))
	}
}

// shipped tells whether a command line builds one of the shipped binaries.
func shipped(line string) bool {
	for _, b := range imageBinaries {
		if slices.Contains(shellWords(line), b.Package) {
			return true
		}
	}
	return false
}

// flagsOf is the sorted build flags and CGO_ENABLED setting of a shell
// command line running go build (GOOS, GOARCH and -o left out).
func flagsOf(line string) []string {
	var out []string
	words := shellWords(line)
	for i, w := range words {
		switch {
		case strings.HasPrefix(w, "CGO_ENABLED="):
			out = append(out, w)
		case w == "-o":
			words[i+1] = ""
		case strings.HasPrefix(w, "-"):
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// shellWords splits s into words as a POSIX shell would, for the quoting
// the Makefile and Dockerfile use ('...' and "...").
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

func quoteWords(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = "'" + w + "'"
	}
	return out
}

// TestKrewManifestMatchesArchives builds the release archives and the krew
// manifest with the code make dist and make krew-manifest run, and checks
// the manifest; then that the check catches a manifest that lies.
func TestKrewManifestMatchesArchives(t *testing.T) {
	m := testMeta(t)
	dist := t.TempDir()
	// tls-check only: the plugin's archives; mtlsguard's are made the same way.
	bins := []binary{{Name: "tls-check", Package: "./cmd/tls-check", Platforms: imagePlatforms}}
	names, err := writeDist(dist, m, bins, builtBinaries(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := len(imagePlatforms); len(names) != want {
		t.Fatalf("%d archives, want %d: %q", len(names), want, names)
	}
	sums, err := readSums(dist)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		got, err := fileSHA256(filepath.Join(dist, n))
		if err != nil {
			t.Fatal(err)
		}
		if sums[n] != got {
			t.Errorf("%s: %s says %q, the file has %s", n, sumsFile, sums[n], got)
		}
	}

	manifest := filepath.Join(t.TempDir(), "plugins", "tls-check.yaml")
	base := "https://example.invalid/releases/" + m.Version
	if err := writeKrewManifest(dist, manifest, base, m, imagePlatforms); err != nil {
		t.Fatal(err)
	}
	if err := validateKrewManifest(manifest, dist, imagePlatforms); err != nil {
		t.Fatalf("the manifest make krew-manifest writes is not valid:\n%v", err)
	}
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"apiVersion: " + krewAPIVersion, "kind: Plugin", "name: tls-check", "version: " + m.Version,
		"bin: tls-check", "sha256: ", "os: linux", "arch: arm64",
		"uri: " + base + "/" + archiveName("tls-check", m.Version, platform{"linux", "arm64"}),
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("manifest lacks %q:\n%s", want, raw)
		}
	}

	tests := []manifestEdit{
		{"an archive changed after the manifest was written", func(t *testing.T, _, dist string) {
			appendTo(t, filepath.Join(dist, archiveName("tls-check", m.Version, platform{"linux", "arm64"})), []byte{0})
		}, "spec.platforms[1] (linux/arm64).sha256"},
		{"a platform missing", func(t *testing.T, manifest, _ string) {
			replaceIn(t, manifest, "arch: arm64", "arch: s390x")
		}, "nothing for linux/arm64"},
		{"a windows bin without .exe", func(t *testing.T, manifest, _ string) {
			replaceIn(t, manifest, "os: linux", "os: windows")
		}, `(windows/amd64).bin "tls-check": want a file name, ending in .exe on windows only`},
		{"a bin that is not in the archive", func(t *testing.T, manifest, _ string) {
			replaceIn(t, manifest, "bin: tls-check\n", "bin: tls_check\n")
		}, `spec.platforms[0] (linux/amd64).bin "tls_check" is not in`},
		{"a field krew does not know", func(t *testing.T, manifest, _ string) {
			replaceIn(t, manifest, "kind: Plugin", "kind: Plugin\nextra: 1")
		}, `unknown field "extra"`},
	}
	checkManifestEdits(t, tests, raw, dist, imagePlatforms)
}

func appendTo(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func replaceIn(t *testing.T, path, old, new string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(old)) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(raw, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// manifestEdit spoils a krew manifest or the archives beside it; the
// validation must then fail with wantErr.
type manifestEdit struct {
	name    string
	edit    func(t *testing.T, manifest, dist string)
	wantErr string
}

// checkManifestEdits applies each edit to a copy of the manifest raw and of
// the archives in dist, and checks that validateKrewManifest refuses it.
func checkManifestEdits(t *testing.T, tests []manifestEdit, raw []byte, dist string, platforms []platform) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, mf := copyDir(t, dist), filepath.Join(t.TempDir(), "tls-check.yaml")
			if err := os.WriteFile(mf, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			tc.edit(t, mf, d)
			err := validateKrewManifest(mf, d, platforms)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}
