package policy

import (
	"slices"
	"strings"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
)

// mergedRule is Istio's ConsolidatedDestRule: the first rule of a host in
// one index, with the subsets (and, if it had none, the traffic policy) of
// the rules merged into it.
type mergedRule struct {
	first         *destRule
	exportTo      map[string]bool
	trafficPolicy *networkingapi.TrafficPolicy
	subsets       []*networkingapi.Subset
	// byName indexes subsets when there are many (see indexSubsets).
	byName map[string]int
	// selectors are the subsets' labels, in the order of subsets.
	selectors []selector
	from      []string
	// noCluster, when set, marks no rule but the absence of a cluster: the
	// client reaches the host through the PassthroughCluster in plaintext
	// (sidecarscope.go); it says why.
	noCluster string
}

// manySubsets is the number of subsets from which a rule indexes them by
// name: a decision looks every subset up several times, and a linear
// search made a rule of 10,000 subsets take minutes.
const manySubsets = 16

// indexSubsets builds byName for a rule with many subsets. The first
// subset of a name wins, as in subset's linear search.
func (m *mergedRule) indexSubsets() {
	m.byName = nil
	m.selectors = make([]selector, len(m.subsets))
	for i, s := range m.subsets {
		m.selectors[i] = newSelector(s.GetLabels())
	}
	if len(m.subsets) < manySubsets {
		return
	}
	m.byName = make(map[string]int, len(m.subsets))
	for i, s := range m.subsets {
		if _, dup := m.byName[s.GetName()]; !dup {
			m.byName[s.GetName()] = i
		}
	}
}

func (m *mergedRule) ref() string {
	if m == nil {
		return "-"
	}
	if m.noCluster != "" {
		return passthroughCluster
	}
	return m.first.name + "/" + m.first.namespace
}

// subset finds a subset by name; a nil rule (no rule for the host) has
// none.
func (m *mergedRule) subset(name string) *networkingapi.Subset {
	if i := m.subsetIndex(name); i >= 0 {
		return m.subsets[i]
	}
	return nil
}

// subsetSelector returns the labels of subset name, nil if it has none.
func (m *mergedRule) subsetSelector(name string) selector {
	if i := m.subsetIndex(name); i >= 0 {
		return m.selectors[i]
	}
	return nil
}

func (m *mergedRule) subsetIndex(name string) int {
	if m == nil {
		return -1 // no rule: a create of a rule with subsets compares against it
	}
	if m.byName != nil {
		if i, ok := m.byName[name]; ok {
			return i
		}
		return -1
	}
	for i, s := range m.subsets {
		if s.GetName() == name {
			return i
		}
	}
	return -1
}

// hostRules is one of Istio's consolidatedDestRules indexes.
type hostRules struct {
	specific map[string][]*mergedRule
	wildcard map[string][]*mergedRule
	// bySpecificity lists the keys of wildcard, most specific first: the
	// first that matches a host is the one MostSpecificHostMatch picks.
	bySpecificity []string
}

// seal orders the wildcard hosts once the index is built.
func (hr *hostRules) seal() {
	hr.bySpecificity = hr.bySpecificity[:0]
	for w := range hr.wildcard {
		hr.bySpecificity = append(hr.bySpecificity, w)
	}
	slices.SortFunc(hr.bySpecificity, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case moreSpecific(a, b):
			return -1
		}
		return 1
	})
}

// drIndex holds a namespace's share of Istio's destinationRuleIndex.
type drIndex struct {
	local     hostRules // namespaceLocal: what clients in this namespace see first
	exported  hostRules // exportedByNamespace: what other namespaces may see
	rootLocal hostRules // rootNamespaceLocal, for the root namespace only
}

// sortDestRules orders rules as sortConfigBySelectorAndCreationTime does:
// rules with a workloadSelector first, then oldest first.
func sortDestRules(drs []*destRule) {
	slices.SortFunc(drs, func(a, b *destRule) int {
		return bySelectorThenAge(a.hasSelector, a.created, a.name, a.namespace, b.hasSelector, b.created, b.name, b.namespace)
	})
}

// bySelectorThenAge orders configs with a workloadSelector first, then
// oldest first (olderThan): how Istio orders DestinationRules and Sidecars.
func bySelectorThenAge(aSel bool, aAt time.Time, aName, aNS string, bSel bool, bAt time.Time, bName, bNS string) int {
	switch {
	case aSel != bSel && aSel:
		return -1
	case aSel != bSel:
		return 1
	case olderThan(aAt, aName, aNS, bAt, bName, bNS):
		return -1
	case olderThan(bAt, bName, bNS, aAt, aName, aNS):
		return 1
	}
	return 0
}

// buildDRIndex is setDestinationRules restricted to one namespace. drs must
// be sorted with sortDestRules.
func buildDRIndex(namespace string, drs []*destRule, m Mesh) *drIndex {
	idx := &drIndex{}
	for _, dr := range drs {
		exportTo := map[string]bool{}
		if dr.hasSelector {
			exportTo["."] = true
		} else {
			for _, e := range dr.exportTo {
				exportTo[e] = true
			}
		}
		if len(exportTo) == 0 || exportTo["*"] || exportTo["."] || exportTo[namespace] {
			idx.local.merge(dr, exportTo)
		}
		privateOnly := (len(exportTo) == 0 && m.defaultExportPrivate()) ||
			(len(exportTo) == 1 && (exportTo["."] || exportTo[namespace]))
		switch {
		case !privateOnly:
			idx.exported.merge(dr, exportTo)
		case namespace == m.RootNamespace:
			idx.rootLocal.merge(dr, exportTo)
		}
	}
	idx.local.seal()
	idx.exported.seal()
	idx.rootLocal.seal()
	return idx
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func supersetOf(a, b map[string]bool) bool {
	for k := range b {
		if !a[k] {
			return false
		}
	}
	return true
}

// merge is mergeDestinationRule with enhanced (exportTo-aware) merging, the
// default since Istio 1.24.
func (hr *hostRules) merge(dr *destRule, exportTo map[string]bool) {
	rules := &hr.specific
	if isWildcard(dr.host) {
		rules = &hr.wildcard
	}
	if *rules == nil {
		*rules = map[string][]*mergedRule{}
	}
	list := (*rules)[dr.host]
	appendSeparately := true
	for i, mdr := range list {
		switch {
		case sameSet(exportTo, mdr.exportTo):
			appendSeparately = false
		case len(mdr.exportTo) > 0 && supersetOf(exportTo, mdr.exportTo):
			appendSeparately = true
		default:
			appendSeparately = true
			continue
		}
		existing := mdr.first
		bothWithoutSelector := !dr.hasSelector && !existing.hasSelector
		bothWithSelector := dr.hasSelector && existing.hasSelector
		selectorsMatch := slices.Equal(existing.selector, dr.selector)
		if bothWithSelector && !selectorsMatch {
			appendSeparately = true
			continue
		}
		if bothWithoutSelector || (bothWithSelector && selectorsMatch) {
			appendSeparately = false
		}
		// Copy on write: the same mergedRule is never shared between indexes.
		merged := *mdr
		merged.subsets = slices.Clone(mdr.subsets)
		merged.from = append(slices.Clone(mdr.from), dr.namespace+"/"+dr.name)
		seen := make(map[string]bool, len(merged.subsets))
		for _, s := range merged.subsets {
			seen[s.GetName()] = true
		}
		for _, s := range dr.spec.GetSubsets() {
			if !seen[s.GetName()] {
				seen[s.GetName()] = true
				merged.subsets = append(merged.subsets, s)
			}
		}
		merged.indexSubsets()
		if merged.trafficPolicy == nil && dr.spec.GetTrafficPolicy() != nil {
			merged.trafficPolicy = dr.spec.GetTrafficPolicy()
		}
		list[i] = &merged
	}
	if appendSeparately {
		m := &mergedRule{
			first:         dr,
			exportTo:      exportTo,
			trafficPolicy: dr.spec.GetTrafficPolicy(),
			subsets:       slices.Clone(dr.spec.GetSubsets()),
			from:          []string{dr.namespace + "/" + dr.name},
		}
		m.indexSubsets()
		list = append(list, m)
	}
	(*rules)[dr.host] = list
}

// moreSpecific is host.MoreSpecific: non-wildcards first, then longer, then
// alphabetical.
func moreSpecific(a, b string) bool {
	aw, bw := isWildcard(a), isWildcard(b)
	if aw != bw {
		return !aw
	}
	if len(a) == len(b) {
		return a < b
	}
	return len(a) > len(b)
}

// lookup is MostSpecificHostMatch for a service host (never a wildcard).
func (hr *hostRules) lookup(h string) ([]*mergedRule, bool) {
	if l, ok := hr.specific[h]; ok {
		return l, true
	}
	for _, w := range hr.bySpecificity {
		if strings.HasSuffix(h, w[1:]) {
			return hr.wildcard[w], true
		}
	}
	return nil, false
}

// exportedTo filters rules exported to the client namespace.
func exportedTo(rules []*mergedRule, client string) []*mergedRule {
	visible := func(r *mergedRule) bool { return len(r.exportTo) == 0 || r.exportTo["*"] || r.exportTo[client] }
	i := 0
	for i < len(rules) && visible(rules[i]) {
		i++
	}
	if i == len(rules) {
		return rules // the common case: every rule is visible
	}
	out := slices.Clone(rules[:i])
	for _, r := range rules[i+1:] {
		if visible(r) {
			out = append(out, r)
		}
	}
	return out
}

// destinationRules is PushContext.destinationRule: the candidate rules a
// client in namespace client sees for svc.
func (e *env) destinationRules(client string, svc *service) []*mergedRule {
	l, _ := e.destinationRulesEnd(client, svc)
	return l
}

// lookupEnd is the index in which a client's rule lookup ended: the
// client's own namespace's, the service namespace's exported rules, or
// the root namespace's (also when it found none). A lookup reads the
// indexes up to its end only.
type lookupEnd uint8

const (
	endClient lookupEnd = iota
	endService
	endRoot
)

// reads reports whether a lookup by a client of namespace client for svc
// that ended at end read the rules of namespace ns.
func (end lookupEnd) reads(ns, client string, svc *service, root string) bool {
	switch end {
	case endClient:
		return ns == client
	case endService:
		return ns == client || ns == svc.namespace
	}
	return ns == client || ns == svc.namespace || ns == root
}

// destinationRulesEnd is destinationRules, and where the lookup ended.
func (e *env) destinationRulesEnd(client string, svc *service) ([]*mergedRule, lookupEnd) {
	root := e.st.mesh.RootNamespace
	if client != root {
		if idx := e.drIndex(client); idx != nil {
			if l, ok := idx.local.lookup(svc.host); ok {
				return l, endClient
			}
		}
	} else if idx := e.drIndex(root); idx != nil {
		if l, ok := idx.rootLocal.lookup(svc.host); ok {
			return l, endClient
		}
	}
	for i, ns := range []string{svc.namespace, root} {
		if idx := e.drIndex(ns); idx != nil {
			if l, ok := idx.exported.lookup(svc.host); ok {
				if out := exportedTo(l, client); len(out) > 0 {
					return out, endService + lookupEnd(i)
				}
			}
		}
	}
	return nil, endRoot
}

// destinationRule is SidecarScope.DestinationRule: a workloadSelector rule of
// the client's own namespace that matches the client's labels wins;
// otherwise the last rule without a selector.
func (e *env) destinationRule(v ClientView, svc *service) *mergedRule {
	dr, _ := e.destinationRuleEnd(v, svc)
	return dr
}

// destinationRuleEnd is destinationRule, and where its lookup ended.
func (e *env) destinationRuleEnd(v ClientView, svc *service) (*mergedRule, lookupEnd) {
	var catchAll *mergedRule
	rules, end := e.destinationRulesEnd(v.Namespace, svc)
	for _, r := range rules {
		if !r.first.hasSelector {
			catchAll = r
			continue
		}
		if r.first.namespace == v.Namespace && r.first.selector.matches(v.labels) {
			return r, end
		}
	}
	return catchAll, end
}
