package edge

import "time"

// A negative entry keeps an upstream's 404 or 410 for as long as its
// Cache-Control says (RFC 9111 lets a shared cache store them), at most
// maxNegativeTTL. Without it every request for a missing object went
// upstream: the same missing segment asked for 19 000 times a second at an
// edge reached the origin 900 times a second, coalescing alone merging the
// concurrent ones.
type negativeCache struct{ kept expiring[*passResponse] }

type negativeEntry struct {
	pass    *passResponse // stored set
	expires time.Time
}

const (
	// maxNegative bounds the entries (misses of many distinct missing
	// keys gain nothing from an LRU anyway).
	maxNegative = maxExpiring
	// maxNegativeBody bounds the body of a kept answer (a 404's is a line
	// of text), so the entries hold at most 16 MiB beside -mem.
	maxNegativeBody = 4 << 10
	// maxNegativeTTL bounds how long a missing object stays missing here,
	// whatever the upstream said: it may be published any time.
	maxNegativeTTL = time.Minute
)

// negativeStatus reports the statuses kept: a missing object.
func negativeStatus(code int) bool { return code == 404 || code == 410 }

// put keeps pass for key if its header lets a shared cache store it with an
// explicit freshness lifetime.
func (c *negativeCache) put(key string, pass *passResponse, now time.Time) {
	p := parsePolicy(pass.header, now)
	if !negativeStatus(pass.status) || len(pass.body) > maxNegativeBody || !p.cacheable() || !p.hasTTL || p.NoCache || p.TTL <= 0 {
		return
	}
	kept := *pass
	kept.stored = now
	c.kept.put(key, &kept, now.Add(min(p.TTL, maxNegativeTTL)))
}

// get returns key's entry while it is fresh.
func (c *negativeCache) get(key string, now time.Time) (negativeEntry, bool) {
	pass, expires, ok := c.kept.get(key, now)
	return negativeEntry{pass: pass, expires: expires}, ok
}

// del drops the entries of keys, and of every key under prefix when it is
// not empty, and says how many there were.
func (c *negativeCache) del(keys []string, prefix string) int { return c.kept.del(keys, prefix) }
