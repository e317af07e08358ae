package agreement

import (
	"os"
	"regexp"
	"testing"
)

// knownDifference returns the ID of the entry of
// test/conformance/KNOWN_DIFFERENCES.md that explains a disagreement, or ""
// when none does. Each entry is a deliberate choice of the engine; the test
// accepts exactly these.
func knownDifference(k pairKey, istio, engine answer) string {
	for _, d := range knownDifferences {
		if d.match(k, istio, engine) {
			return d.id
		}
	}
	return ""
}

type known struct {
	id    string
	match func(k pairKey, istio, engine answer) bool
}

var knownDifferences = []known{}

// TestKnownDifferencesAreDocumented keeps the table above and
// KNOWN_DIFFERENCES.md (one "## KD<n>: title" heading per entry) in step.
func TestKnownDifferencesAreDocumented(t *testing.T) {
	raw, err := os.ReadFile("../conformance/KNOWN_DIFFERENCES.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (KD\d+):`).FindAllStringSubmatch(string(raw), -1) {
		documented[m[1]] = true
	}
	for _, d := range knownDifferences {
		if !documented[d.id] {
			t.Errorf("%s is accepted by the test but not documented", d.id)
		}
		delete(documented, d.id)
	}
	for id := range documented {
		t.Errorf("%s is documented but the test does not match it", id)
	}
}
