package edge

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"
)

// CacheRule overrides, for the paths under Prefix, what upstreams say
// about caching: how long an object stays fresh, its stale windows, and
// which query parameters are part of its cache key. The longest matching
// prefix wins; a zero field keeps what the upstream (or the node's
// defaults) gives.
type CacheRule struct {
	Prefix string        // a path prefix under /vod/
	TTL    time.Duration // freshness, whatever Cache-Control says
	SWR    time.Duration // stale-while-revalidate
	SIE    time.Duration // stale-if-error
	// QueryKeys, when not nil, replace the node's QueryAllow for these
	// paths (an empty list: no query parameter is part of the key).
	QueryKeys []string
}

// checkRules validates rules and returns them longest prefix first.
func checkRules(rules []CacheRule) ([]CacheRule, error) {
	out := slices.Clone(rules)
	seen := map[string]bool{}
	for _, r := range out {
		if !strings.HasPrefix(r.Prefix, "/vod/") {
			return nil, fmt.Errorf("edge: cache rule %q: the prefix must start with /vod/", r.Prefix)
		}
		if seen[r.Prefix] {
			return nil, fmt.Errorf("edge: cache rule %q given twice", r.Prefix)
		}
		seen[r.Prefix] = true
		if r.TTL < 0 || r.SWR < 0 || r.SIE < 0 {
			return nil, fmt.Errorf("edge: cache rule %q: negative duration", r.Prefix)
		}
	}
	slices.SortStableFunc(out, func(a, b CacheRule) int { return len(b.Prefix) - len(a.Prefix) })
	return out, nil
}

// CheckCacheRules reports what SetCacheRules would refuse in rules.
func CheckCacheRules(rules []CacheRule) error {
	_, err := checkRules(rules)
	return err
}

// CheckUpstreams reports what SetUpstreamPool would refuse in pool.
func CheckUpstreams(pool []WeightedUpstream) error {
	if len(pool) == 0 {
		return errors.New("edge: an upstream pool needs at least one upstream")
	}
	for _, u := range pool {
		if !(u.Weight > 0) || math.IsInf(u.Weight, 0) {
			return fmt.Errorf("edge: upstream %s: weight %v, want a positive number", u.URL, u.Weight)
		}
		if _, err := parseUpstreamURL(u.URL); err != nil {
			return err
		}
	}
	return nil
}

// SetCacheRules replaces the node's cache rules at once (a configuration
// reload); an invalid list changes nothing. New rules apply to objects
// fetched from now on.
func (n *Node) SetCacheRules(rules []CacheRule) error {
	sorted, err := checkRules(rules)
	if err != nil {
		return err
	}
	n.rules.Store(&sorted)
	return nil
}

// rule is the cache rule for path, or nil.
func (n *Node) rule(path string) *CacheRule {
	rules := n.rules.Load()
	if rules == nil {
		return nil
	}
	for i := range *rules {
		if strings.HasPrefix(path, (*rules)[i].Prefix) {
			return &(*rules)[i]
		}
	}
	return nil
}

// queryKeys are the query parameters of path's cache key.
func (n *Node) queryKeys(path string) []string {
	if r := n.rule(path); r != nil && r.QueryKeys != nil {
		return r.QueryKeys
	}
	return n.cfg.QueryAllow
}

// applyRule overrides p by path's rule.
func (n *Node) applyRule(path string, p policy) policy {
	r := n.rule(path)
	if r == nil {
		return p
	}
	if r.TTL > 0 {
		p.TTL, p.hasTTL = r.TTL, true
	}
	if r.SWR > 0 {
		p.SWR = r.SWR
	}
	if r.SIE > 0 {
		p.SIE = r.SIE
	}
	return p
}

// WeightedUpstream is one upstream of a weighted pool.
type WeightedUpstream struct {
	URL    string
	Weight float64 // > 0; an upstream gets this share of the keys
}

// SetUpstreamPool makes the node's upstreams a weighted pool: each object
// goes to the healthy upstream that weighted rendezvous hashing picks for
// its key (so an upstream gets its weight's share of the keys, and each
// key one upstream, which keeps the upstreams' caches apart); the others
// follow in that order as fallbacks. An invalid pool changes nothing.
func (n *Node) SetUpstreamPool(pool []WeightedUpstream) error {
	if err := CheckUpstreams(pool); err != nil {
		return err
	}
	urls := make([]string, len(pool))
	weights := make([]float64, len(pool))
	for i, u := range pool {
		urls[i], weights[i] = u.URL, u.Weight
	}
	return n.pool.replaceWeighted(urls, weights)
}

// hrwScore is weighted rendezvous hashing's score of an upstream for a
// key: -weight / ln(h), h uniform in (0, 1) from the key and the URL.
func hrwScore(key, url string, weight float64) float64 {
	f := fnv.New64a()
	f.Write([]byte(key))
	f.Write([]byte{0})
	f.Write([]byte(url))
	// FNV alone barely mixes its last bytes into its top bits, and pool
	// URLs often differ only there (origin-1, origin-2; ports): the
	// finaliser spreads them, or one upstream takes most keys.
	h := (float64(mix64(f.Sum64())>>11) + 0.5) / (1 << 53)
	return -weight / math.Log(h)
}
