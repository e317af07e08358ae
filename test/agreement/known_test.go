package agreement

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
