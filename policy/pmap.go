package policy

import "github.com/benbjohnson/immutable"

// pmap is a persistent map from names to V: set and del return a new map
// and leave the receiver as it was, sharing all but the changed path. It is
// what lets a State be copied in O(1) and changed by one event while
// decisions keep reading the copy they started with.
type pmap[V any] struct{ m *immutable.Map[string, V] }

func newPmap[V any]() pmap[V] { return pmap[V]{immutable.NewMap[string, V](nameHasher{})} }

// get returns the value of k, or V's zero value.
func (p pmap[V]) get(k string) V {
	v, _ := p.m.Get(k)
	return v
}

func (p pmap[V]) set(k string, v V) pmap[V] { return pmap[V]{p.m.Set(k, v)} }

func (p pmap[V]) del(k string) pmap[V] { return pmap[V]{p.m.Delete(k)} }

func (p pmap[V]) len() int { return p.m.Len() }

// each calls fn for every entry, in no particular order, until fn returns
// false.
func (p pmap[V]) each(fn func(string, V) bool) {
	it := p.m.Iterator()
	for !it.Done() {
		k, v, _ := it.Next()
		if !fn(k, v) {
			return
		}
	}
}

// pmapOf builds a pmap from a plain map.
func pmapOf[V any](m map[string]V) pmap[V] {
	b := immutable.NewMapBuilder[string, V](nameHasher{})
	for k, v := range m {
		b.Set(k, v)
	}
	return pmap[V]{b.Map()}
}

// nameHasher is FNV-1a: names of Kubernetes objects share long prefixes,
// which the library's default multiplicative hash spreads poorly.
type nameHasher struct{}

func (nameHasher) Hash(k string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(k); i++ {
		h ^= uint32(k[i])
		h *= 16777619
	}
	return h
}

func (nameHasher) Equal(a, b string) bool { return a == b }
