package edge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/cmcd"
	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// counters are the node's running totals, read by /api/stats and /metrics.
type counters struct {
	requests, hits, misses, stale, coalesced, revalidations, prefetches, errors atomic.Int64
	spooled                                                                     atomic.Int64 // large objects streamed through a file
	rangesAhead                                                                 atomic.Int64 // ranges of objects still coming, fetched apart (rangeAhead)
	headsForwarded                                                              atomic.Int64 // HEADs of objects not held, asked upstream as HEADs (head.go)
	slowStreamed                                                                atomic.Int64 // small objects streamed because they came slowly
	fillResumes                                                                 atomic.Int64 // streamed bodies resumed from an upstream after a cut
	digestMismatches                                                            atomic.Int64 // upstream bodies refused for their Repr-Digest
	memoryBytes, diskBytes, upstreamBytes                                       atomic.Int64 // served from each tier
}

// servedBytes is the body bytes answered from every tier so far.
func (c *counters) servedBytes() int64 {
	return c.memoryBytes.Load() + c.diskBytes.Load() + c.upstreamBytes.Load()
}

func (c *counters) addServed(tier string, n int) {
	switch tier {
	case "memory":
		c.memoryBytes.Add(int64(n))
	case "disk":
		c.diskBytes.Add(int64(n))
	default:
		c.upstreamBytes.Add(int64(n))
	}
}

// Stats is the JSON of GET /api/stats.
type Stats struct {
	Name          string `json:"name"`
	Profile       string `json:"profile"`
	Requests      int64  `json:"requests"`
	Hits          int64  `json:"hits"`
	Misses        int64  `json:"misses"`
	Stale         int64  `json:"stale"`
	Coalesced     int64  `json:"coalesced"`
	Revalidations int64  `json:"revalidations"`
	Prefetches    int64  `json:"prefetches"`
	Errors        int64  `json:"errors"`
	// DigestMismatches counts upstream bodies refused for their
	// Repr-Digest: a store or a parent holding damaged objects.
	DigestMismatches int64            `json:"digestMismatches"`
	HitRatio         float64          `json:"hitRatio"`
	BytesServed      map[string]int64 `json:"bytesServed"` // by tier: memory, disk, upstream
	Objects          map[string]int64 `json:"objects"`     // by tier
	CachedBytes      map[string]int64 `json:"cachedBytes"` // by tier
	Evictions        map[string]int64 `json:"evictions"`   // by tier
	Upstreams        []UpstreamHealth `json:"upstreams"`
	Siblings         []UpstreamHealth `json:"siblings,omitempty"`
	// Viewers are the playback sessions of the last minute, as the CMCD
	// of their requests reports them.
	Viewers cmcd.Summary `json:"viewers"`
	// Advice is what the node tells players through CMSD-Dynamic.
	Advice AdviceStats `json:"advice"`
}

// Stats returns the node's counters now.
func (n *Node) Stats() Stats {
	c := &n.stats
	s := Stats{Name: n.cfg.Name, Profile: n.cfg.Profile, Requests: c.requests.Load(), Hits: c.hits.Load(), Misses: c.misses.Load(),
		Stale: c.stale.Load(), Coalesced: c.coalesced.Load(), Revalidations: c.revalidations.Load(), Prefetches: c.prefetches.Load(),
		Errors: c.errors.Load(), DigestMismatches: c.digestMismatches.Load(),
		BytesServed: map[string]int64{"memory": c.memoryBytes.Load(), "disk": c.diskBytes.Load(), "upstream": c.upstreamBytes.Load()},
		Objects:     map[string]int64{"memory": int64(n.mem.count())},
		CachedBytes: map[string]int64{"memory": n.mem.bytes.Load()},
		Evictions:   map[string]int64{"memory": n.mem.evictions.Load()},
		Upstreams:   n.pool.health(),
		Viewers:     n.viewers.Summary(time.Now()),
		Advice:      n.advice().stats(),
	}
	if n.disk != nil {
		objs, bytes, ev := n.disk.stats()
		s.Objects["disk"], s.CachedBytes["disk"], s.Evictions["disk"] = int64(objs), bytes, ev
	}
	if n.siblings != nil {
		s.Siblings = n.siblings.health()
	}
	if served := s.Hits + s.Misses + s.Stale + s.Revalidations; served > 0 {
		s.HitRatio = float64(s.Hits+s.Stale) / float64(served)
	}
	return s
}

func (n *Node) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(n.observe, cors, httpsem.Ranges, httpsem.CloseAfterTransferCoding, middleware.GetHead)
	r.Get("/vod/*", n.serveObject)
	r.Head("/vod/*", n.serveObject)
	r.Post("/vod/{asset}/clearkey", n.relayLicence)
	r.Post("/api/purge", n.purge)
	r.Get("/api/stats", n.opsGuard(n.serveStats))
	r.Get("/healthz", n.healthz)
	r.Get("/readyz", n.readyz)
	r.Get("/metrics", n.opsGuard(n.serveMetrics))
	if n.cfg.Web != nil {
		// The pages are read-only (GetHead gives them HEAD): a POST to a
		// segment is then a 405 with Allow, not the pages' 404.
		r.Get("/*", n.cfg.Web.ServeHTTP)
	} else {
		r.Get("/", func(w http.ResponseWriter, r *http.Request) {
			plain(w, http.StatusOK, fmt.Sprintf("deepcast edge %s (%s): /vod/{asset}/manifest.mpd, /api/stats, /metrics", n.cfg.Name, n.cfg.Profile))
		})
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httpError(w, http.StatusNotFound, "not found") })
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", httpsem.Allow(r, req))
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	return r
}

// OpsHandler serves what an operator reads and does (/metrics, /api/stats,
// /api/purge, /healthz, /readyz) with no guard but purge's token: for a
// listener only operators reach (-admin-listen).
func (n *Node) OpsHandler() http.Handler {
	r := chi.NewRouter()
	r.Use(httpsem.CloseAfterTransferCoding)
	r.Get("/api/stats", n.serveStats)
	r.Get("/metrics", n.serveMetrics)
	r.Post("/api/purge", n.purge)
	r.Get("/healthz", n.healthz)
	r.Get("/readyz", n.readyz)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httpError(w, http.StatusNotFound, "not found") })
	return r
}

func (n *Node) serveStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.Stats())
}

func (n *Node) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	n.metrics.handler.ServeHTTP(w, r)
}

func (n *Node) healthz(w http.ResponseWriter, r *http.Request) { plain(w, http.StatusOK, "ok") }

func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	for _, u := range n.pool.health() {
		if u.Healthy {
			plain(w, http.StatusOK, "ok")
			return
		}
	}
	plain(w, http.StatusServiceUnavailable, "no healthy upstream")
}

// opsGuard applies Config.Ops to what reveals the node's upstreams and
// traffic (/metrics, /api/stats) on the viewers' listener.
func (n *Node) opsGuard(next http.HandlerFunc) http.HandlerFunc {
	return OpsAccess{Hidden: n.cfg.OpsHidden, Token: n.cfg.MetricsToken}.Guard(next)
}

// OpsAccess says who may read a node's metrics and stats on the listener
// viewers use: everyone (the zero value), holders of a bearer Token, or
// nobody (Hidden: they are on an operators' listener instead).
type OpsAccess struct {
	Hidden bool
	Token  string
}

// Guard wraps next with the access rule.
func (a OpsAccess) Guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case a.Hidden:
			httpError(w, http.StatusNotFound, "not served on this listener: see the node's -admin-listen address, or start it with -metrics-token")
			return
		case a.Token != "":
			token, ok := bearerToken(r.Header.Get("Authorization"))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="deepcast-metrics"`)
				httpError(w, http.StatusUnauthorized, "missing bearer token (-metrics-token)")
				return
			}
			if subtle.ConstantTimeCompare([]byte(token), []byte(a.Token)) != 1 {
				httpError(w, http.StatusForbidden, "wrong token")
				return
			}
		}
		next(w, r)
	}
}

// purgeRequest is the body of POST /api/purge.
type purgeRequest struct {
	Prefix string   `json:"prefix"`
	Keys   []string `json:"keys"`
}

func (n *Node) purge(w http.ResponseWriter, r *http.Request) {
	if n.cfg.AdminToken == "" {
		httpError(w, http.StatusForbidden, "purge is disabled: start the edge with -admin-token")
		return
	}
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="deepcast"`)
		httpError(w, http.StatusUnauthorized, "missing bearer token")
		return
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(n.cfg.AdminToken)) != 1 {
		httpError(w, http.StatusForbidden, "wrong token")
		return
	}
	var req purgeRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "body must be JSON: {\"prefix\": \"/vod/NAME/\"} or {\"keys\": [...]}")
		return
	}
	if req.Prefix == "" && len(req.Keys) == 0 || req.Prefix != "" && !strings.HasPrefix(req.Prefix, "/vod/") {
		httpError(w, http.StatusBadRequest, "give a prefix under /vod/ or a list of keys")
		return
	}
	keys := req.Keys
	if req.Prefix != "" {
		keys = append(keys, n.mem.keysWithPrefix(req.Prefix)...)
		if n.disk != nil {
			keys = append(keys, n.disk.keysWithPrefix(req.Prefix)...)
		}
	}
	seen := map[string]bool{}
	purged := 0
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		held := n.mem.del(k)
		if n.disk != nil && n.disk.del(k) {
			held = true
		}
		n.prefetched.forget(k)
		if held {
			purged++ // a key that was never cached is not reported purged
		}
	}
	purged += n.negative.del(req.Keys, req.Prefix)
	purged += n.heads.del(req.Keys, req.Prefix)
	n.log.Info("purged", "prefix", req.Prefix, "keys", purged)
	writeJSON(w, http.StatusOK, map[string]int{"purged": purged})
}

// bearerToken returns the token of an Authorization header value of the
// Bearer scheme, whose name is case-insensitive (RFC 9110, 11.1).
func bearerToken(auth string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(auth), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// httpError writes a short error that no cache keeps.
func httpError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Del("ETag")
	h.Del("Last-Modified")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	plain(w, code, msg)
}

var (
	hdrAnyOrigin = []string{"*"}
	hdrExposed   = []string{"Content-Length, Content-Range, ETag, Last-Modified, Age, Cache-Status, Via, X-Deepcast-Last-Segment, X-Deepcast-Auth, CTA-Common-Access-Token, Repr-Digest, CMSD-Dynamic"}
)

// cors lets dash.js on another origin play and read Cache-Status.
var cors = httpsem.CORS("GET, HEAD, POST, OPTIONS", hdrExposed[0])

// nodeMetrics are the node's Prometheus series; most read the counters.
type nodeMetrics struct {
	reg             *prometheus.Registry
	handler         http.Handler
	upstreamLatency *prometheus.HistogramVec
	latency         prometheus.Histogram // client requests, both paths
	requests        *prometheus.CounterVec
	resolved        sync.Map // route/method/code -> prometheus.Counter
	auth            *authMetrics
	viewers         *viewerMetrics
}

// countRequest counts a request, resolving its series once per label set.
func (m *nodeMetrics) countRequest(route, method string, code int) {
	method = httpsem.MethodLabel(method)
	key := route + " " + method + " " + strconv.Itoa(code)
	c, ok := m.resolved.Load(key)
	if !ok {
		c, _ = m.resolved.LoadOrStore(key, m.requests.WithLabelValues(route, method, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
}

// RegisterMetrics adds collectors to the node's /metrics, for what serves
// it (cmd/deepcast's HTTP front reports its connections there).
func (n *Node) RegisterMetrics(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := n.metrics.reg.Register(c); err != nil {
			return fmt.Errorf("edge metrics: %w", err)
		}
	}
	return nil
}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{reg: prometheus.NewRegistry()}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	m.upstreamLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "deepcast_edge_upstream_request_duration_seconds", Help: "Upstream fetch latency to response headers, by upstream.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"upstream"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "deepcast_edge_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "deepcast_edge_http_request_duration_seconds", Help: "Time to answer a client request, to the last byte written.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	c := &n.stats
	if n.cfg.Auth != nil {
		m.auth = newAuthMetrics(m.reg)
	}
	m.viewers = newViewerMetrics(m.reg, n.viewers)
	registerAdviceMetrics(m.reg, n)
	m.reg.MustRegister(m.upstreamLatency, m.requests, m.latency,
		counter("deepcast_edge_cache_hits_total", "Requests served fresh from cache.", &c.hits),
		counter("deepcast_edge_cache_misses_total", "Requests that went upstream for an object not in cache.", &c.misses),
		counter("deepcast_edge_cache_stale_total", "Requests served stale (while revalidating or on upstream error).", &c.stale),
		counter("deepcast_edge_cache_revalidations_total", "Stale objects revalidated upstream in the request path.", &c.revalidations),
		counter("deepcast_edge_coalesced_total", "Requests that waited for another request's upstream fetch.", &c.coalesced),
		counter("deepcast_edge_prefetch_total", "Segments prefetched.", &c.prefetches),
		counter("deepcast_edge_spooled_total", "Large objects streamed to clients through a spool file instead of memory.", &c.spooled),
		counter("deepcast_edge_ranges_ahead_total", "Ranges of objects still coming from upstream, too far ahead of the fill to wait for it: fetched apart from an upstream as ranges, not kept.", &c.rangesAhead),
		counter("deepcast_edge_heads_forwarded_total", "HEADs of objects not held here, asked upstream as HEADs rather than fetching the object.", &c.headsForwarded),
		counter("deepcast_edge_slow_streamed_total", "Misses small enough for memory whose body was still coming after -stream-after: sent to clients from memory as it came, then kept there.", &c.slowStreamed),
		counter("deepcast_edge_fill_resumes_total", "Streamed bodies cut off upstream and resumed from where they stopped with a ranged request.", &c.fillResumes),
		counter("deepcast_edge_upstream_errors_total", "Requests whose upstream fetch failed.", &c.errors),
		counter("deepcast_edge_digest_mismatches_total", "Upstream bodies that did not match their Repr-Digest: refused, never cached.", &c.digestMismatches),
		counter("deepcast_edge_evictions_total", "Objects evicted from the memory tier.", &n.mem.evictions),
		counter("deepcast_edge_client_misses_refused_total", "Misses answered 429 because their client passed ClientMissRate (-client-miss-rate).", &n.missesRefused),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deepcast_edge_memory_objects", Help: "Objects in the memory tier."},
			func() float64 { return float64(n.mem.count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deepcast_edge_memory_bytes", Help: "Bytes in the memory tier."},
			func() float64 { return float64(n.mem.bytes.Load()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	served := prometheus.NewDesc("deepcast_edge_served_bytes_total", "Response body bytes served, by the tier they came from.", []string{"tier"}, nil)
	up := prometheus.NewDesc("deepcast_edge_upstream_up", "Whether an upstream passes its health checks.", []string{"upstream"}, nil)
	diskBytes := prometheus.NewDesc("deepcast_edge_disk_bytes", "Bytes in the disk tier.", nil, nil)
	diskLimit := prometheus.NewDesc("deepcast_edge_disk_limit_bytes", "The disk tier's size (-disk-size).", nil, nil)
	diskErrors := prometheus.NewDesc("deepcast_edge_disk_write_errors_total", "Objects the disk tier failed to write (a full or failing file system).", nil, nil)
	m.reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(served, prometheus.CounterValue, float64(c.memoryBytes.Load()), "memory")
		ch <- prometheus.MustNewConstMetric(served, prometheus.CounterValue, float64(c.diskBytes.Load()), "disk")
		ch <- prometheus.MustNewConstMetric(served, prometheus.CounterValue, float64(c.upstreamBytes.Load()), "upstream")
		if n.disk != nil {
			ch <- prometheus.MustNewConstMetric(diskBytes, prometheus.GaugeValue, float64(n.disk.used()))
			ch <- prometheus.MustNewConstMetric(diskLimit, prometheus.GaugeValue, float64(n.disk.limit))
			ch <- prometheus.MustNewConstMetric(diskErrors, prometheus.CounterValue, float64(n.disk.writeErrors.Load()))
		}
		for _, u := range n.pool.health() {
			v := 0.0
			if u.Healthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(up, prometheus.GaugeValue, v, u.URL)
		}
	}, served, up, diskBytes, diskLimit, diskErrors))
	return m
}

// funcCollector adapts a function to prometheus.Collector.
type funcCollector struct {
	collect func(chan<- prometheus.Metric)
	descs   []*prometheus.Desc
}

func collectorFunc(f func(chan<- prometheus.Metric), descs ...*prometheus.Desc) prometheus.Collector {
	return &funcCollector{collect: f, descs: descs}
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// observe counts requests by route pattern and writes the access log.
func (n *Node) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &accesslog.Recorder{ResponseWriter: w}
		var info *accessInfo
		if n.cfg.AccessLog != nil {
			info = &accessInfo{}
			r = r.WithContext(context.WithValue(r.Context(), accessKey{}, info))
		}
		next.ServeHTTP(rec, r)
		elapsed := time.Since(start)
		n.metrics.latency.Observe(elapsed.Seconds())
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if rec.Status == 0 {
			rec.Status = http.StatusOK
		}
		n.metrics.countRequest(route, r.Method, rec.Status)
		var viewer *cmcd.Data
		if route == routeObjects {
			viewer = n.noteViewer(r.URL.RawQuery, r.Header, r.Header.Get(loopHeader), r.RemoteAddr, r.URL.EscapedPath(), rec.Status)
		}
		if info != nil {
			n.cfg.AccessLog.Log(accesslog.Record{Remote: r.RemoteAddr, Method: r.Method, Path: r.URL.EscapedPath(), Status: rec.Status,
				Bytes: rec.Bytes, Duration: elapsed, Cache: info.cache, Tier: info.tier, Upstream: info.upstream, CMCD: viewer})
		}
	})
}
