package benche2e

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// histogram is mtlsguard_decision_duration_seconds of one reach, summed
// over kinds and operations: cumulative counts by upper bound.
type histogram struct {
	count  float64
	bounds map[float64]float64 // le → requests answered within it
}

// latencies reads mtlsguard's own answer times, by reach label: how long
// it took from decoding a request to its response, without the API
// server's share.
func (m *mtlsguard) latencies() (map[string]histogram, error) {
	out := map[string]histogram{}
	err := m.samples("mtlsguard_decision_duration_seconds_bucket{", func(line string, v float64) error {
		reach, le := label(line, "reach"), label(line, "le")
		bound := math.Inf(1)
		if le != "+Inf" {
			var err error
			if bound, err = strconv.ParseFloat(le, 64); err != nil {
				return fmt.Errorf("mtlsguard's metrics: %q: %w", line, err)
			}
		}
		h := out[reach]
		if h.bounds == nil {
			h.bounds = map[float64]float64{}
		}
		h.bounds[bound] += v
		if math.IsInf(bound, 1) {
			h.count += v
		}
		out[reach] = h
		return nil
	})
	return out, err
}

// since returns the requests h counts that earlier did not.
func (h histogram) since(earlier histogram) histogram {
	d := histogram{count: h.count - earlier.count, bounds: map[float64]float64{}}
	for b, n := range h.bounds {
		d.bounds[b] = n - earlier.bounds[b]
	}
	return d
}

func (h histogram) add(o histogram) histogram {
	s := histogram{count: h.count + o.count, bounds: map[float64]float64{}}
	for b, n := range h.bounds {
		s.bounds[b] += n
	}
	for b, n := range o.bounds {
		s.bounds[b] += n
	}
	return s
}

// within returns the smallest bucket bound within which a fraction p of
// the requests were answered: an upper bound of the p-quantile.
func (h histogram) within(p float64) string {
	if h.count == 0 {
		return "—"
	}
	bounds := make([]float64, 0, len(h.bounds))
	for b := range h.bounds {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	for _, b := range bounds {
		if h.bounds[b] >= p*h.count {
			if math.IsInf(b, 1) {
				return "> " + dur(time.Duration(bounds[len(bounds)-2]*float64(time.Second)))
			}
			return "≤ " + dur(time.Duration(b*float64(time.Second)))
		}
	}
	return "—"
}
