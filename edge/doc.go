// Package edge is deepcast's CDN cache node: a caching reverse proxy for the
// /vod/ URL space with a ristretto memory tier and an optional disk tier,
// request coalescing, HTTP freshness with stale-while-revalidate and
// stale-if-error, health-checked upstreams with failover, sibling sharding
// by rendezvous hashing, segment prefetch, purge, stats and metrics. One
// program, two profiles: enter-deep and bring-home.
//
// It speaks only HTTP to its upstreams (an origin or a parent edge) and
// knows nothing of how content is made: it imports neither media nor origin.
package edge
