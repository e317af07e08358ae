package meshgen

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
)

// Rand returns a random source that takes its numbers from data, 8 bytes
// a number, so that a fuzzer's change to a byte changes one choice; once
// data runs out it continues from a generator seeded by data, so that short
// inputs still make varied meshes. The same data gives the same numbers.
func Rand(data []byte) *rand.Rand {
	h := fnv.New64a()
	h.Write(data)
	return rand.New(&bytesSource{data: data, rest: rand.NewPCG(h.Sum64(), uint64(len(data)))})
}

type bytesSource struct {
	data []byte
	rest *rand.PCG
}

func (s *bytesSource) Uint64() uint64 {
	if len(s.data) == 0 {
		return s.rest.Uint64()
	}
	var b [8]byte
	n := copy(b[:], s.data)
	s.data = s.data[n:]
	return binary.LittleEndian.Uint64(b[:])
}
