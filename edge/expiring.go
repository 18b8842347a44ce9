package edge

import (
	"strings"
	"sync"
	"time"
)

// expiring is a map of answers kept until they expire, bounded by a
// count: a bound, not an LRU (when full it starts over, which costs the
// answers kept one more trip upstream each). The zero value is ready and
// bounded by maxExpiring.
type expiring[V any] struct {
	mu      sync.Mutex
	max     int // 0: maxExpiring
	entries map[string]expiringEntry[V]
}

type expiringEntry[V any] struct {
	v       V
	expires time.Time
}

// maxExpiring is the bound of an expiring map that sets none.
const maxExpiring = 4096

// put keeps v for key until expires.
func (c *expiring[V]) put(key string, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := c.max
	if limit <= 0 {
		limit = maxExpiring
	}
	if c.entries == nil || len(c.entries) >= limit {
		c.entries = make(map[string]expiringEntry[V])
	}
	c.entries[key] = expiringEntry[V]{v: v, expires: expires}
}

// get returns key's value and when it expires, while it has not.
func (c *expiring[V]) get(key string, now time.Time) (V, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		var zero V
		return zero, time.Time{}, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		var zero V
		return zero, time.Time{}, false
	}
	return e.v, e.expires, true
}

// len is how many entries are held, expired ones included.
func (c *expiring[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// del drops the entries of keys, and of every key under prefix when it is
// not empty, and says how many there were.
func (c *expiring[V]) del(keys []string, prefix string) int {
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
