//go:build !js

package player

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSessionEndsWithTheLiveStream: a live stream of 1 s segments ends
// two seconds after the player joins, and its MPD turns static. The
// session plays what there was and ends there, as a viewer's player
// does, rather than fail: it learns of the end by re-reading the MPD as
// its minimumUpdatePeriod asks, without asking for a segment that never
// comes; or, with no minimumUpdatePeriod (ffmpeg's live template), from
// the first segment not found twice.
func TestSessionEndsWithTheLiveStream(t *testing.T) {
	for _, c := range []struct {
		name      string
		update    string // the MPD's minimumUpdatePeriod attribute
		location  bool   // the MPD names another URL to be re-read from
		most404   int64  // segment requests not found, at most
		mostReads int64  // MPD reads, at most
	}{
		{"minimumUpdatePeriod", ` minimumUpdatePeriod="PT1S"`, false, 0, 8},
		{"segments not found", "", false, 2, 2},
		{"re-read at its Location", ` minimumUpdatePeriod="PT1S"`, true, 0, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			ast := time.Now().Add(-30 * time.Second).Truncate(time.Second)
			const last = 32 // the stream's last segment spans [31 s, 32 s)
			var notFound, reads atomic.Int64
			mux := http.NewServeMux()
			var first atomic.Int64 // reads at the URL first given
			mpd := func(w http.ResponseWriter, r *http.Request) {
				reads.Add(1)
				kind, attrs := "dynamic", c.update
				if time.Since(ast) >= last*time.Second {
					kind, attrs = "static", fmt.Sprintf(` mediaPresentationDuration="PT%dS"`, last)
				}
				location := ""
				if c.location {
					location = "<Location>/moved/live.mpd</Location>"
				}
				fmt.Fprintf(w, `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="%s" profiles="urn:mpeg:dash:profile:isoff-live:2011" availabilityStartTime="%s" suggestedPresentationDelay="PT2S" minBufferTime="PT1S"%s>%s`+
					`<Period id="p" start="PT0S"><AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate timescale="1000" duration="1000" startNumber="1" media="$RepresentationID$/$Number$.m4s"/>`+
					`<Representation id="lo" bandwidth="200000"/><Representation id="hi" bandwidth="400000"/></AdaptationSet></Period></MPD>`, kind, ast.UTC().Format(time.RFC3339), attrs, location)
			}
			mux.HandleFunc("/live.mpd", func(w http.ResponseWriter, r *http.Request) {
				first.Add(1)
				mpd(w, r)
			})
			mux.HandleFunc("/moved/live.mpd", mpd)
			segment := func(w http.ResponseWriter, r *http.Request) {
				n, err := strconv.Atoi(strings.TrimSuffix(r.PathValue("segment"), ".m4s"))
				if err != nil || n > last || time.Now().Before(ast.Add(time.Duration(n)*time.Second)) {
					if r.Method == http.MethodGet { // the sizes asked with HEAD aside
						notFound.Add(1)
					}
					http.NotFound(w, r)
					return
				}
				w.Write(make([]byte, 1000))
			}
			// Segments are relative to the MPD's URL: the one it was read
			// from last.
			mux.HandleFunc("/{rep}/{segment}", segment)
			mux.HandleFunc("/moved/{rep}/{segment}", segment)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			res, err := playLiveMPD(t, srv, 0, scripted{0, 1, 1, 1, 1, 1, 1, 1, 1, 1})
			if err != nil {
				t.Fatal(err)
			}
			// Joined two seconds behind the edge at 30 to 31 s (later on a
			// loaded machine): segments 29 or 30 (31) to 32.
			if !res.StreamEnded || res.Chunks < 2 || res.Chunks > 4 {
				t.Errorf("%d chunks played (stream ended: %v), want 2 to 4 and the end noticed", res.Chunks, res.StreamEnded)
			}
			if n, r := notFound.Load(), reads.Load(); n > c.most404 || r > c.mostReads {
				t.Errorf("%d segment requests not found and %d MPD reads; want at most %d and %d", n, r, c.most404, c.mostReads)
			}
			if c.location && first.Load() != 1 {
				t.Errorf("the MPD was read %d times where it was first, want once: then at its Location", first.Load())
			}
			if took := time.Since(ast.Add(last * time.Second)); took > 3*time.Second {
				t.Errorf("the session ended %v after the stream", took)
			}
		})
	}
}

// TestSessionSaysItFellBehindTheTimeShiftBuffer: a player whose every
// request takes 3 s (of 1 s segments) falls behind the live edge until a
// segment has left the MPD's 4 s time-shift buffer and the server no
// longer has it. The session ends saying so, after the second 404, not
// after its retries run out on a segment that will never come back.
func TestSessionSaysItFellBehindTheTimeShiftBuffer(t *testing.T) {
	ast := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	var notFound atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/live.mpd", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011" availabilityStartTime="%s" suggestedPresentationDelay="PT2S" timeShiftBufferDepth="PT4S" minBufferTime="PT1S">`+
			`<Period id="p" start="PT0S"><AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate timescale="1000" duration="1000" startNumber="1" media="$RepresentationID$/$Number$.m4s"/>`+
			`<Representation id="lo" bandwidth="200000"/></AdaptationSet></Period></MPD>`, ast.UTC().Format(time.RFC3339))
	})
	mux.HandleFunc("/{rep}/{segment}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimSuffix(r.PathValue("segment"), ".m4s"))
		published := ast.Add(time.Duration(n) * time.Second)
		if err != nil || time.Now().Before(published) || time.Since(published) > 4*time.Second {
			if r.Method == http.MethodGet {
				notFound.Add(1)
			}
			http.NotFound(w, r)
			return
		}
		w.Write(make([]byte, 1000))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res, err := playLiveMPD(t, srv, 3*time.Second, scripted{0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if err == nil || !strings.Contains(err.Error(), "left the time-shift buffer (4s)") || res.StreamEnded {
		t.Fatalf("session: %v (%d chunks, ended %v), want it to say it fell behind the time-shift buffer", err, res.Chunks, res.StreamEnded)
	}
	t.Log(err)
	if n := notFound.Load(); n != 2 {
		t.Errorf("%d segment requests not found, want 2 (the first, and one retry)", n)
	}
}

// playLiveMPD plays 10 s of srv's /live.mpd as play does (the session
// waits for each segment's publication, asks why one not found will not
// come), each request taking rtt more, choosing as abr says.
func playLiveMPD(t *testing.T, srv *httptest.Server, rtt time.Duration, abr ABR) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := LoadVideoLazily(ctx, srv.URL+"/live.mpd", srv.Client(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clock := NewWallClock()
	f := &HTTPFetcher{Client: srv.Client(), Clock: clock, Retries: 5, Live: true, RTT: rtt,
		Gone: func(ctx context.Context, req Request) error { return v.Gone(ctx, req.Chunk, req.Rendition < 0) }}
	cfg := DefaultConfig()
	cfg.Ready = func(ctx context.Context, k, q int) error { return v.WaitPublished(ctx, clock, k, q) }
	cfg.Chunks = 10
	q, _ := NewQoE("lin")
	return (&Session{Video: v, ABR: abr, QoE: q, Clock: clock, Fetcher: f, Config: cfg}).Run(ctx)
}
