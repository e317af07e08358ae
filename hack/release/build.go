package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The flags of every shipped binary: static (no cgo, so the image needs no
// libc), reproducible (no local paths, no VCS stamp that a Docker build
// context without .git could not reproduce), stripped. The Makefile's
// GO_BUILD_FLAGS and the Dockerfile say the same; TestBuildFlagsAgree holds
// the three together.
var (
	buildEnv   = []string{"CGO_ENABLED=0"}
	buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w"}
)

const defaultSource = "https://github.com/mtlsguard/mtlsguard"

// platform is a GOOS/GOARCH pair.
type platform struct{ OS, Arch string }

func (p platform) String() string { return p.OS + "/" + p.Arch }

// exe is the file name of a binary on p.
func (p platform) exe(name string) string {
	if p.OS == "windows" {
		return name + ".exe"
	}
	return name
}

// goBuild cross-compiles the package pkg of the repository src for p into out.
func goBuild(ctx context.Context, src, pkg string, p platform, out string) error {
	args := append([]string{"build"}, buildFlags...)
	args = append(args, "-o", out, pkg)
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), buildEnv...)
	cmd.Env = append(cmd.Env, "GOOS="+p.OS, "GOARCH="+p.Arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", pkg, p, err, msg)
	}
	return nil
}

// goTool is the go command that runs this program, so a release is built
// with the toolchain the Makefile chose.
func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// meta is what a release says about itself: image labels, SBOM and krew
// manifest fields.
type meta struct {
	Version  string
	Revision string
	Source   string
	Licenses string
	// Created is the commit time (or SOURCE_DATE_EPOCH), so the same commit
	// gives the same image digest and archive sums.
	Created time.Time
}

// complete fills what the flags left empty from git.
func (m *meta) complete(ctx context.Context, src string) error {
	if m.Revision == "" {
		rev, err := git(ctx, src, "rev-parse", "HEAD")
		if err != nil {
			return fmt.Errorf("-revision not given and %w", err)
		}
		m.Revision = rev
	}
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", epoch, err)
		}
		m.Created = time.Unix(sec, 0).UTC()
	} else {
		ct, err := git(ctx, src, "log", "-1", "--format=%ct", m.Revision)
		if err != nil {
			return fmt.Errorf("no SOURCE_DATE_EPOCH and %w", err)
		}
		sec, err := strconv.ParseInt(ct, 10, 64)
		if err != nil {
			return fmt.Errorf("commit time of %s: %q: %w", m.Revision, ct, err)
		}
		m.Created = time.Unix(sec, 0).UTC()
	}
	if m.Version == "" {
		if v, err := git(ctx, src, "describe", "--tags", "--match", "v[0-9]*", "--dirty"); err == nil {
			m.Version = v
		} else {
			// Like a Go pseudo-version: valid semver, which krew requires.
			short := m.Revision
			if len(short) > 12 {
				short = short[:12]
			}
			m.Version = "v0.0.0-" + m.Created.Format("20060102150405") + "-" + short
		}
	}
	return nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(string(out)), nil
}

// buildAll builds each package of bins for each of its platforms into
// dir/OS_ARCH/, and returns the paths by platform and name.
func buildAll(ctx context.Context, src, dir string, bins []binary) (map[platform]map[string]string, error) {
	out := map[platform]map[string]string{}
	for _, b := range bins {
		for _, p := range b.Platforms {
			if out[p][b.Name] != "" {
				continue // listed twice
			}
			path := filepath.Join(dir, p.OS+"_"+p.Arch, p.exe(b.Name))
			if err := goBuild(ctx, src, b.Package, p, path); err != nil {
				return nil, err
			}
			if out[p] == nil {
				out[p] = map[string]string{}
			}
			out[p][b.Name] = path
		}
	}
	return out, nil
}

// binary is one shipped command and the platforms it is built for.
type binary struct {
	Name      string
	Package   string
	Platforms []platform
}
