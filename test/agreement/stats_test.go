package agreement

import (
	"sort"
	"testing"
)

// tally counts, per field, the pairs on which the engine and Istio agree.
type tally map[string][2]int // agreed, total

func (t tally) count(field string, agreed bool) {
	c := t[field]
	c[1]++
	if agreed {
		c[0]++
	}
	t[field] = c
}

// counter counts one pair into several tallies: its family's and those of
// the groups the pair belongs to.
type counter []tally

func (c counter) count(field string, agreed bool) {
	for _, t := range c {
		t.count(field, agreed)
	}
}

// stats are a family's tallies: every pair, the pairs of clients a Sidecar
// resource scopes (sidecar-scoping), and the pairs whose verdict rests on
// a DestinationRule's subjectAltNames or on a failed SAN check (identity).
type stats struct {
	family                      string
	all, scoping, identityGroup tally
	known                       map[string]int
}

func newStats(family string) *stats {
	return &stats{family: family, all: tally{}, scoping: tally{}, identityGroup: tally{}, known: map[string]int{}}
}

var (
	pairFields     = []string{"pairs", "client_sends", "ok"}
	identityFields = []string{"identity", "san_check", "san_rejected", "sans", "ok_with_rule_sans"}
)

// log prints one line per field of the family, then of each of its
// groups that has pairs.
func (s *stats) log(t *testing.T) {
	t.Helper()
	groups := []struct {
		name   string
		tally  tally
		fields []string
	}{
		{s.family + " family", s.all, append(append([]string{}, pairFields...), identityFields...)},
		{s.family + " family, sidecar-scoping", s.scoping, pairFields},
		{s.family + " family, identity", s.identityGroup, append(append([]string{}, pairFields...), identityFields...)},
	}
	for i, g := range groups {
		if i > 0 && g.tally["pairs"][1] == 0 {
			continue
		}
		for _, field := range g.fields {
			c := g.tally[field]
			t.Logf("%s: agreement on %-17s %d/%d (%.2f%%)", g.name, field, c[0], c[1], 100*float64(c[0])/float64(max(c[1], 1)))
		}
	}
	for id, n := range s.known {
		t.Logf("%s family: accepted known difference %s: %d pairs", s.family, id, n)
	}
}

// counterFor is the tallies pair k counts in.
func (s *stats) counterFor(k pairKey, o, e answer, scoped map[string]bool) counter {
	c := counter{s.all}
	if scoped[k.Client] {
		c = append(c, s.scoping)
	}
	if e.SANs != nil || (o.Checked && !o.identity.OK) {
		c = append(c, s.identityGroup)
	}
	return c
}

// compare counts agreement per field and reports every disagreement that
// is not a known difference, with the scenario to reproduce it. scoped
// are the client pods a Sidecar resource applies to.
func (s *stats) compare(t *testing.T, name string, oracle, engine map[pairKey]answer, scoped map[string]bool) {
	t.Helper()
	keys := map[pairKey]bool{}
	for k := range oracle {
		keys[k] = true
	}
	for k := range engine {
		keys[k] = true
	}
	sorted := make([]pairKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].String() < sorted[j].String() })
	reported := 0
	for _, k := range sorted {
		o, inOracle := oracle[k]
		e, inEngine := engine[k]
		c := s.counterFor(k, o, e, scoped)
		c.count("pairs", inOracle && inEngine)
		if !inOracle || !inEngine {
			if reported < 10 {
				t.Errorf("%s: %s: only the %s lists this pair (oracle %+v, engine %+v)", name, k, map[bool]string{true: "oracle", false: "engine"}[inOracle], o, e)
			}
			reported++
			continue
		}
		sendsAgree, okAgree := o.ClientSends == e.ClientSends, o.OK == e.OK
		c.count("client_sends", sendsAgree)
		c.count("ok", okAgree)
		if !c.compareIdentity(o, e, okAgree) && reported < 10 {
			t.Errorf("%s: %s: identity: Istio %+v; engine %+v", name, k, o.identity, e.identity)
			reported++
		}
		if sendsAgree && okAgree {
			continue
		}
		if id := knownDifference(k, o, e); id != "" {
			s.known[id]++
			continue
		}
		if reported < 10 {
			t.Errorf("%s: %s: Istio: sends %s ok=%v (%s); engine: sends %s ok=%v (%s)",
				name, k, o.ClientSends, o.OK, o.Detail, e.ClientSends, e.OK, e.Detail)
		}
		reported++
	}
	if reported > 0 {
		t.Logf("%s: %d disagreements; reproduce with: go run ./test/agreement/gen [-ambient|-entries] -seed N > s.yaml (seed scenarios) or the curated cluster.yaml", name, reported)
	}
}
