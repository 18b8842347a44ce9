package routing

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/auth"
	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media"
)

// Config configures a Router.
type Config struct {
	Edges    []*Edge
	Strategy string
	Zone     string        // DNS zone, e.g. "cdn.deepcast.test."
	Check    time.Duration // health check interval
	// Self is the router's own base URL, for steering manifests.
	Self string
	// StatsToken is the bearer token the router sends for the edges'
	// /api/stats (their -metrics-token), read for load; health is
	// /healthz alone, so edges that keep their stats private stay up.
	StatsToken string
	// EdgeTLS verifies https:// edges (for health checks and the MPDs
	// the router rewrites); the system's roots when nil.
	EdgeTLS *tls.Config
	Logger  *slog.Logger
	// AccessLog, when set, logs every HTTP request (the edge chosen as upstream).
	AccessLog *accesslog.Logger
	// Tokens, when set, makes the router hand viewers Common Access
	// Tokens: a 302 for a manifest gets one for the asset's folder in
	// its Location (?cat=…), which the edge turns into a session cookie.
	Tokens *TokenIssuer
}

// TokenIssuer is how the router signs viewers' tokens: the router is
// where a viewer is sent to an edge, so it is where an entitlement
// becomes a token.
type TokenIssuer struct {
	Key      *auth.Key
	TTL      time.Duration
	Renew    time.Duration // catr: renew in the token's last Renew; none when 0
	Issuer   string
	Audience []string
}

// mint makes a token for an asset's folder.
func (t *TokenIssuer) mint(asset string) (string, error) {
	return auth.Mint(t.Key, auth.TokenSpec{Issuer: t.Issuer, Audience: t.Audience, Expires: time.Now().Add(t.TTL),
		PathPrefix: "/vod/" + asset + "/", Renew: t.Renew})
}

// Router answers viewers with an edge: by HTTP (302, BaseURL, steering) and
// by DNS (see DNS).
type Router struct {
	cfg      Config
	log      *slog.Logger
	Monitor  *Monitor
	strategy Strategy
	metrics  *routerMetrics
	client   *http.Client
	handler  http.Handler
	zoneSOA  *dns.SOA // immutable, shared by every answer
}

// SteeringTTL is how long a steering manifest holds (seconds).
const SteeringTTL = 2

// New builds a router; Run starts its health checks.
func New(cfg Config) (*Router, error) {
	if len(cfg.Edges) == 0 {
		return nil, fmt.Errorf("router: no edges")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Check <= 0 {
		cfg.Check = 2 * time.Second
	}
	if cfg.Strategy == "" {
		cfg.Strategy = "nearest"
	}
	st, err := NewStrategy(cfg.Strategy)
	if err != nil {
		return nil, err
	}
	if cfg.Zone == "" {
		cfg.Zone = "cdn.deepcast.test."
	}
	if !strings.HasSuffix(cfg.Zone, ".") {
		cfg.Zone += "."
	}
	if err := checkZone(cfg.Zone); err != nil {
		return nil, err
	}
	r := &Router{cfg: cfg, log: cfg.Logger.With("node", "router"), strategy: st, client: &http.Client{Timeout: 10 * time.Second}}
	if cfg.EdgeTLS != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg.EdgeTLS.Clone()
		r.client.Transport = t
	}
	r.Monitor = NewMonitor(cfg.Edges, cfg.Check, r.log)
	r.Monitor.StatsToken = cfg.StatsToken
	r.Monitor.client.Transport = r.client.Transport
	r.zoneSOA = r.soa()
	r.metrics = newRouterMetrics(r)
	r.handler = r.routes()
	return r, nil
}

// Run checks edge health until ctx ends.
func (r *Router) Run(ctx context.Context) { r.Monitor.Run(ctx) }

// ServeHTTP implements http.Handler.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.handler.ServeHTTP(w, req) }

// Choose ranks the healthy edges for a client (best first) and counts the
// decision.
func (r *Router) Choose(client netip.Addr) []*EdgeState {
	ranked := r.strategy.Rank(client, r.Monitor.Healthy())
	if len(ranked) > 0 {
		r.metrics.countDecision(r.strategy.Name(), ranked[0].Name)
	}
	return ranked
}

func clientAddr(req *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func (r *Router) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /vod/", r.serveVOD)
	mux.HandleFunc("HEAD /vod/", r.serveVOD)
	mux.HandleFunc("GET /steering", r.serveSteering)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /api/stats", r.serveStats)
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{}))
	return cors(httpsem.CloseAfterTransferCoding(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &accesslog.Recorder{ResponseWriter: w}
		mux.ServeHTTP(rec, req)
		elapsed := time.Since(start)
		r.metrics.latency.Observe(elapsed.Seconds())
		if r.cfg.AccessLog != nil {
			r.cfg.AccessLog.Log(accesslog.Record{Remote: req.RemoteAddr, Method: req.Method, Path: req.URL.EscapedPath(),
				Status: rec.Status, Bytes: rec.Bytes, Duration: elapsed, Upstream: w.Header().Get("X-Deepcast-Edge")})
		}
	})))
}

// serveVOD redirects to the chosen edge, or for manifests with
// ?route=baseurl / ?route=steering returns a rewritten MPD.
func (r *Router) serveVOD(w http.ResponseWriter, req *http.Request) {
	// The asset is the segment after /vod/, a name the library can hold
	// (so it has no escapes: the escaped path's segment is the name).
	asset, _, ok := strings.Cut(strings.TrimPrefix(req.URL.EscapedPath(), "/vod/"), "/")
	if !ok || !media.ValidName(asset) || hasDotSegment(req.URL.Path) {
		plain(w, http.StatusNotFound, "not found")
		return
	}
	ranked := r.Choose(clientAddr(req))
	if len(ranked) == 0 {
		w.Header().Set("Retry-After", "2")
		plain(w, http.StatusServiceUnavailable, "no healthy edge")
		return
	}
	route := req.URL.Query().Get("route")
	if isManifestPath(req.URL.Path) && (route == "baseurl" || route == "steering") {
		r.serveRewritten(w, req, asset, route, ranked)
		return
	}
	target := ranked[0].URL.String() + req.URL.EscapedPath()
	query := req.URL.RawQuery
	if r.cfg.Tokens != nil && isManifestPath(req.URL.Path) && !req.URL.Query().Has(auth.QueryParam) {
		tok, err := r.cfg.Tokens.mint(asset)
		if err != nil {
			r.log.Error("minting a viewer token", "err", err)
			plain(w, http.StatusInternalServerError, "could not sign a token")
			return
		}
		if query != "" {
			query += "&"
		}
		query += auth.QueryParam + "=" + tok
	}
	if query != "" {
		target += "?" + query
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Deepcast-Edge", ranked[0].Name)
	http.Redirect(w, req, target, http.StatusFound)
}

// hasDotSegment reports a "." or ".." segment in a (decoded) path. Only
// whole segments count: ".." inside a name ("a..b") is an asset name like
// any other, which the origin and the edges serve.
func hasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// isManifestPath reports an MPD or HLS multivariant playlist path: where a
// session starts, so where the router hands out its token.
func isManifestPath(p string) bool {
	return strings.HasSuffix(p, "/manifest.mpd") || strings.HasSuffix(p, "/master.m3u8")
}

// serveRewritten answers a manifest (the MPD, or the HLS multivariant
// playlist) that sends the player to the edges itself: with
// route=baseurl to the best edge (BaseURL, absolute playlist URIs), with
// route=steering to every edge, each a pathway (DASH ServiceLocation, HLS
// PATHWAY-ID), ordered by this router's steering server.
func (r *Router) serveRewritten(w http.ResponseWriter, req *http.Request, asset, route string, ranked []*EdgeState) {
	hls := strings.HasSuffix(req.URL.Path, ".m3u8")
	file, contentType := "manifest.mpd", "application/dash+xml"
	if hls {
		file, contentType = manifest.HLSMultivariant, manifest.HLSContentType
	}
	var data []byte
	var err error
	for _, e := range ranked { // the manifest from the first edge that answers
		data, err = r.fetch(req.Context(), e.URL.String()+"/vod/"+asset+"/"+file)
		if err == nil {
			break
		}
	}
	if err != nil {
		plain(w, http.StatusBadGateway, "no edge could serve the manifest")
		return
	}
	var bases []manifest.BaseURL
	steeringURL := ""
	if route == "baseurl" {
		bases = []manifest.BaseURL{{URL: ranked[0].URL.String() + "/vod/" + asset + "/", ServiceLocation: ranked[0].Name}}
	} else {
		// Every edge, the best first: steering may move the player to any.
		bases = append(bases, manifest.BaseURL{URL: ranked[0].URL.String() + "/vod/" + asset + "/", ServiceLocation: ranked[0].Name})
		for _, e := range r.Monitor.Edges {
			if e != ranked[0] {
				bases = append(bases, manifest.BaseURL{URL: e.URL.String() + "/vod/" + asset + "/", ServiceLocation: e.Name})
			}
		}
		self := r.cfg.Self
		if self == "" {
			self = "http://" + req.Host
		}
		steeringURL = self + "/steering?asset=" + url.QueryEscape(asset)
	}
	var out []byte
	if hls {
		pathways := make([]manifest.Pathway, len(bases))
		for i, b := range bases {
			pathways[i] = manifest.Pathway{Name: b.ServiceLocation, Base: b.URL}
		}
		out, err = manifest.RewriteHLS(data, pathways, steeringURL)
	} else {
		var steering *manifest.Steering
		if steeringURL != "" {
			steering = &manifest.Steering{ServerURL: steeringURL, DefaultServiceLocation: ranked[0].Name, QueryBeforeStart: true}
		} else {
			bases[0].ServiceLocation = ""
		}
		out, err = manifest.Rewrite(data, bases, steering)
	}
	if err != nil {
		plain(w, http.StatusBadGateway, "manifest: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Deepcast-Edge", ranked[0].Name)
	// Gzipped as the edges gzip the manifests they serve: a session waits
	// for this one before its first segment, and it is made per request.
	if len(out) >= httpsem.MinGzip {
		w.Header().Set("Vary", "Accept-Encoding")
		if httpsem.AcceptsGzip(strings.Join(req.Header.Values("Accept-Encoding"), ", ")) {
			if gz, ok := httpsem.Gzip(out); ok {
				out = gz
				w.Header().Set("Content-Encoding", "gzip")
			}
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	if req.Method != http.MethodHead {
		_, _ = w.Write(out)
	}
}

func (r *Router) fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, manifest.MaxMPDSize))
}

// steeringManifest is the content steering response: DASH-IF's and HLS's
// share this JSON.
type steeringManifest struct {
	Version  int      `json:"VERSION"`
	TTL      int      `json:"TTL"`
	Reload   string   `json:"RELOAD-URI"`
	Priority []string `json:"PATHWAY-PRIORITY"`
}

// serveSteering orders the pathways (edge names) for this viewer from live
// health and the strategy: healthy edges in the strategy's order, then the
// rest, so a player leaves a dead edge at its next reload.
func (r *Router) serveSteering(w http.ResponseWriter, req *http.Request) {
	ranked := r.Choose(clientAddr(req))
	var prio []string
	for _, e := range ranked {
		prio = append(prio, e.Name)
	}
	if len(prio) == 0 { // nothing healthy: keep every pathway, the player decides
		for _, e := range r.Monitor.Edges {
			prio = append(prio, e.Name)
		}
	}
	reload := *req.URL
	reload.Scheme, reload.Host = "", ""
	q := reload.Query()
	for _, k := range []string{"_DASH_pathway", "_DASH_throughput", "_HLS_pathway", "_HLS_throughput"} {
		q.Del(k) // what the player adds to each reload
	}
	reload.RawQuery = q.Encode()
	self := r.cfg.Self
	if self == "" {
		self = "http://" + req.Host
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(steeringManifest{Version: 1, TTL: SteeringTTL, Reload: self + reload.RequestURI(), Priority: prio})
}

// EdgeStatus is one edge in /api/stats.
type EdgeStatus struct {
	Name     string  `json:"name"`
	URL      string  `json:"url"`
	Profile  string  `json:"profile"`
	Up       bool    `json:"up"`
	Load     float64 `json:"load"`
	HitRatio float64 `json:"hitRatio"`
}

func (r *Router) serveStats(w http.ResponseWriter, _ *http.Request) {
	var out []EdgeStatus
	for _, e := range r.Monitor.Edges {
		e.mu.Lock()
		out = append(out, EdgeStatus{Name: e.Name, URL: e.URL.String(), Profile: e.Profile, Up: e.up, Load: e.load, HitRatio: e.hitRatio})
		e.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"name": "router", "role": "router", "strategy": r.strategy.Name(), "edges": out})
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// cors lets a page on another origin follow the router's redirects and
// read where they point.
var cors = httpsem.CORS("GET, HEAD, OPTIONS", "Location, X-Deepcast-Edge")

// routerMetrics are the router's Prometheus series. Counters are resolved
// once per label set: the DNS path does no label hashing.
type routerMetrics struct {
	reg       *prometheus.Registry
	latency   prometheus.Histogram
	decisions *prometheus.CounterVec
	queries   *prometheus.CounterVec
	resolved  sync.Map // string -> prometheus.Counter
}

func (m *routerMetrics) counter(vec *prometheus.CounterVec, kind, a, b string) prometheus.Counter {
	key := kind + "\x00" + a + "\x00" + b
	if c, ok := m.resolved.Load(key); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.resolved.LoadOrStore(key, vec.WithLabelValues(a, b))
	return c.(prometheus.Counter)
}

func (m *routerMetrics) countDecision(strategy, edge string) {
	m.counter(m.decisions, "decision", strategy, edge).Inc()
}

func (m *routerMetrics) countQuery(qtype string, rcode int) {
	m.counter(m.queries, "query", qtype, dns.RcodeToString[rcode]).Inc()
}

func newRouterMetrics(r *Router) *routerMetrics {
	m := &routerMetrics{reg: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "deepcast_router_decisions_total", Help: "Viewers sent to an edge, by strategy and edge.",
	}, []string{"strategy", "edge"})
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "deepcast_router_dns_queries_total", Help: "DNS queries by type and response code.",
	}, []string{"type", "rcode"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "deepcast_router_http_request_duration_seconds", Help: "Time to answer an HTTP request (redirect, manifest, steering).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	up := prometheus.NewDesc("deepcast_router_edge_up", "Whether an edge passes its health checks.", []string{"edge"}, nil)
	m.reg.MustRegister(m.latency, m.decisions, m.queries, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&healthCollector{r: r, desc: up})
	return m
}

type healthCollector struct {
	r    *Router
	desc *prometheus.Desc
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.r.Monitor.Edges {
		v := 0.0
		if e.Up() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, e.Name)
	}
}
