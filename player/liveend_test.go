//go:build !js

package player

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
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
			_, res, err := playLiveMPD(t, srv, 0, 0, scripted{0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, false)
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

// behindServer serves a live stream of segments of seg whose MPD keeps
// them four segments (timeShiftBufferDepth) and asks players to join two
// behind the edge; a segment older than that is not found, as a packager
// deletes it. Each answer takes slow() longer. It records the numbers
// of the segments served and counts those not found.
type behindServer struct {
	*httptest.Server
	mu       sync.Mutex
	served   []int
	notFound atomic.Int64
}

func newBehindServer(t *testing.T, seg, suggest time.Duration, slow func() time.Duration) *behindServer {
	ast := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	b := &behindServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/live.mpd", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011" availabilityStartTime="%s" suggestedPresentationDelay="PT%gS" timeShiftBufferDepth="PT%gS" minBufferTime="PT1S">`+
			`<Period id="p" start="PT0S"><AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate timescale="1000" duration="%d" startNumber="1" media="$RepresentationID$/$Number$.m4s"/>`+
			`<Representation id="lo" bandwidth="200000"/></AdaptationSet></Period></MPD>`, ast.UTC().Format(time.RFC3339), suggest.Seconds(), 4*seg.Seconds(), seg.Milliseconds())
	})
	mux.HandleFunc("/{rep}/{segment}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimSuffix(r.PathValue("segment"), ".m4s"))
		published := ast.Add(time.Duration(n) * seg)
		if err != nil || time.Now().Before(published) || time.Since(published) > 4*seg {
			if r.Method == http.MethodGet {
				b.notFound.Add(1)
			}
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodGet {
			time.Sleep(slow())
			b.mu.Lock()
			b.served = append(b.served, n)
			b.mu.Unlock()
		}
		w.Write(make([]byte, 1000))
	})
	b.Server = httptest.NewServer(mux)
	t.Cleanup(b.Close)
	return b
}

// TestSessionSaysItFellBehindTheTimeShiftBuffer: a player whose every
// request takes 1.25 s (of 0.25 s segments) cannot fetch a segment before
// it leaves the stream's 1 s time-shift buffer. The session ends saying
// so, after the second 404, not after its retries run out on a segment
// that will never come back; one that may rejoin the live edge does so
// three times, and then gives up.
func TestSessionSaysItFellBehindTheTimeShiftBuffer(t *testing.T) {
	for _, c := range []struct {
		name     string
		rejoin   bool
		notFound int64
	}{
		{"without rejoining", false, 2},
		{"after three rejoins", true, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newBehindServer(t, 250*time.Millisecond, 500*time.Millisecond, func() time.Duration { return 0 })
			_, res, err := playLiveMPD(t, srv.Server, 1250*time.Millisecond, 0, scripted{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, c.rejoin)
			if !errors.Is(err, ErrFellBehind) || !strings.Contains(err.Error(), "left the time-shift buffer (1s)") || res.StreamEnded || res.Chunks != 0 {
				t.Fatalf("session: %v (%d chunks, ended %v), want it to say it fell behind the time-shift buffer", err, res.Chunks, res.StreamEnded)
			}
			t.Log(err)
			if want := map[bool]int{false: 0, true: maxRejoins}[c.rejoin]; res.Rejoins != want || (res.Skipped > 0) != c.rejoin {
				t.Errorf("%d rejoins, %v skipped; want %d", res.Rejoins, res.Skipped, want)
			}
			if n := srv.notFound.Load(); n != c.notFound {
				t.Errorf("%d segment requests not found, want %d (the first, and one retry, for each place joined)", n, c.notFound)
			}
		})
	}
}

// TestSessionJumpsToTheLiveEdge: the network is slow for the first two
// segments of a live session (each 0.5 s segment takes 1.5 s), and the
// player falls further behind the live edge than the stream keeps
// segments (2 s). Rather than fail, it jumps ahead to the live edge, as hls.js and
// dash.js do, and plays the session out there: the segments it fetched
// run on in order but for the jump, and it ends about as far behind the
// edge as it joined, not the 6 s the slow start cost: the MPD's
// suggestion (1.25 s), or the delay the player was given (0.75 s, as play
// -live-delay), the jump too. The two sessions run side by side, and the
// one given the shorter delay ends closer to the edge by about the half
// second between them.
func TestSessionJumpsToTheLiveEdge(t *testing.T) {
	t.Parallel()
	delays := []time.Duration{0, 750 * time.Millisecond}
	ends := make([]time.Duration, len(delays))
	t.Run("sessions", func(t *testing.T) {
		for i, delay := range delays {
			t.Run(fmt.Sprintf("delay %v", delay), func(t *testing.T) {
				t.Parallel()
				ends[i] = jumpToTheLiveEdge(t, delay)
			})
		}
	})
	if d := ends[0] - ends[1]; d < 250*time.Millisecond || d > 750*time.Millisecond {
		t.Errorf("joined as the MPD suggests (1.25 s), the session ended %v behind the edge (its stalls aside); joined 0.75 s behind, %v: want about 0.5 s less", ends[0], ends[1])
	}
}

// jumpToTheLiveEdge plays TestSessionJumpsToTheLiveEdge's session joined
// delay behind the edge and returns how far behind it ended, less its
// stalls since the jump.
func jumpToTheLiveEdge(t *testing.T, delay time.Duration) time.Duration {
	// Slow by the segments served, not by the clock: a slow stretch of
	// wall time would also slow the first segment after a jump when the
	// machine is busy, and that stall would count against the join's
	// distance (2.5 s behind at the end, once).
	var requests atomic.Int32
	// Both delays are half a segment off the segments' bounds: the jump
	// is made as a segment leaves the time-shift buffer, on a bound, and
	// a join point on one would fall on either side of it by a few
	// milliseconds of scheduling (a segment further behind, once in CI).
	srv := newBehindServer(t, 500*time.Millisecond, 1250*time.Millisecond, func() time.Duration {
		if requests.Add(1) <= 2 {
			return 1500 * time.Millisecond
		}
		return 0
	})
	begun := time.Now()
	v, res, err := playLiveMPD(t, srv.Server, 0, delay, scripted{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != 10 || res.Rejoins < 1 || res.Skipped <= 0 {
		t.Fatalf("%d chunks, %d rejoins skipping %v; want 10 chunks and a jump", res.Chunks, res.Rejoins, res.Skipped)
	}
	var skipped time.Duration
	for _, l := range res.Log {
		skipped += l.Skipped
		// A jump joins afresh: the lag behind the join starts again from
		// the chunk that comes after it (its stall, if any).
		if l.Skipped > 0 && l.Behind > l.Rebuffer {
			t.Errorf("chunk %d after a jump: %v behind the join, more than its stall %v", l.Chunk, l.Behind, l.Rebuffer)
		}
	}
	if skipped != res.Skipped {
		t.Errorf("the chunks' logs skipped %v in all, the session %v", skipped, res.Skipped)
	}
	srv.mu.Lock()
	served := slices.Clone(srv.served)
	srv.mu.Unlock()
	jumps := 0
	for i := 1; i < len(served); i++ {
		switch d := served[i] - served[i-1]; {
		case d > 1:
			jumps++
		case d < 1:
			t.Errorf("segments served %v: not in order", served)
		}
	}
	if jumps < 1 || len(served) < 10 {
		t.Errorf("segments served %v: want at least 10, with a jump", served)
	}
	// Back about where it joined after the jump: from the segment that
	// holds that point, so up to a segment (0.5 s) more, and what waiting
	// for publication adds. A stall after the jump (the machine busy with
	// other tests) leaves it that much further behind, which the chunks'
	// Behind counts: the join's own distance is the rest. Stalls or not,
	// it must not end anywhere near the 6 s the slow start cost.
	want := cmp.Or(delay, 1250*time.Millisecond)
	lat, ok := v.LiveLatency(begun, res)
	stalled := res.Log[len(res.Log)-1].Behind
	joined := lat.End - stalled
	if !ok || joined < want-100*time.Millisecond || joined > want+1500*time.Millisecond || lat.End > want+3*time.Second {
		t.Errorf("the session ended %v behind the live edge, %v of it stalls since the jump: want it near the %v it joined at", lat.End, stalled, want)
	}
	t.Logf("served %v; %d rejoins skipping %v; latency %v at the start, %v at the end, %v of it stalls since the jump", served, res.Rejoins, res.Skipped, lat.Start, lat.End, stalled)
	return joined
}

// playLiveMPD plays 10 chunks of srv's /live.mpd as play does (the
// session waits for each segment's publication, asks why one not found
// will not come, and jumps to the live edge when it fell behind if
// rejoin), joining delay behind the edge (0: as the MPD suggests), each
// request taking rtt more, choosing as abr says.
func playLiveMPD(t *testing.T, srv *httptest.Server, rtt, delay time.Duration, abr ABR, rejoin bool) (*Video, Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := LoadVideoLazily(ctx, srv.URL+"/live.mpd", srv.Client(), 10*time.Second, delay)
	if err != nil {
		t.Fatal(err)
	}
	clock := NewWallClock()
	f := &HTTPFetcher{Client: srv.Client(), Clock: clock, Retries: 5, Live: true, RTT: rtt,
		Gone: func(ctx context.Context, req Request) error { return v.Gone(ctx, req.Chunk, req.Rendition < 0) }}
	cfg := DefaultConfig()
	cfg.Ready = func(ctx context.Context, k, q int) error { return v.WaitPublished(ctx, clock, k, q) }
	cfg.Chunks = 10
	if rejoin {
		cfg.Rejoin = v.Rejoin
	}
	q, _ := NewQoE("lin")
	res, err := (&Session{Video: v, ABR: abr, QoE: q, Clock: clock, Fetcher: f, Config: cfg, KeepLog: true}).Run(ctx)
	return v, res, err
}

// TestWaitPublishedSaysAChunkLeftTheStream: a chunk older than the MPD's
// time-shift buffer by the clock is known to be gone before it is asked
// for (ErrFellBehind, no request), as a player reading the MPD's window
// knows it.
func TestWaitPublishedSaysAChunkLeftTheStream(t *testing.T) {
	srv := newBehindServer(t, 250*time.Millisecond, 500*time.Millisecond, func() time.Duration { return 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := LoadVideoLazily(ctx, srv.URL+"/live.mpd", srv.Client(), 5*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	clock := NewWallClock()
	if err := v.WaitPublished(ctx, clock, 0, 0); err != nil {
		t.Fatalf("chunk 1, joined 0.5 s behind the edge: %v", err)
	}
	time.Sleep(1500 * time.Millisecond) // the 1 s buffer has moved past it
	err = v.WaitPublished(ctx, clock, 0, 0)
	if !errors.Is(err, ErrFellBehind) || !strings.Contains(err.Error(), "video chunk 1: it left the time-shift buffer (1s)") {
		t.Errorf("chunk 1, 1.5 s later: %v, want it gone by the clock", err)
	}
	if n := srv.notFound.Load(); n != 0 {
		t.Errorf("%d segment requests not found: the clock alone should tell", n)
	}
}
