// Package testcrds gives the tests that start a control plane of their own
// the Istio CRDs the webhook needs, read from the istio.io/api module the
// build uses (kubernetes/customresourcedefinitions.gen.yaml).
package testcrds

import (
	"bufio"
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
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m istio.io/api: %w", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(doc, crd); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
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
