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
	return generate(seed, false)
}

// GenerateAmbient is Generate for the ambient family (meshgen.NewAmbient).
// It draws from its own stream, so Generate's scenarios do not change.
func GenerateAmbient(seed uint64) []byte {
	return generate(seed, true)
}

func generate(seed uint64, ambient bool) []byte {
	stream, family := seed^0x9e3779b97f4a7c15, ""
	g := meshgen.New
	if ambient {
		stream, family, g = stream^0xa3b1e7, " (ambient)", meshgen.NewAmbient
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# generated scenario%s, seed %d\n", family, seed)
	for _, o := range g(rand.New(rand.NewPCG(seed, stream))).Mesh() {
		raw, err := yaml.Marshal(o)
		if err != nil {
			panic(err)
		}
		b.WriteString("---\n")
		b.Write(raw)
	}
	return b.Bytes()
}
