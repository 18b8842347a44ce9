package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media/mediatest"
)

// TestEdgeSeesPlayersStallThroughCMCD: deepcast play -cmcd through an
// enter-deep edge, where the link holds the second video segment back
// for 5 s (2 s segments: the buffer runs dry). The player reports the
// stall with its next request (CMCD bs), and the edge, which counts
// what its viewers report, shows one session that stalled once, with the
// buffer and bitrate it reported.
func TestEdgeSeesPlayersStallThroughCMCD(t *testing.T) {
	o := startOrigin(t, mediatest.Library(t))
	n, edgeURL := deepEdge(t, serveLoopback(t, o), false)
	target, err := url.Parse(edgeURL)
	if err != nil {
		t.Fatal(err)
	}
	// The viewer's link: it holds back the first GET of a second video
	// segment (the player's HEADs, which size segments, pass).
	proxy := httputil.NewSingleHostReverseProxy(target)
	second := regexp.MustCompile(`/vod/clip/[0-9]+p-[0-9]+k/2\.m4s$`)
	var held atomic.Int32
	var withoutFormat atomic.Int32 // media requests whose CMCD lacks sf=d (DASH)
	link := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if list := r.URL.Query().Get("CMCD"); list != "" && !slices.Contains(strings.Split(list, ","), "sf=d") {
			withoutFormat.Add(1)
		}
		if r.Method == http.MethodGet && second.MatchString(r.URL.Path) && held.Add(1) == 1 {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer link.Close()

	report := filepath.Join(t.TempDir(), "play.json")
	var out, errb bytes.Buffer
	if code := run([]string{"play", "-abr", "throughput", "-cmcd", "-json", report, link.URL + "/vod/" + mediatest.AssetName + "/manifest.mpd"}, &out, &errb); code != 0 {
		t.Fatalf("play: exit %d\n%s", code, errb.String())
	}
	var r struct {
		Chunks int `json:"chunks"`
		Stalls int `json:"stalls"`
	}
	if data, err := os.ReadFile(report); err != nil || json.Unmarshal(data, &r) != nil {
		t.Fatalf("play -json: %s (%v)", data, err)
	}
	if held.Load() == 0 || r.Chunks != 3 || r.Stalls != 1 {
		t.Fatalf("play: %+v, the link held %d segments back; want 3 chunks and the one stall it made\n%s", r, held.Load(), out.String())
	}
	if n := withoutFormat.Load(); n != 0 {
		t.Errorf("%d requests carried CMCD without sf=d", n)
	}

	v := n.Stats().Viewers
	if v.Sessions != 1 || v.Starved != 1 || v.BufferMedianSeconds < 0 || v.BitrateMeanKbps <= 0 || v.Live != 0 {
		t.Errorf("the edge's viewers: %+v, want one on-demand session that stalled, with its buffer and bitrate", v)
	}
	metrics := scrape(t, edgeURL+"/metrics")
	// Every segment request carried CMCD: 3 video, 3 audio (and the
	// initialization segments; the manifest's request carries none).
	for name, want := range map[string]float64{
		"deepcast_edge_cmcd_buffer_starvations_total": 1, "deepcast_edge_cmcd_sessions": 1, "deepcast_edge_cmcd_starved_sessions": 1,
		`deepcast_edge_cmcd_requests_total{ot="v"}`: 3, `deepcast_edge_cmcd_requests_total{ot="a"}`: 3,
	} {
		if got := metricValue(metrics, name); got != want {
			t.Errorf("/metrics: %s %v, want %v\n%s", name, got, want, grepLines(metrics, "deepcast_edge_cmcd_"))
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			b.WriteString(l)
		}
	}
	return b.String()
}
