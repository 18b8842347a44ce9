package routing

import (
	"net/netip"
	"sync"
)

// RoundRobin is smooth weighted round robin: each edge gets viewers in
// proportion to its weight, interleaved rather than in bursts.
type RoundRobin struct {
	mu      sync.Mutex
	current map[string]int
}

// Name implements Strategy.
func (*RoundRobin) Name() string { return "round-robin" }

// Rank implements Strategy.
func (r *RoundRobin) Rank(_ netip.Addr, healthy []*EdgeState) []*EdgeState {
	if len(healthy) == 0 {
		return nil
	}
	r.mu.Lock()
	if r.current == nil {
		r.current = map[string]int{}
	}
	total := 0
	var best *EdgeState
	for _, e := range healthy {
		r.current[e.Name] += e.Weight
		total += e.Weight
		if best == nil || r.current[e.Name] > r.current[best.Name] {
			best = e
		}
	}
	r.current[best.Name] -= total
	r.mu.Unlock()
	return withFirst(best, byLoad(healthy))
}
