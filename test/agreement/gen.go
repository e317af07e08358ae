// Package agreement checks the engine against Istio's own control plane:
// it generates random small meshes (Generate), has the oracle in
// test/conformance (a separate module that builds Istio's pilot) and
// tls-check -o json answer for each, and compares the answers.
package agreement

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	"sigs.k8s.io/yaml"

	"github.com/mtlsguard/mtlsguard/internal/meshgen"
)

// Generate returns a random, valid Istio scenario for seed as
// multi-document YAML. The same seed always gives the same scenario.
func Generate(seed uint64) []byte {
	g := meshgen.New(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
	var b bytes.Buffer
	fmt.Fprintf(&b, "# generated scenario, seed %d\n", seed)
	for _, o := range g.Mesh() {
		raw, err := yaml.Marshal(o)
		if err != nil {
			panic(err)
		}
		b.WriteString("---\n")
		b.Write(raw)
	}
	return b.Bytes()
}
