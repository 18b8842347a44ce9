package main

import (
	"fmt"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deepcast/deepcast/edge"
)

// An edge's -config takes, beside its flags, what flags cannot say well:
//
//	cache-rules:            # per path prefix, longest first wins
//	  - prefix: /vod/news-
//	    ttl: 10s            # fresh this long, whatever Cache-Control says
//	    stale-while-revalidate: 5s
//	    stale-if-error: 10m
//	    query-keys: [lang]  # the query parameters of the cache key here
//	upstream-pool:          # instead of upstream: a weighted pool
//	  - {url: http://origin-1:8080, weight: 3}
//	  - {url: http://origin-2:8080, weight: 1}

// edgeExtras reads an edge's cache-rules and upstream-pool from cf (nil
// when absent), with the file's line in every error.
func edgeExtras(cf *configFile) (rules []edge.CacheRule, pool []edge.WeightedUpstream, err error) {
	if n := cf.extras["cache-rules"]; n != nil {
		if rules, err = cacheRules(cf.path, n); err != nil {
			return nil, nil, err
		}
		if err := edge.CheckCacheRules(rules); err != nil {
			return nil, nil, fmt.Errorf("config %s: line %d: %w", cf.path, n.Line, err)
		}
	}
	if n := cf.extras["upstream-pool"]; n != nil {
		if pool, err = upstreamPool(cf.path, n); err != nil {
			return nil, nil, err
		}
		if _, ok := cf.values["upstream"]; ok {
			return nil, nil, fmt.Errorf("config %s: line %d: give upstream or upstream-pool, not both", cf.path, n.Line)
		}
	}
	return rules, pool, nil
}

// mappings walks a list of mappings, calling each(key, value) per entry
// field; an entry that is not a mapping is an error.
func mappings(path, what string, n *yaml.Node, each func(i int, k, v *yaml.Node) error) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("config %s: line %d: %s: want a list", path, n.Line, what)
	}
	for i, e := range n.Content {
		if e.Kind != yaml.MappingNode {
			return fmt.Errorf("config %s: line %d: %s: each entry is a mapping", path, e.Line, what)
		}
		for j := 0; j+1 < len(e.Content); j += 2 {
			if err := each(i, e.Content[j], e.Content[j+1]); err != nil {
				return fmt.Errorf("config %s: line %d: %s: %w", path, e.Content[j].Line, what, err)
			}
		}
	}
	return nil
}

func cacheRules(path string, n *yaml.Node) ([]edge.CacheRule, error) {
	rules := make([]edge.CacheRule, len(n.Content))
	dur := func(v *yaml.Node) (time.Duration, error) {
		d, err := time.ParseDuration(v.Value)
		if err != nil || v.Kind != yaml.ScalarNode {
			return 0, fmt.Errorf("%q is not a duration such as 10s", v.Value)
		}
		return d, nil
	}
	err := mappings(path, "cache-rules", n, func(i int, k, v *yaml.Node) error {
		r := &rules[i]
		var err error
		switch k.Value {
		case "prefix":
			r.Prefix = v.Value
		case "ttl":
			r.TTL, err = dur(v)
		case "stale-while-revalidate":
			r.SWR, err = dur(v)
		case "stale-if-error":
			r.SIE, err = dur(v)
		case "query-keys":
			if v.Kind != yaml.SequenceNode {
				return fmt.Errorf("query-keys: want a list")
			}
			r.QueryKeys = []string{}
			for _, q := range v.Content {
				r.QueryKeys = append(r.QueryKeys, q.Value)
			}
		default:
			return fmt.Errorf("unknown key %q (prefix, ttl, stale-while-revalidate, stale-if-error, query-keys)", k.Value)
		}
		return err
	})
	return rules, err
}

func upstreamPool(path string, n *yaml.Node) ([]edge.WeightedUpstream, error) {
	pool := make([]edge.WeightedUpstream, len(n.Content))
	for i := range pool {
		pool[i].Weight = 1
	}
	err := mappings(path, "upstream-pool", n, func(i int, k, v *yaml.Node) error {
		switch k.Value {
		case "url":
			pool[i].URL = v.Value
		case "weight":
			w, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || !(w > 0) {
				return fmt.Errorf("weight %q: want a positive number", v.Value)
			}
			pool[i].Weight = w
		default:
			return fmt.Errorf("unknown key %q (url, weight)", k.Value)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := edge.CheckUpstreams(pool); err != nil {
		return nil, fmt.Errorf("config %s: line %d: %w", path, n.Line, err)
	}
	return pool, nil
}
