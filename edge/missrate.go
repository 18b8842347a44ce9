package edge

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// missLimiter bounds the upstream fetches each client may cause: a token
// bucket per client, refilled at rate a second up to burst. A hit costs a
// node almost nothing, but every miss is a trip upstream and pushes a
// viewer's object out of the cache; one client walking through every
// segment of every rendition of the library (or a crawler) would pass the
// whole catalogue through the node and load the tiers above it. A viewer
// causes about one miss per segment duration per rendition it plays, far
// below any sensible rate.
//
// A client is its IP address; an IPv6 client is its /64, which one host
// typically has to itself and can draw new addresses from at will.
type missLimiter struct {
	rate, burst float64

	mu      sync.Mutex
	clients map[netip.Prefix]*missBucket
}

// missBucket is one client's tokens as of last.
type missBucket struct {
	tokens float64
	last   time.Time
}

// maxMissClients bounds the clients a missLimiter tracks. Past it, the
// buckets that have refilled (equal to none) are dropped; if every one is
// still in use, new clients go unlimited rather than grow the map: a
// flood from that many addresses is not one a per-client bound stops.
const maxMissClients = 1 << 16

// missBurstSeconds is how many seconds of rate a client may spend at
// once: a session's start (manifest, init segments, the first segments of
// a rendition) or a seek is a burst of misses.
const missBurstSeconds = 10

// newMissLimiter limits each client to rate misses a second (nil for
// none when rate is not above zero).
func newMissLimiter(rate float64) *missLimiter {
	if !(rate > 0) {
		return nil
	}
	return &missLimiter{rate: rate, burst: math.Max(1, rate*missBurstSeconds), clients: map[netip.Prefix]*missBucket{}}
}

// clientPrefix is the client a remote address ("ip:port" or "ip") counts
// as; false for an address it cannot read (not limited).
func clientPrefix(remote string) (netip.Prefix, bool) {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(remote); err == nil {
		addr = a
	} else {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.WithZone("").Prefix(bits)
	return p, err == nil
}

// allow takes a token for a miss by remote at now; when there is none it
// reports false and how long until there is one.
func (l *missLimiter) allow(remote string, now time.Time) (bool, time.Duration) {
	client, ok := clientPrefix(remote)
	if !ok {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.clients[client]
	if b == nil {
		if len(l.clients) >= maxMissClients && !l.sweepLocked(now) {
			return true, 0
		}
		b = &missBucket{tokens: l.burst, last: now}
		l.clients[client] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// sweepLocked drops the buckets that have refilled by now and reports
// whether that made room.
func (l *missLimiter) sweepLocked(now time.Time) bool {
	for c, b := range l.clients {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.clients, c)
		}
	}
	return len(l.clients) < maxMissClients
}
