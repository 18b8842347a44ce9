// Package web holds deepcast's browser pages: the dash.js player with live
// stats (rendition, buffer, throughput, quality chart, stalls, the
// Cache-Status of recent segments) and the dashboard of every node. Our own
// HTML, CSS and JavaScript are embedded; dash.js and uPlot come from npm
// (web/package.json, installed by `make deps` with `npm ci`) and are served
// from node_modules on disk. It knows nothing of Go internals: the servers
// mount Handler and tell it which nodes exist.
package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

//go:embed static
var static embed.FS

// Node is one server of the running setup, as the pages list it.
type Node struct {
	Name string `json:"name"`
	Role string `json:"role"` // origin, bring-home or enter-deep
	URL  string `json:"url"`
}

// Config tells the pages where they are and what else runs.
type Config struct {
	// Self is the name of the node serving the pages.
	Self string
	// Nodes are every node of the setup; the pages poll their /api/stats.
	Nodes []Node
	// ModulesDir is web/node_modules, where `npm ci` put dash.js and uPlot.
	ModulesDir string
	Logger     *slog.Logger
}

// vendorFiles maps our URLs to files inside node_modules.
var vendorFiles = map[string]string{
	"dash.all.min.js":          "dashjs/dist/modern/umd/dash.all.min.js",
	"hls.min.js":               "hls.js/dist/hls.min.js",
	"shaka-player.compiled.js": "shaka-player/dist/shaka-player.compiled.js",
	"uPlot.iife.min.js":        "uplot/dist/uPlot.iife.min.js",
	"uPlot.min.css":            "uplot/dist/uPlot.min.css",
}

// DefaultModulesDir finds web/node_modules from the working directory or
// beside the executable.
func DefaultModulesDir() string {
	if d := os.Getenv("DEEPCAST_WEB_MODULES"); d != "" {
		return d
	}
	candidates := []string{filepath.Join("web", "node_modules")}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "web", "node_modules"))
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
	}
	return candidates[0]
}

// MissingModules lists the front-end files that are not installed in dir
// (DefaultModulesDir when empty).
func MissingModules(dir string) []string {
	if dir == "" {
		dir = DefaultModulesDir()
	}
	var missing []string
	for _, rel := range vendorFiles {
		if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
			missing = append(missing, rel)
		}
	}
	return missing
}

// Handler serves the pages: / (player), /dashboard, /static/*, /vendor/*
// and /config.json.
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ModulesDir == "" {
		cfg.ModulesDir = DefaultModulesDir()
	}
	missing := MissingModules(cfg.ModulesDir)
	if len(missing) > 0 {
		cfg.Logger.Warn("web: front-end packages not installed; run `make deps` (npm ci in web/)", "modules", cfg.ModulesDir, "missing", missing)
	}
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			data, err := fs.ReadFile(sub, name)
			if err != nil {
				http.Error(w, "page missing", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(data)
		}
	}
	mux.HandleFunc("GET /{$}", page("index.html"))
	mux.HandleFunc("GET /dashboard", page("dashboard.html"))
	mux.Handle("GET /static/", http.StripPrefix("/static/", noDirs(files)))
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"self": cfg.Self, "nodes": cfg.Nodes, "missingModules": missing})
	})
	mux.HandleFunc("GET /vendor/{file}", func(w http.ResponseWriter, r *http.Request) {
		rel, ok := vendorFiles[r.PathValue("file")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		path := filepath.Join(cfg.ModulesDir, rel)
		if _, err := os.Stat(path); err != nil {
			// The page notices and says what to do.
			w.Header().Set("Content-Type", "text/javascript")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("window.deepcastMissingModules = true; // run `make deps` (npm ci in web/)\n"))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeFile(w, r, path)
	})
	return mux
}

// noDirs refuses directory listings.
func noDirs(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
