package main

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/media/mediatest"
)

// TestPlayThroughTiersBringsOnlyWhatItPlays: deepcast play asks the size
// of every rendition's segments with HEAD; through an enter-deep node and
// its bring-home parent, those go to the origin as HEADs, so the origin
// sends the body of each segment the player plays and of no other (a
// node that fetched the object for a HEAD brought every rendition of
// the clip across both links for one viewer).
func TestPlayThroughTiersBringsOnlyWhatItPlays(t *testing.T) {
	o := startOrigin(t, mediatest.Library(t))
	var mu sync.Mutex
	var gets, heads []string
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m4s") {
			mu.Lock()
			if r.Method == http.MethodHead {
				heads = append(heads, r.URL.Path)
			} else {
				gets = append(gets, r.URL.Path)
			}
			mu.Unlock()
		}
		o.ServeHTTP(w, r)
	})
	no := false
	home, err := edge.New(edge.Config{Profile: edge.BringHome, Name: "home", Upstreams: []string{serveLoopback(t, counted)}, MemBytes: 64 << 20,
		Prefetch: &no, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(home.Close)
	_, deep := deepEdge(t, serveLoopback(t, home), false)
	log := filepath.Join(t.TempDir(), "play.csv")
	var out, errb bytes.Buffer
	if code := run([]string{"play", "-abr", "throughput", "-out", log, deep + "/vod/" + mediatest.AssetName + "/manifest.mpd"}, &out, &errb); code != 0 {
		t.Fatalf("play: exit %d\n%s", code, errb.String())
	}
	rows := readCSVFile(t, log)
	if len(rows) < 2 {
		t.Fatalf("%s: %q", log, rows)
	}
	chunks := len(rows) - 1
	mu.Lock()
	defer mu.Unlock()
	// Each chunk is one video segment and one sound segment.
	if len(gets) > 2*chunks || len(heads) == 0 {
		t.Errorf("for %d chunks played through two tiers the origin sent %d segments (%q) and answered %d HEADs; want at most %d, and the sizes asked as HEADs",
			chunks, len(gets), gets, len(heads), 2*chunks)
	}
	seen := map[string]bool{}
	for _, p := range gets {
		if seen[p] {
			t.Errorf("the origin sent %s twice", p)
		}
		seen[p] = true
	}
}

// TestEdgeHeadFillsFlag: `deepcast edge` asks upstream with a HEAD for a
// HEAD it does not hold, and with -head-fills fetches the object instead.
func TestEdgeHeadFillsFlag(t *testing.T) {
	bin := buildBinary(t)
	var mu sync.Mutex
	var seen []string
	up := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/vod/") {
			return // health checks
		}
		mu.Lock()
		seen = append(seen, r.Method)
		mu.Unlock()
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Length", "1000")
		if r.Method == http.MethodGet {
			w.Write(make([]byte, 1000))
		}
	}))
	for _, c := range []struct {
		flags []string
		want  string
	}{{nil, http.MethodHead}, {[]string{"-head-fills"}, http.MethodGet}} {
		_, addr := startMemEdge(t, bin, up, "64MiB", c.flags...)
		mu.Lock()
		seen = nil
		mu.Unlock()
		resp, err := http.Head("http://" + addr + "/vod/a/v/1.m4s")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mu.Lock()
		if resp.StatusCode != 200 || resp.ContentLength != 1000 || len(seen) != 1 || seen[0] != c.want {
			t.Errorf("edge %v: a HEAD got %d, %d bytes, and asked upstream %q; want 200, 1000, [%s]", c.flags, resp.StatusCode, resp.ContentLength, seen, c.want)
		}
		mu.Unlock()
	}
}
