package routing

import "net/netip"

// Nearest sends a viewer to an enter-deep edge whose coverage zone holds the
// viewer's address (the least loaded, if several), as embedded caches in an
// ISP serve only their own subscribers; everyone else goes to the least
// loaded bring-home edge.
type Nearest struct{}

// Name implements Strategy.
func (Nearest) Name() string { return "nearest" }

// Rank implements Strategy.
func (Nearest) Rank(client netip.Addr, healthy []*EdgeState) []*EdgeState {
	var zone, home []*EdgeState
	for _, e := range healthy {
		switch {
		case e.Profile == EnterDeep && client.IsValid() && e.covers(client):
			zone = append(zone, e)
		case e.Profile == BringHome:
			home = append(home, e)
		}
	}
	if len(zone) > 1 {
		zone = byLoad(zone)
	}
	if len(home) > 1 {
		home = byLoad(home)
	}
	return append(zone, home...)
}
