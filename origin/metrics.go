package origin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/httpsem"
)

// metrics are the origin's Prometheus series, on a registry of their own so
// several servers (tests, the demo) can live in one process.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	jobs     *prometheus.GaugeVec
	damaged  prometheus.Counter
	// storeErrors counts requests answered 503/504 because the library's
	// object store did not serve what they needed.
	storeErrors prometheus.Counter
	licences    prometheus.Counter // ClearKey licences handed out
	byRoute     sync.Map           // routeKey -> *routeMetrics
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deepcast_origin_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deepcast_origin_http_sent_bytes_total", Help: "Response body bytes sent, by route pattern.",
		}, []string{"route"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deepcast_origin_http_request_duration_seconds",
			Help:    "Time from request to the end of the response, by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deepcast_origin_jobs", Help: "Ingest jobs by state.",
		}, []string{"state"}),
	}
	m.damaged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "deepcast_origin_damaged_files_total",
		Help: "Requests refused because the library file differs from asset.json (size or checksum).",
	})
	m.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "deepcast_origin_store_errors_total",
		Help: "Requests answered 503/504 because the library store did not answer (or not in time).",
	})
	m.licences = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "deepcast_origin_licences_total",
		Help: "ClearKey licences handed out (keys of encrypted assets).",
	})
	m.reg.MustRegister(m.requests, m.bytes, m.latency, m.jobs, m.damaged, m.storeErrors, m.licences,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// RegisterMetrics adds collectors to the origin's /metrics, for what
// serves it (cmd/deepcast's HTTP front reports its connections there).
func (s *Server) RegisterMetrics(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := s.metrics.reg.Register(c); err != nil {
			return fmt.Errorf("origin metrics: %w", err)
		}
	}
	return nil
}

// routeMetrics are the series of one (route, method, status): resolved
// once, so the hot path does no label hashing.
type routeMetrics struct {
	requests prometheus.Counter
	bytes    prometheus.Counter
	latency  prometheus.Observer
}

type routeKey struct {
	route, method string
	code          int
}

func (m *metrics) forRoute(route, method string, code int) *routeMetrics {
	k := routeKey{route, method, code}
	if v, ok := m.byRoute.Load(k); ok {
		return v.(*routeMetrics)
	}
	rm := &routeMetrics{
		requests: m.requests.WithLabelValues(route, method, strconv.Itoa(code)),
		bytes:    m.bytes.WithLabelValues(route),
		latency:  m.latency.WithLabelValues(route),
	}
	v, _ := m.byRoute.LoadOrStore(k, rm)
	return v.(*routeMetrics)
}

// observe counts every request by its chi route pattern (never the raw path,
// which a client controls) and writes the access log line.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &accesslog.Recorder{ResponseWriter: w} // keeps sendfile
		next.ServeHTTP(rec, r)
		if rec.Status == 0 {
			rec.Status = http.StatusOK
		}
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		s.account(r.Context(), route, r.Method, r.URL.EscapedPath(), r.RemoteAddr, r.Header.Get("Range"), rec.Status, rec.Bytes, time.Since(start))
	})
}

// account records one answered request in the totals, the route's series
// and the access log; both the net/http path and the fast path call it.
func (s *Server) account(ctx context.Context, route, method, path, remote, rng string, status int, sent int64, elapsed time.Duration) {
	s.requests.Add(1)
	s.sent.Add(sent)
	rm := s.metrics.forRoute(route, httpsem.MethodLabel(method), status)
	rm.requests.Inc()
	rm.bytes.Add(float64(sent))
	rm.latency.Observe(elapsed.Seconds())
	if s.cfg.AccessLog != nil {
		tier := ""
		if status < 300 && strings.HasPrefix(path, "/vod/") {
			tier = "library"
		}
		s.cfg.AccessLog.Log(accesslog.Record{Remote: remote, Method: method, Path: path, Status: status, Bytes: sent, Duration: elapsed, Tier: tier})
	}
}
