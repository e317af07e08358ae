package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// distBuilt is tls-check for every dist platform: the tests' own builds
// (builtBinaries) where they have them, testdata/exe cross-compiled with
// goBuild for the others.
func distBuilt(t *testing.T) map[platform]map[string]string {
	t.Helper()
	out := map[platform]map[string]string{}
	dir := t.TempDir()
	for _, p := range allPlatforms {
		if path := builtBinaries(t)[p]["tls-check"]; path != "" {
			out[p] = map[string]string{"tls-check": path}
			continue
		}
		path := filepath.Join(dir, p.OS+"_"+p.Arch, p.exe("tls-check"))
		if err := goBuild(context.Background(), "testdata/exe", ".", p, path); err != nil {
			t.Fatal(err)
		}
		out[p] = map[string]string{"tls-check": path}
	}
	return out
}

// magic is how file(1) tells the formats apart: checked here without
// checkExecutable, which the test checks against it.
func magic(raw []byte) string {
	switch {
	case bytes.HasPrefix(raw, []byte("\x7fELF")):
		return "ELF"
	case bytes.HasPrefix(raw, []byte{0xcf, 0xfa, 0xed, 0xfe}): // MH_MAGIC_64, little-endian
		return "Mach-O"
	case bytes.HasPrefix(raw, []byte("MZ")):
		return "PE"
	}
	return "unknown"
}

// TestKrewManifestHasOneWellFormedEntryPerPlatform writes the archives of
// all six tls-check platforms and the krew manifest with the code make
// dist and make krew-manifest run, then reads every entry back.
func TestKrewManifestHasOneWellFormedEntryPerPlatform(t *testing.T) {
	// The platforms release krew writes and checks (main.go).
	if !slices.Equal(distBinaries[0].Platforms, allPlatforms) || len(allPlatforms) != 6 {
		t.Fatalf("release krew covers %v, want the six of allPlatforms %v", distBinaries[0].Platforms, allPlatforms)
	}
	m := testMeta(t)
	built := distBuilt(t)
	dist := t.TempDir()
	if _, err := writeDist(dist, m, []binary{{Name: "tls-check", Package: "./cmd/tls-check", Platforms: allPlatforms}}, built); err != nil {
		t.Fatal(err)
	}

	// Whatever archives SHA256SUMS lists: the sum is the file's, and the
	// one file in it is an executable of the platform its name says.
	sums, err := readSums(dist)
	if err != nil {
		t.Fatal(err)
	}
	wantFormat := map[string]string{"linux": "ELF", "darwin": "Mach-O", "windows": "PE"}
	for name, sum := range sums {
		got, err := fileSHA256(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		if got != sum {
			t.Errorf("%s: %s says %s, the file has %s", name, sumsFile, sum, got)
		}
		var p platform
		if _, err := fmt.Sscanf(strings.ReplaceAll(strings.TrimSuffix(name, ".tar.gz"), "_", " "), "tls-check "+m.Version+" %s %s", &p.OS, &p.Arch); err != nil {
			t.Fatalf("%s: not tls-check_%s_OS_ARCH.tar.gz: %v", name, m.Version, err)
		}
		files, err := archiveFiles(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 1 || !files[p.exe("tls-check")] {
			t.Errorf("%s holds %v, want only %s", name, files, p.exe("tls-check"))
			continue
		}
		raw, err := archiveFile(filepath.Join(dist, name), p.exe("tls-check"))
		if err != nil {
			t.Fatal(err)
		}
		if got := magic(raw); got != wantFormat[p.OS] {
			t.Errorf("%s: %s file, want %s for %s", name, got, wantFormat[p.OS], p)
		}
		// checkExecutable takes it for its own platform and no other.
		for _, q := range allPlatforms {
			if err := checkExecutable(raw, q); (err == nil) != (q == p) {
				t.Errorf("%s: checkExecutable for %s: %v", name, q, err)
			}
		}
	}
	if len(sums) != len(allPlatforms) {
		t.Errorf("%s lists %d archives, want %d", sumsFile, len(sums), len(allPlatforms))
	}

	manifest := filepath.Join(t.TempDir(), "tls-check.yaml")
	base := "https://example.invalid/releases/" + m.Version
	if err := writeKrewManifest(dist, manifest, base, m, distBinaries[0].Platforms); err != nil {
		t.Fatal(err)
	}
	if err := validateKrewManifest(manifest, dist, allPlatforms); err != nil {
		t.Fatalf("the manifest make krew-manifest writes is not valid:\n%v", err)
	}
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var plugin krewPlugin
	if err := yaml.UnmarshalStrict(raw, &plugin); err != nil {
		t.Fatal(err)
	}
	if len(plugin.Spec.Platforms) != len(allPlatforms) {
		t.Fatalf("%d platform entries, want %d:\n%s", len(plugin.Spec.Platforms), len(allPlatforms), raw)
	}
	for _, p := range allPlatforms {
		t.Run(p.OS+"_"+p.Arch, func(t *testing.T) {
			var e *krewPlatform
			for i, pl := range plugin.Spec.Platforms {
				if pl.Selector.MatchLabels["os"] == p.OS && pl.Selector.MatchLabels["arch"] == p.Arch {
					if e != nil {
						t.Fatalf("a second entry, spec.platforms[%d]", i)
					}
					e = &plugin.Spec.Platforms[i]
				}
			}
			if e == nil {
				t.Fatalf("no entry:\n%s", raw)
			}
			if len(e.Selector.MatchLabels) != 2 {
				t.Errorf("selector %v, want os and arch only", e.Selector.MatchLabels)
			}
			bin := "tls-check"
			if p.OS == "windows" {
				bin = "tls-check.exe"
			}
			archive := "tls-check_" + m.Version + "_" + p.OS + "_" + p.Arch + ".tar.gz"
			if e.Bin != bin || !slices.Equal(e.Files, []krewFile{{From: bin, To: "."}}) {
				t.Errorf("bin %q files %+v, want %q copied to .", e.Bin, e.Files, bin)
			}
			if e.URI != base+"/"+archive {
				t.Errorf("uri %q, want %q", e.URI, base+"/"+archive)
			}
			if want, _ := fileSHA256(filepath.Join(dist, archive)); e.SHA256 != want || sums[archive] != want {
				t.Errorf("sha256 %q, %s %q, the archive %q", e.SHA256, sumsFile, sums[archive], want)
			}
		})
	}

	tests := []manifestEdit{
		{"the windows archive holds a linux binary", func(t *testing.T, _, dist string) {
			if _, err := writeArchive(filepath.Join(dist, archiveName("tls-check", m.Version, platform{"windows", "amd64"})),
				built[platform{"linux", "amd64"}]["tls-check"], platform{"linux", "amd64"}, "tls-check.exe", m); err != nil {
				t.Fatal(err)
			}
		}, `spec.platforms[4] (windows/amd64).bin "tls-check.exe" in`},
		{"the darwin entries' arch labels swapped", func(t *testing.T, manifest, _ string) {
			var p krewPlugin
			raw, err := os.ReadFile(manifest)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(raw, &p); err != nil {
				t.Fatal(err)
			}
			for _, pl := range p.Spec.Platforms {
				if l := pl.Selector.MatchLabels; l["os"] == "darwin" {
					l["arch"] = map[string]string{"amd64": "arm64", "arm64": "amd64"}[l["arch"]]
				}
			}
			if raw, err = yaml.Marshal(p); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(manifest, raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "want an executable for darwin/arm64"},
	}
	checkManifestEdits(t, tests, raw, dist, allPlatforms)

	t.Run("make dist refuses a binary of another platform", func(t *testing.T) {
		wrong := map[platform]map[string]string{{"darwin", "arm64"}: built[platform{"windows", "arm64"}]}
		_, err := writeDist(t.TempDir(), m, []binary{{Name: "tls-check", Platforms: []platform{{"darwin", "arm64"}}}}, wrong)
		if err == nil || !strings.Contains(err.Error(), "not a Mach-O file, which darwin/arm64 runs") {
			t.Errorf("got %v, want a refusal naming the format and platform", err)
		}
	})
}
