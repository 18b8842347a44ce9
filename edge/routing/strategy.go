package routing

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Strategy picks the edges for a viewer, best first, among the healthy ones.
// Strategies hold their own state (the round-robin position) and are safe
// for concurrent use.
type Strategy interface {
	Name() string
	Rank(client netip.Addr, healthy []*EdgeState) []*EdgeState
}

// Strategies lists the strategy names.
var Strategies = []string{"nearest", "round-robin", "least-load", "ip-hash"}

// NewStrategy returns a strategy by name.
func NewStrategy(name string) (Strategy, error) {
	switch name {
	case "nearest":
		return Nearest{}, nil
	case "round-robin":
		return &RoundRobin{}, nil
	case "least-load":
		return LeastLoad{}, nil
	case "ip-hash":
		return IPHash{}, nil
	}
	return nil, fmt.Errorf("unknown strategy %q (have %s)", name, strings.Join(Strategies, ", "))
}

// byLoad orders edges by load per weight, then by name for stability.
func byLoad(edges []*EdgeState) []*EdgeState {
	out := slices.Clone(edges)
	slices.SortStableFunc(out, func(a, b *EdgeState) int {
		la, lb := a.Load(), b.Load()
		switch {
		case la < lb:
			return -1
		case la > lb:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// withFirst puts first ahead of the rest, keeping their order.
func withFirst(first *EdgeState, rest []*EdgeState) []*EdgeState {
	out := []*EdgeState{first}
	for _, e := range rest {
		if e != first {
			out = append(out, e)
		}
	}
	return out
}
