package web

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPagesConfigAndVendorFiles(t *testing.T) {
	modules := t.TempDir()
	os.MkdirAll(filepath.Join(modules, "dashjs", "dist", "modern", "umd"), 0o755)
	os.WriteFile(filepath.Join(modules, "dashjs", "dist", "modern", "umd", "dash.all.min.js"), []byte("var dashjs={}"), 0o644)
	h := Handler(Config{Self: "deep-a", ModulesDir: modules, Nodes: []Node{{Name: "deep-a", Role: "enter-deep", URL: "http://127.0.0.1:1"}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ts := httptest.NewServer(h)
	defer ts.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for path, want := range map[string]string{"/": "dash.all.min.js", "/dashboard": "dashboard.js", "/static/player.js": "addResponseInterceptor",
		"/static/style.css": "--hit", "/vendor/dash.all.min.js": "var dashjs"} {
		if code, body := get(path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, body lacks %q", path, code, want)
		}
	}
	// uPlot is not installed here: the page learns it, with a 503.
	if code, body := get("/vendor/uPlot.iife.min.js"); code != 503 || !strings.Contains(body, "deepcastMissingModules") {
		t.Errorf("missing vendor file: %d %q", code, body)
	}
	code, body := get("/config.json")
	var cfg struct {
		Self    string   `json:"self"`
		Nodes   []Node   `json:"nodes"`
		Missing []string `json:"missingModules"`
	}
	if err := json.Unmarshal([]byte(body), &cfg); err != nil || code != 200 || cfg.Self != "deep-a" || len(cfg.Nodes) != 1 || len(cfg.Missing) != len(vendorFiles)-1 {
		t.Errorf("config.json: %d %s", code, body)
	}
	for _, p := range []string{"/static/", "/vendor/../../etc/passwd", "/vendor/nope.js", "/static/../web.go"} {
		if code, _ := get(p); code == 200 {
			t.Errorf("%s served", p)
		}
	}
}
