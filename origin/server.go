package origin

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/deepcast/deepcast/edge/accesslog"
)

// Config configures an origin Server.
type Config struct {
	Library string
	// AdminToken guards the write endpoints; without one they are disabled.
	AdminToken string
	// MaxUpload bounds an ingest upload in bytes.
	MaxUpload int64
	// CheckEvery is how often an asset is re-checked for replacement.
	CheckEvery time.Duration
	AccessLog  *accesslog.Logger // nil: no access log
	// MetricsToken, when set, is the bearer token /metrics and /api/stats
	// ask for; OpsHidden takes them off the handler (they are on
	// OpsHandler, for an operators' listener).
	MetricsToken string
	OpsHidden    bool
	Logger       *slog.Logger
	// Web serves the browser pages at "/"; a plain asset list when nil.
	Web http.Handler
}

// Server is the origin: an http.Handler over a library.
type Server struct {
	cfg     Config
	log     *slog.Logger
	catalog *Catalog
	jobs    *jobs
	metrics *metrics
	checks  fileChecks
	handler http.Handler
	// requests and sent are running totals for /api/stats.
	requests, sent atomic.Int64
}

// New makes a Server for cfg. The library folder must exist.
func New(cfg Config) (*Server, error) {
	st, err := os.Stat(cfg.Library)
	if err != nil {
		return nil, fmt.Errorf("origin: library: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("origin: library %s is not a folder", cfg.Library)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 2 << 30
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, catalog: NewCatalog(cfg.Library, cfg.CheckEvery), metrics: newMetrics()}
	s.catalog.log = cfg.Logger
	s.jobs = newJobs(s)
	s.jobs.count()
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Catalog is the server's view of the library.
func (s *Server) Catalog() *Catalog { return s.catalog }

// Close stops running ingest jobs and waits for them to clean up.
func (s *Server) Close() { s.jobs.close() }
