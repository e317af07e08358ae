// Command gen prints the generated conformance scenario of a seed, to
// reproduce a disagreement: go run ./test/agreement/gen [-ambient|-entries] -seed 42 > s.yaml
package main

import (
	"flag"
	"os"

	"github.com/mtlsguard/mtlsguard/test/agreement"
)

func main() {
	seed := flag.Uint64("seed", 0, "scenario seed")
	ambient := flag.Bool("ambient", false, "the ambient family (GenerateAmbient)")
	entries := flag.Bool("entries", false, "the serviceentry family (GenerateEntries)")
	flag.Parse()
	if *entries {
		os.Stdout.Write(agreement.GenerateEntries(*seed))
		return
	}
	if *ambient {
		os.Stdout.Write(agreement.GenerateAmbient(*seed))
		return
	}
	os.Stdout.Write(agreement.Generate(*seed))
}
