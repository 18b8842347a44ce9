package edge

import (
	"strings"
	"sync"
	"time"
)

// A negative entry keeps an upstream's 404 or 410 for as long as its
// Cache-Control says (RFC 9111 lets a shared cache store them), at most
// maxNegativeTTL. Without it every request for a missing object went
// upstream: the same missing segment asked for 19 000 times a second at an
// edge reached the origin 900 times a second, coalescing alone merging the
// concurrent ones.
type negativeCache struct {
	mu      sync.Mutex
	entries map[string]negativeEntry
}

type negativeEntry struct {
	pass    *passResponse // stored set
	expires time.Time
}

const (
	// maxNegative bounds the entries: a bound, not an LRU (misses of many
	// distinct missing keys gain nothing from it anyway).
	maxNegative = 4096
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxNegative {
		c.entries = make(map[string]negativeEntry)
	}
	kept := *pass
	kept.stored = now
	c.entries[key] = negativeEntry{pass: &kept, expires: now.Add(min(p.TTL, maxNegativeTTL))}
}

// get returns key's entry while it is fresh.
func (c *negativeCache) get(key string, now time.Time) (negativeEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return negativeEntry{}, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return negativeEntry{}, false
	}
	return e, true
}

// del drops the entries of keys, and of every key under prefix when it is
// not empty, and says how many there were.
func (c *negativeCache) del(keys []string, prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := c.entries[k]; ok {
			delete(c.entries, k)
			n++
		}
	}
	if prefix != "" {
		for k := range c.entries {
			if strings.HasPrefix(k, prefix) {
				delete(c.entries, k)
				n++
			}
		}
	}
	return n
}
