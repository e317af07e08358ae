package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMakeDistLeavesOnlyTheCurrentVersionsArchives(t *testing.T) {
	linux := platform{"linux", "amd64"}
	bins := []binary{{Name: "tls-check", Package: "./cmd/tls-check", Platforms: []platform{linux}}}
	built := builtBinaries(t)
	out := t.TempDir()
	// Not the tool's to remove: another binary's archive, another file.
	keep := []string{archiveName("mtlsguard", "v0.9.0", linux), "NOTES.md"}
	for _, f := range keep {
		if err := os.WriteFile(filepath.Join(out, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, version := range []string{"v1.0.0", "v1.1.0"} {
		m := testMeta(t)
		m.Version = version
		if _, err := writeDist(out, m, bins, built); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := append(keep, sumsFile, archiveName("tls-check", "v1.1.0", linux))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("dist holds %q, want %q", got, want)
	}
}
