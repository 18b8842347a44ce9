package routing

import (
	"hash/fnv"
	"math"
	"net/netip"
	"slices"
)

// IPHash maps each viewer address to an edge by weighted rendezvous hashing:
// a viewer sticks to one edge, edges get viewers in proportion to their
// weights, and removing one of N edges moves only the viewers it had (about
// 1/N of them).
type IPHash struct{}

// Name implements Strategy.
func (IPHash) Name() string { return "ip-hash" }

// Rank implements Strategy: edges by decreasing score for this viewer.
func (IPHash) Rank(client netip.Addr, healthy []*EdgeState) []*EdgeState {
	out := slices.Clone(healthy)
	key := client.AsSlice()
	scores := make(map[*EdgeState]float64, len(out))
	for _, e := range out {
		scores[e] = score(key, e.Name, e.Weight)
	}
	slices.SortStableFunc(out, func(a, b *EdgeState) int {
		switch sa, sb := scores[a], scores[b]; {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	return out
}

// score is the weighted rendezvous score -w/ln(u), u uniform in (0,1) from
// the hash of (edge, client): the edge with the highest score wins, each
// with probability proportional to its weight.
func score(client []byte, edge string, weight int) float64 {
	h := fnv.New64a()
	h.Write([]byte(edge))
	h.Write([]byte{0})
	h.Write(client)
	x := h.Sum64()
	// Finalise: FNV of similar inputs is not uniform enough on its own.
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	u := (float64(x>>11) + 0.5) / (1 << 53)
	return -float64(weight) / math.Log(u)
}
