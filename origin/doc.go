// Package origin is the HTTP server over a deepcast library: manifests, init
// and media segments with the headers players and caches need (ETag from the
// content checksum, ranges, conditional requests, CORS, Cache-Control per
// route), the asset catalogue, ingest jobs, health and Prometheus metrics.
// It knows nothing of caching: edges in front of it do that.
package origin
