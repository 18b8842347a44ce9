package routing

import "net/netip"

// LeastLoad sends each viewer to the edge with the fewest requests per
// second per unit of weight, as polled from the edges' /api/stats.
type LeastLoad struct{}

// Name implements Strategy.
func (LeastLoad) Name() string { return "least-load" }

// Rank implements Strategy.
func (LeastLoad) Rank(_ netip.Addr, healthy []*EdgeState) []*EdgeState { return byLoad(healthy) }
