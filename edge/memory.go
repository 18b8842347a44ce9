package edge

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
)

// memoryTier is the RAM tier: ristretto with cost = bytes, plus an index of
// the keys it holds (ristretto cannot list them) for purge by prefix and
// the object count.
type memoryTier struct {
	cache     *ristretto.Cache[string, *object]
	mu        sync.Mutex
	keys      map[string]int64 // key -> cost
	bytes     atomic.Int64
	evictions atomic.Int64
	// gone, when set, hears of every key that leaves the tier (evicted,
	// refused or deleted), so what is remembered about it can go too.
	gone func(key string)
}

func newMemoryTier(maxBytes int64) (*memoryTier, error) {
	m := &memoryTier{keys: map[string]int64{}}
	// About one counter per 10 KiB object, at least 10,000 (ristretto advises
	// ten times the number of items the cache holds when full).
	counters := max(10_000, maxBytes/(10<<10)*10)
	c, err := ristretto.NewCache(&ristretto.Config[string, *object]{
		NumCounters:        counters,
		MaxCost:            maxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true, // cost() counts the bookkeeping itself
		OnEvict: func(it *ristretto.Item[*object]) {
			m.evictions.Add(1)
			m.forget(it.Value)
		},
		OnReject: func(it *ristretto.Item[*object]) { m.forget(it.Value) },
	})
	if err != nil {
		return nil, fmt.Errorf("memory tier: %w", err)
	}
	m.cache = c
	return m, nil
}

func (m *memoryTier) forget(o *object) {
	if o == nil {
		return
	}
	m.mu.Lock()
	if c, ok := m.keys[o.Key]; ok && c == o.cost() {
		delete(m.keys, o.Key)
		m.bytes.Add(-c)
	}
	m.mu.Unlock()
	if m.gone != nil {
		m.gone(o.Key)
	}
}

func (m *memoryTier) get(key string) (*object, bool) { return m.cache.Get(key) }

// put stores o; ristretto may refuse it (admission policy or size).
func (m *memoryTier) put(o *object) {
	c := o.cost()
	if c > m.cache.MaxCost()/2 {
		return // one object must not flush the tier
	}
	m.mu.Lock()
	if old, ok := m.keys[o.Key]; ok {
		m.bytes.Add(-old)
	}
	m.keys[o.Key] = c
	m.bytes.Add(c)
	m.mu.Unlock()
	if !m.cache.Set(o.Key, o, c) {
		m.forget(o)
		return
	}
	m.cache.Wait() // visible to the next Get: no second fetch for this key
}

// del removes key and reports whether the tier held it.
func (m *memoryTier) del(key string) bool {
	m.cache.Del(key)
	m.mu.Lock()
	c, ok := m.keys[key]
	if ok {
		delete(m.keys, key)
		m.bytes.Add(-c)
	}
	m.mu.Unlock()
	if m.gone != nil {
		m.gone(key)
	}
	return ok
}

// keysWithPrefix lists the cached keys under prefix.
func (m *memoryTier) keysWithPrefix(prefix string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func (m *memoryTier) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

func (m *memoryTier) close() { m.cache.Close() }
