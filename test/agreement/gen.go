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

// GenerateEntries is Generate for the serviceentry family
// (meshgen.NewEntries), from a stream of its own.
func GenerateEntries(seed uint64) []byte {
	return generateFamily(seed, 0x5e5e17, " (serviceentry)", meshgen.NewEntries)
}

func generate(seed uint64, ambient bool) []byte {
	if ambient {
		return generateFamily(seed, 0xa3b1e7, " (ambient)", meshgen.NewAmbient)
	}
	return generateFamily(seed, 0, "", meshgen.New)
}

func generateFamily(seed, streamSalt uint64, family string, g func(*rand.Rand) *meshgen.Gen) []byte {
	stream := seed ^ 0x9e3779b97f4a7c15 ^ streamSalt
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
