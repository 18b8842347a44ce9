package origin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/media/store"
)

// Config configures an origin Server.
type Config struct {
	// Library is a folder or an s3://BUCKET/PREFIX URL; Store, when set,
	// is that library already opened (with its S3 options) and wins.
	Library string
	Store   store.Store
	// StoreTimeout bounds each trip to an object store: no answer (or no
	// byte while streaming) for that long is a 504 (10 s when zero).
	StoreTimeout time.Duration
	// AdminToken guards the write endpoints; without one they are disabled.
	AdminToken string
	// MaxUpload bounds an ingest upload in bytes.
	MaxUpload int64
	// MaxJobs bounds the ingest jobs held at once: being uploaded, queued
	// or running (DefaultMaxJobs when zero). Past it an upload is refused
	// with 503 before its body is read.
	MaxJobs int
	// CatalogBytes bounds the memory of the loaded assets (metadata,
	// manifests, init segments, playlists); the least recently requested
	// are dropped past it (DefaultCatalogBytes when zero).
	CatalogBytes int64
	// ListPage is the most assets one GET /api/assets gives, and its
	// default (DefaultListPage when zero).
	ListPage int
	// UploadStall ends an upload that brings fewer than uploadFloor bytes
	// within this long (DefaultUploadStall when zero): such an uploader
	// is answered 408 and its ingest place goes to the next.
	UploadStall time.Duration
	// UploadDir is where uploads wait for their job (os.TempDir() when
	// empty): it needs room for MaxJobs uploads of up to MaxUpload bytes.
	UploadDir string
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

// New makes a Server for cfg. A library folder must exist; an object
// store is not contacted (readiness reports whether it answers).
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		lib, err := store.Open(context.Background(), cfg.Library, store.S3Options{})
		if err != nil {
			return nil, fmt.Errorf("origin: %w", err)
		}
		cfg.Store = lib
	}
	if f, ok := cfg.Store.(store.Folder); ok {
		st, err := os.Stat(f.Root)
		if err != nil {
			return nil, fmt.Errorf("origin: library: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("origin: library %s is not a folder", f.Root)
		}
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
	if cfg.UploadStall <= 0 {
		cfg.UploadStall = DefaultUploadStall
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = DefaultMaxJobs
	}
	if cfg.UploadDir == "" {
		cfg.UploadDir = os.TempDir()
	} else if st, err := os.Stat(cfg.UploadDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("origin: upload folder %s: not a folder (%v)", cfg.UploadDir, err)
	}
	// Uploads and stagings a killed process left behind (see
	// store.MakeWorkFolder); live ones are held, and stay.
	if n := store.SweepWorkFolders(cfg.UploadDir, "deepcast-upload-"); n > 0 {
		cfg.Logger.Info("removed uploads left by an origin that was killed", "dir", cfg.UploadDir, "count", n)
	}
	if f, ok := cfg.Store.(store.Folder); ok {
		if n := store.SweepWorkFolders(f.Root, ".staging-"); n > 0 {
			cfg.Logger.Info("removed stagings left by a packager that was killed", "library", f.Root, "count", n)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, catalog: NewStoreCatalog(cfg.Store, cfg.CheckEvery, cfg.StoreTimeout), metrics: newMetrics()}
	s.catalog.log = cfg.Logger
	s.catalog.SetMemory(cfg.CatalogBytes)
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deepcast_origin_catalog_bytes",
		Help: "Memory held by the loaded assets (metadata, manifests, init segments, playlists), bounded by -catalog-memory.",
	}, func() float64 { _, b, _ := s.catalog.Memory(); return float64(b) }))
	s.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "deepcast_origin_catalog_evictions_total",
		Help: "Loaded assets dropped to stay within -catalog-memory (loaded again when next requested).",
	}, func() float64 { _, _, n := s.catalog.Memory(); return float64(n) }))
	s.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "deepcast_origin_store_lookups_spared_total",
		Help: "Requests for names not in the library answered 404 without asking its object store (a name just found absent, or one its listing lacks while lookups of unknown names are over budget).",
	}, func() float64 { return float64(s.catalog.SparedLookups()) }))
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deepcast_origin_assets_held_back",
		Help: "Assets served as the version before their live one, because the live one cannot be served (damaged or unreadable; the log names it), as of each asset's last check.",
	}, func() float64 { return float64(s.catalog.HeldBack()) }))
	s.jobs = newJobs(s, cfg.MaxJobs)
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
