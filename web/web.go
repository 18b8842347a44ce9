// Package web holds deepcast's browser pages: the dash.js player with live
// stats (rendition, buffer, throughput, quality chart, stalls, the
// Cache-Status of recent segments) and the dashboard of every node. Our own
// HTML, CSS and JavaScript are embedded; dash.js, hls.js, Shaka Player and
// uPlot come from npm (web/package.json, installed by `make deps` with
// `npm ci`) and are embedded too by `make build` (web/dist), or served from
// node_modules on disk. It knows nothing of Go internals: the servers mount
// Handler and tell it which nodes exist.
package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

//go:embed static
var static embed.FS

// dist is web/dist as `make build` filled it: the front-end packages
// (vendor/) and their licences (licenses/). A plain `go build` embeds only
// its README.
//
//go:embed all:dist
var dist embed.FS

// packageLicenses are the licence files of the packages vendorFiles come
// from, shipped beside them in the binary.
var packageLicenses = map[string]string{
	"dashjs.LICENSE.md":    "dashjs/LICENSE.md",
	"hls.js.LICENSE":       "hls.js/LICENSE",
	"shaka-player.LICENSE": "shaka-player/LICENSE",
	"uplot.LICENSE":        "uplot/LICENSE",
}

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
	// ABRDir holds the ABR core in WebAssembly (BuildABR); when empty,
	// what `make build` embedded, or web/dist/abr. Without it the page
	// offers dash.js's own rules only.
	ABRDir string
	Logger *slog.Logger
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

// Embedded reports whether this binary carries the front-end packages
// (built with `make build`).
func Embedded() bool {
	for name := range vendorFiles {
		if _, err := fs.Stat(dist, "dist/vendor/"+name); err != nil {
			return false
		}
	}
	return true
}

// BuildDist copies the front-end files the pages serve, and the licences
// of their packages, from modules (web/node_modules) into distDir
// (web/dist) for embedding; it returns how many files it wrote.
func BuildDist(modules, distDir string) (int, error) {
	if missing := MissingModules(modules); len(missing) > 0 {
		return 0, fmt.Errorf("%s lacks %v: run npm ci in web/ (make deps)", modules, missing)
	}
	n := 0
	for _, set := range []struct {
		dir   string
		files map[string]string
	}{{"vendor", vendorFiles}, {"licenses", packageLicenses}} {
		if err := os.MkdirAll(filepath.Join(distDir, set.dir), 0o755); err != nil {
			return n, err
		}
		for name, rel := range set.files {
			data, err := os.ReadFile(filepath.Join(modules, rel))
			if err != nil {
				return n, err
			}
			if err := os.WriteFile(filepath.Join(distDir, set.dir, name), data, 0o644); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// Handler serves the pages: / (player), /dashboard, /static/*, /vendor/*,
// /abr/* (the ABR core in WebAssembly) and /config.json.
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Where the front-end packages come from: a folder named by
	// -web-modules, else what `make build` embedded, else web/node_modules
	// found on disk.
	embedded := cfg.ModulesDir == "" && Embedded()
	var missing []string
	if !embedded {
		if cfg.ModulesDir == "" {
			cfg.ModulesDir = DefaultModulesDir()
		}
		missing = MissingModules(cfg.ModulesDir)
		if len(missing) > 0 {
			cfg.Logger.Warn("web: front-end packages not installed; build with `make build` (it embeds them), or run `make deps` (npm ci in web/) and pass -web-modules",
				"modules", cfg.ModulesDir, "missing", missing)
		}
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
	mux.Handle("GET /licenses/", http.StripPrefix("/licenses/", noDirs(licenseFiles())))
	abr := abrFiles(cfg.ABRDir)
	mux.HandleFunc("GET /abr/{file}", serveABR(abr))
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"self": cfg.Self, "nodes": cfg.Nodes, "missingModules": missing, "abrCore": abr != nil})
	})
	mux.HandleFunc("GET /vendor/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		rel, ok := vendorFiles[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if embedded {
			w.Header().Set("Cache-Control", "public, max-age=3600")
			http.ServeFileFS(w, r, dist, "dist/vendor/"+name)
			return
		}
		path := filepath.Join(cfg.ModulesDir, rel)
		if _, err := os.Stat(path); err != nil {
			// The page notices and says what to do.
			w.Header().Set("Content-Type", "text/javascript")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("window.deepcastMissingModules = true; // build with `make build`, or run `make deps` and pass -web-modules\n"))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeFile(w, r, path)
	})
	return mux
}

// licenseFiles serves the embedded licences of the front-end packages.
func licenseFiles() http.Handler {
	sub, err := fs.Sub(dist, "dist/licenses")
	if err != nil {
		return http.NotFoundHandler()
	}
	return http.FileServerFS(sub)
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
