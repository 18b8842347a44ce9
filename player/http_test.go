//go:build !js

package player

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFetchByteRange: a segment addressed as a byte range is fetched as
// one, and an answer that is not that range is refused.
func TestFetchByteRange(t *testing.T) {
	body := strings.Repeat("0123456789", 100)
	var lastCMCD atomic.Value
	lastCMCD.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastCMCD.Store(r.URL.Query().Get("CMCD"))
		switch r.URL.Path {
		case "/ranges": // as any static file server
			http.ServeContent(w, r, "f.mp4", time.Time{}, strings.NewReader(body))
		case "/whole": // ignores Range
			w.Write([]byte(body))
		case "/shifted": // answers a range, not the one asked for
			w.Header().Set("Content-Range", "bytes 1-100/1000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write([]byte(body[1:101]))
		}
	}))
	defer srv.Close()
	tests := []struct {
		path, rng string
		bytes     int64
		attempts  int64
		err       string
	}{
		{"/ranges", "100-299", 200, 1, ""},
		{"/ranges", "", 1000, 1, ""},
		{"/whole", "100-299", 0, 1, "does not serve ranges"}, // permanent: no retry
		{"/shifted", "0-99", 0, 2, "Content-Range"},
		{"/shifted", "0-99", 0, 2, "(after 2 attempts)"},
	}
	for _, tt := range tests {
		f := &HTTPFetcher{Client: srv.Client(), Clock: NewWallClock(), Retries: 1, Backoff: time.Millisecond, CMCD: true}
		d, err := f.Fetch(context.Background(), Request{URL: srv.URL + tt.path, Range: tt.rng, NextURL: srv.URL + tt.path, NextRange: "300-399"})
		if tt.err == "" && (err != nil || d.Bytes != tt.bytes) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s bytes %q: %d bytes, error %v; want %d, %q", tt.path, tt.rng, d.Bytes, err, tt.bytes, tt.err)
		}
		if got := f.Stats().Attempts; got != tt.attempts {
			t.Errorf("%s bytes %q: %d attempts, want %d", tt.path, tt.rng, got, tt.attempts)
		}
		if tt.attempts == 1 && err != nil && strings.Contains(err.Error(), "attempts") {
			t.Errorf("%s: one attempt reported as %v", tt.path, err)
		}
		if cmcd := lastCMCD.Load().(string); !strings.Contains(cmcd, `nrr="300-399"`) {
			t.Errorf("CMCD %q lacks the next range", cmcd)
		}
	}
}

// TestLocalManifestReadsLocalFilesOnly: a manifest read from the disk has
// its segments, indexes and playlists read from the disk; one that names
// http:// locations is refused, not read at those paths on this machine.
func TestLocalManifestReadsLocalFilesOnly(t *testing.T) {
	dir := t.TempDir()
	// A file at the path the remote URLs name, which must not be read.
	decoy := filepath.Join(dir, "x")
	if err := os.MkdirAll(decoy, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(decoy, "1.m4s"), []byte("local"), 0o644)
	remote := "http://127.0.0.1:1" + decoy + "/"
	for name, doc := range map[string]string{
		"template.mpd": `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S"><BaseURL>` + remote + `</BaseURL><Period>` +
			`<AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate media="$Number$.m4s" duration="2"/><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`,
		"base.mpd": `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S"><BaseURL>` + remote + `1.m4s</BaseURL><Period>` +
			`<AdaptationSet contentType="video" mimeType="video/mp4"><Representation id="v" bandwidth="1"><SegmentBase indexRange="0-3"/></Representation></AdaptationSet></Period></MPD>`,
		"master.m3u8": "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n" + remote + "media.m3u8\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadVideo(context.Background(), path, nil); err == nil || !strings.Contains(err.Error(), "must be local files") {
			t.Errorf("%s: %v, want a refusal of its http:// locations", name, err)
		}
	}
}

// TestSizesStopAtTheFirstFailure: sim's size requests stop once one has
// failed, rather than asking the rest of a long film.
func TestSizesStopAtTheFirstFailure(t *testing.T) {
	var heads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/m.mpd" {
			w.Write([]byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2000S"><Period>` +
				`<AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate media="$Number$.m4s" duration="2"/><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`))
			return
		}
		heads.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	if _, err := LoadVideo(context.Background(), srv.URL+"/m.mpd", srv.Client()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("error %v, want the 404", err)
	}
	if n := heads.Load(); n > 4*sizeAskers {
		t.Errorf("%d size requests of 1000 after the first 404", n)
	}
}

// sleepLog is a clock that records the waits asked of it and does not wait.
type sleepLog struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *sleepLog) Now() time.Duration { return 0 }
func (c *sleepLog) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	return ctx.Err()
}

// TestFetchHonoursRetryAfter: a 503 or 429 that says when to come back is
// retried then (up to maxRetryAfter), not at the next backoff step.
func TestFetchHonoursRetryAfter(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/busy" && n%3 != 0:
			w.Header().Set("Retry-After", "3")
			http.Error(w, "store down", http.StatusServiceUnavailable)
		case r.URL.Path == "/long":
			w.Header().Set("Retry-After", "3600")
			http.Error(w, "store down", http.StatusServiceUnavailable)
		case r.URL.Path == "/throttled" && n%2 != 0:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			w.Write([]byte("segment"))
		}
	}))
	defer srv.Close()
	for _, tt := range []struct {
		path   string
		ok     bool
		sleeps []time.Duration
	}{
		{"/busy", true, []time.Duration{3 * time.Second, 3 * time.Second}},
		{"/long", false, []time.Duration{maxRetryAfter, maxRetryAfter, maxRetryAfter}},
		{"/throttled", true, []time.Duration{time.Millisecond}}, // no Retry-After: the backoff
	} {
		calls.Store(0)
		clock := &sleepLog{}
		f := &HTTPFetcher{Client: srv.Client(), Clock: clock, Retries: 3, Backoff: time.Millisecond}
		_, err := f.Fetch(context.Background(), Request{URL: srv.URL + tt.path})
		if (err == nil) != tt.ok || !slices.Equal(clock.sleeps, tt.sleeps) {
			t.Errorf("%s: error %v, waits %v; want ok=%v, %v", tt.path, err, clock.sleeps, tt.ok, tt.sleeps)
		}
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{"120": 2 * time.Minute, "Wed, 02 Dec 2026 12:00:05 GMT": 5 * time.Second, "Wed, 02 Dec 2026 11:00:00 GMT": 0} {
		if got, ok := retryAfter(in, now); !ok || got != want {
			t.Errorf("Retry-After %q: %v %v, want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "soon", "-1"} {
		if _, ok := retryAfter(bad, now); ok {
			t.Errorf("Retry-After %q read", bad)
		}
	}
}

// capacityBySumming is what a Shaper's link carries in elapsed seconds,
// summed row by row (the specification Shaper.capacity keeps to).
func capacityBySumming(t *Trace, elapsed float64) float64 {
	if elapsed <= 0 {
		return 0
	}
	period := t.Time[len(t.Time)-1] - t.Time[0]
	var perLoop float64
	for i := 1; i < len(t.Time); i++ {
		perLoop += t.Mbps[i] * 1e6 / 8 * (t.Time[i] - t.Time[i-1])
	}
	loops := math.Floor(elapsed / period)
	total := loops * perLoop
	rest := elapsed - loops*period
	for i := 1; i < len(t.Time) && rest > 0; i++ {
		d := math.Min(rest, t.Time[i]-t.Time[i-1])
		total += t.Mbps[i] * 1e6 / 8 * d
		rest -= d
	}
	return total
}

// longMahimahiTrace is ten minutes of a link in mahimahi's format whose
// rate (0 to 4 packets a millisecond) changes every half second.
func longMahimahiTrace(t testing.TB) *Trace {
	var b strings.Builder
	for ms := 1; ms <= 600_000; ms++ {
		for range (ms / 500 * 7919) % 5 {
			b.WriteString(strconv.Itoa(ms))
			b.WriteByte('\n')
		}
	}
	tr, err := ParseTrace(strings.NewReader(b.String()), "ten-minutes")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestShaperCapacity: the link's capacity, from prefix sums, is the row by
// row sum's, inside a row, on row ends, past the end (the trace loops) and
// on a trace that starts after 0.
func TestShaperCapacity(t *testing.T) {
	late, _ := ParseTrace(strings.NewReader("2 0\n3 8\n5 1\n9 0\n10 4\n"), "late")
	traces := []*Trace{late, stepTrace([2]float64{0, 2}, [2]float64{30, 0.3}, [2]float64{60, 6}), longMahimahiTrace(t)}
	for _, tr := range traces {
		s := NewShaper(tr)
		period := tr.Time[len(tr.Time)-1] - tr.Time[0]
		for _, e := range []float64{-1, 0, 0.001, 0.5, 1, 1.25, 3, 7.9999, period, period + 0.7, 2.5 * period, 3 * period, 1e5} {
			got, want := s.capacity(e), capacityBySumming(tr, e)
			if math.Abs(got-want) > 1e-9*math.Max(1, want) {
				t.Errorf("%s after %gs: %.3f bytes, summed %.3f", tr.Name, e, got, want)
			}
		}
	}
}

// BenchmarkShaperCapacity: what a shaped read asks every 2 ms while it
// waits for the link, on ten minutes of mahimahi trace (6000 rows).
func BenchmarkShaperCapacity(b *testing.B) {
	s := NewShaper(longMahimahiTrace(b))
	b.ResetTimer()
	for i := range b.N {
		s.capacity(float64(i%600_000) / 1000)
	}
}

// TestShaperLosesWhatGoesUnused: a link idle for 0.6 s then carries a
// body in about the time its rate takes (less the 50 ms it keeps), as a
// bottleneck does (and the simulator's TraceLink), not at once from what
// it could have carried while nothing was asked of it; and a slow link
// (whose 50 ms are less than a read) delivers too.
func TestShaperLosesWhatGoesUnused(t *testing.T) {
	for _, c := range []struct {
		mbps  string
		bytes int
		least time.Duration
	}{
		{"8", 500_000, 400 * time.Millisecond},  // 1 MB/s
		{"0.5", 40_000, 400 * time.Millisecond}, // 62.5 kB/s
	} {
		tr, err := ParseTrace(strings.NewReader("0 "+c.mbps+"\n1000 "+c.mbps+"\n"), "flat")
		if err != nil {
			t.Fatal(err)
		}
		s := NewShaper(tr)
		time.Sleep(600 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		begun := time.Now()
		n, err := io.Copy(io.Discard, s.Reader(ctx, strings.NewReader(strings.Repeat("x", c.bytes))))
		cancel()
		if err != nil || n != int64(c.bytes) {
			t.Fatalf("%s Mbit/s: read %d bytes: %v", c.mbps, n, err)
		}
		if took := time.Since(begun); took < c.least {
			t.Errorf("%d bytes over %s Mbit/s after an idle 0.6 s took %v, want at least %v", c.bytes, c.mbps, took, c.least)
		}
	}
}

// TestSessionKeepsToServerCap: over HTTP, a session with ServerCap keeps
// each chunk (with the sound) within the bitrate the nearest node last
// suggested in CMSD-Dynamic, keeps that suggestion through answers that
// say nothing, and drops it when an entry without mb comes; without
// ServerCap the ABR's choice stands. The answer to chunk k+1 carries
// advice[k], which the choice of the chunks after it follows.
func TestSessionKeepsToServerCap(t *testing.T) {
	advice := []string{"", `"deep";mb=1000`, "", `"home";mb=9000, "deep";mb=500`, "", `"deep"`, "", `"deep";mb=bad`}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(filepath.Base(r.URL.Path))
		if strings.HasPrefix(r.URL.Path, "/v") && k >= 1 && k <= len(advice) && advice[k-1] != "" {
			w.Header().Set("CMSD-Dynamic", advice[k-1])
		}
		w.Write(make([]byte, 500))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		obey   bool
		want   []int
		capped int
	}{
		// mb=1000 less 128 kbit/s of sound: 750; mb=500: 300; "deep": none;
		// a malformed field changes nothing.
		{true, []int{3, 3, 1, 1, 0, 0, 3, 3}, 4},
		{false, []int{3, 3, 3, 3, 3, 3, 3, 3}, 0},
	} {
		v := &Video{ChunkDuration: time.Second, Bitrates: []float64{300, 750, 1500, 3000}, Chunks: len(advice), AudioKbps: 128}
		for k := range v.Chunks {
			v.Sizes = append(v.Sizes, []int64{500, 500, 500, 500})
			var urls []string
			for q := range v.Bitrates {
				urls = append(urls, srv.URL+"/v"+strconv.Itoa(q)+"/"+strconv.Itoa(k+1))
			}
			v.URLs = append(v.URLs, urls)
		}
		q, _ := NewQoE("lin")
		cfg := DefaultConfig()
		cfg.ServerCap = tc.obey
		f := &HTTPFetcher{Client: srv.Client(), Clock: NewWallClock()}
		s := &Session{Video: v, ABR: scripted{3, 3, 3, 3, 3, 3, 3, 3}, QoE: q, Clock: f.Clock, Fetcher: f, Config: cfg, KeepLog: true}
		r, err := s.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, l := range r.Log {
			got = append(got, l.Rendition)
		}
		if !slices.Equal(got, tc.want) || r.Capped != tc.capped {
			t.Errorf("obey=%v: renditions %v (%d capped), want %v (%d)", tc.obey, got, r.Capped, tc.want, tc.capped)
		}
		if r.ServerCapKbps != 0 {
			t.Errorf("obey=%v: last suggestion %d, want none", tc.obey, r.ServerCapKbps)
		}
	}
}

// TestRelativeURL: CMCD's nor is the next object relative to the current
// one's folder or its parent's (which an edge may prefetch), else its
// absolute path; another host's object keeps its whole URL.
func TestRelativeURL(t *testing.T) {
	for _, tc := range []struct{ cur, next, want string }{
		{"http://e/vod/a/v1/2.m4s", "http://e/vod/a/v1/3.m4s", "3.m4s"},
		{"http://e/vod/a/v1/2.m4s", "http://e/vod/a/a1/3.m4s", "../a1/3.m4s"},
		{"http://e/vod/a/v1/2.m4s", "http://e/other/b/3.m4s", "/other/b/3.m4s"},
		{"http://e/s_02.m4s", "http://e/s_03.m4s", "s_03.m4s"}, // at the root
		{"http://e/x/s_02.m4s", "http://e/s_03.m4s", "../s_03.m4s"},
		{"http://e/s_02.m4s", "http://e/x/s_03.m4s", "x/s_03.m4s"},
		{"http://e/vod/a/v1/2.m4s", "http://f/vod/a/v1/3.m4s", "http://f/vod/a/v1/3.m4s"},
	} {
		if got := relativeURL(tc.cur, tc.next); got != tc.want {
			t.Errorf("relativeURL(%q, %q) = %q, want %q", tc.cur, tc.next, got, tc.want)
		}
	}
}
