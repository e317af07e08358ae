// Package testcrds gives the tests that start a control plane of their own
// the CRDs they install: Istio's, read from the istio.io/api module the
// build uses (kubernetes/customresourcedefinitions.gen.yaml), and those of
// the audit's reports.
package testcrds

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Watched are the Istio CRDs the webhook watches: a control plane without
// one of them never gets it ready.
var Watched = []string{"destinationrules.networking.istio.io", "peerauthentications.security.istio.io",
	"serviceentries.networking.istio.io", "workloadentries.networking.istio.io", "sidecars.networking.istio.io"}

// Istio reads the named CRDs (Watched when none are named) from the
// istio.io/api module of the Go module at dir.
func Istio(dir string, names ...string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	if len(names) == 0 {
		names = Watched
	}
	api, err := moduleDir(dir, "istio.io/api")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(api, "kubernetes", "customresourcedefinitions.gen.yaml")
	all, err := File(path)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range all {
		if want[crd.Name] {
			crds = append(crds, crd)
			delete(want, crd.Name)
		}
	}
	if len(want) > 0 {
		return nil, fmt.Errorf("%s lacks %v", path, want)
	}
	return crds, nil
}

// Reports reads the CRDs of the audit's reports: openreports.io Report from
// the github.com/openreports/reports-api module of the Go module at dir,
// and wgpolicyk8s.io PolicyReport from the file policyReport.
func Reports(dir, policyReport string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	api, err := moduleDir(dir, "github.com/openreports/reports-api")
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, path := range []string{filepath.Join(api, "config", "crd", "openreports.io_reports.yaml"), policyReport} {
		c, err := File(path)
		if err != nil {
			return nil, err
		}
		crds = append(crds, c...)
	}
	return crds, nil
}

// File reads every CRD of a YAML file of one or more documents; a field a
// CRD does not have is an error.
func File(path string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return crds, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || bytes.Equal(bytes.TrimSpace(doc), []byte("---")) {
			continue
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc, crd); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		crds = append(crds, crd)
	}
}

// moduleDir is the directory of module mod as the Go module at dir
// requires it.
func moduleDir(dir, mod string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", mod, err)
	}
	return strings.TrimSpace(string(out)), nil
}
