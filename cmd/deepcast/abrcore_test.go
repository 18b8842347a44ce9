package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deepcast/deepcast/player"
	"github.com/deepcast/deepcast/web"
)

// buildABRCore compiles the ABR core to WebAssembly for the pages
// (what `make build` embeds) into a test folder.
func buildABRCore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := web.BuildABR(ctx, "go", repoRoot(), dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// abrRecord is one decision of the page's Go core, as it logged it.
type abrRecord struct {
	Chunk   int                 `json:"chunk"`
	State   player.BrowserState `json:"state"`
	Quality int                 `json:"quality"`
	Applied int                 `json:"applied"`
}

// TestBrowserRunsTheGoABRCore: the player page runs deepcast's ABR, the
// Go code sim and play run compiled to WebAssembly, as a dash.js custom
// rule: dash.js plays through an enter-deep edge on its choices, keeps to
// the page's bitrate cap and switches when it is lifted and set again,
// and every decision it made is the one the Go core makes, natively,
// from the same states in the same order.
func TestBrowserRunsTheGoABRCore(t *testing.T) {
	setup := startWebChainOn(t, packageClip(t, 24*time.Second, "640x360@1200k,320x180@300k"), chainOptions{abrDir: buildABRCore(t)})
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/?asset=clip&buffer=4&cap=700&engine=dashjs&abr=deepcast")); err != nil {
		t.Fatal(err)
	}
	capSwitches(t, ctx, 700)
	waitFor(t, ctx, 60*time.Second, "playback to the end", func(s pageStats) bool { return s.CurrentTime > 23 })
	var got struct {
		Log     []abrRecord         `json:"log"`
		Video   player.BrowserVideo `json:"video"`
		Shown   string              `json:"shown"`
		Options []string            `json:"options"`
	}
	js := `JSON.stringify({log: window.deepcast.abrLog, video: window.deepcast.abrVideo, shown: document.getElementById('s-abr').textContent,
		options: [...document.querySelectorAll('#abr option')].map((o) => o.value)})`
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Log) < 10 || got.Video.Chunks < 12 || got.Video.Chunks > 13 || len(got.Video.Bitrates) != 2 {
		t.Fatalf("the page's core made %d decisions over %+v", len(got.Log), got.Video)
	}
	if got.Shown == "" || got.Shown == "–" {
		t.Error("the page does not show the core's decisions")
	}
	// Both of deepcast's ABRs are offered beside dash.js's own rules.
	if !slices.Contains(got.Options, player.DeepcastMPC) || !slices.Contains(got.Options, player.DeepcastLearned) {
		t.Errorf("the page offers %v", got.Options)
	}
	decidesAsTheGoCore(t, got.Video, got.Log)
	ups, capped := 0, 0
	for _, rec := range got.Log {
		if rec.Applied > rec.Quality {
			t.Errorf("chunk %d: applied %d above the choice %d", rec.Chunk, rec.Applied, rec.Quality)
		}
		if rec.Applied < rec.Quality {
			capped++
		}
		if rec.Quality > 0 {
			ups++
		}
	}
	if ups == 0 || capped == 0 {
		t.Errorf("over %d decisions the core never chose the top (%d) or was never capped (%d)", len(got.Log), ups, capped)
	}
	t.Logf("%d decisions, %d of the top rendition, %d capped; last shown: %s", len(got.Log), ups, capped, got.Shown)
}

// TestBrowserGivesUpASegmentTheLinkCannotBring: with the Go core, dash.js
// gives a video segment up as it comes, by the core's stall rule, the one
// play -abandon stall runs. The page is played through a proxy that
// trickles the top rendition's segments from the third on at 40 kB/s (a
// link that fell while they came: 7.5 s for a 2 s segment with 4 s of
// buffer) and passes everything else at once. dash.js's own abandonment
// rule is off with the core, so without the core's rule each would be
// waited out. The page gives such a download up for the lower rendition,
// the one the Go core names natively from the same progress; dash.js
// asks for the chunk at that rendition at once, seconds before the
// trickle would have ended, and plays to the end.
func TestBrowserGivesUpASegmentTheLinkCannotBring(t *testing.T) {
	setup := startWebChainOn(t, packageClip(t, 24*time.Second, "640x360@1200k,320x180@300k"), chainOptions{abrDir: buildABRCore(t)})
	target, err := url.Parse(setup.deep)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	segment := regexp.MustCompile(`/(360p-1200k|180p-300k)/(\d+)\.m4s$`)
	type asked struct {
		at        time.Time
		rendition string
		n         int
	}
	var mu sync.Mutex
	var requests []asked
	trickles := map[int][2]time.Time{} // segment number: when its trickle began and ended
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := segment.FindStringSubmatch(r.URL.Path)
		if m == nil {
			proxy.ServeHTTP(w, r)
			return
		}
		n, _ := strconv.Atoi(m[2])
		began := time.Now()
		mu.Lock()
		requests = append(requests, asked{began, m[1], n})
		mu.Unlock()
		if m[1] != "360p-1200k" || n < 3 {
			proxy.ServeHTTP(w, r)
			return
		}
		trickle(w, r, proxy, 4000)
		mu.Lock()
		trickles[n] = [2]time.Time{began, time.Now()}
		mu.Unlock()
	}))
	defer front.Close()
	ctx := browser(t)
	page := front.URL + "/?buffer=4&engine=dashjs&abr=deepcast&mpd=" + url.QueryEscape(front.URL+"/vod/clip/manifest.mpd")
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 90*time.Second, "playback to the end", func(s pageStats) bool { return s.CurrentTime > 23 })
	var got struct {
		Abandons []struct {
			Progress player.BrowserProgress `json:"progress"`
			Quality  int                    `json:"quality"`
		} `json:"abandons"`
		Video player.BrowserVideo `json:"video"`
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({abandons: window.deepcast.abandons, video: window.deepcast.abrVideo})`))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Abandons) == 0 {
		t.Fatal("the page gave no download up")
	}
	s, err := player.NewBrowserSession("deepcast", got.Video)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got.Abandons {
		q, err := s.Abandon(a.Progress)
		if err != nil || q != a.Quality || a.Progress.Rendition != 1 || q != 0 {
			t.Errorf("the page gave %+v up for rendition %d; the Go core says %d (%v)", a.Progress, a.Quality, q, err)
		}
	}
	// Each segment the proxy trickled was asked for again at the lower
	// rendition while it came, at least 3 s before it would have ended.
	mu.Lock()
	defer mu.Unlock()
	if len(trickles) == 0 {
		t.Fatal("the top rendition was never trickled")
	}
	// The page counts chunks by segment, not by download: dash.js fetches
	// the first segment twice (at the lowest rendition, then again at the
	// top to replace it), which once put the page's count one ahead.
	for _, a := range got.Abandons {
		if _, ok := trickles[a.Progress.Chunk+1]; !ok {
			t.Errorf("the page gave chunk %d up; the proxy trickled segments %v", a.Progress.Chunk, slices.Collect(maps.Keys(trickles)))
		}
	}
	for n, tr := range trickles {
		again := slices.IndexFunc(requests, func(a asked) bool { return a.rendition == "180p-300k" && a.n == n && a.at.After(tr[0]) })
		if again < 0 || tr[1].Sub(requests[again].at) < 3*time.Second {
			t.Errorf("segment %d trickled from %v to %v; asked again at the lower rendition: %v", n, tr[0], tr[1], again >= 0 && requests[again].at.Before(tr[1]))
		}
	}
	t.Logf("%d downloads given up, the first %+v", len(got.Abandons), got.Abandons[0].Progress)
}

// TestBrowserRunsTheGoABRCoreOnALiveStream: the page's Go core plays a
// live stream (ffmpeg's live DASH, a 20 s window) with dash.js. The page
// hands the core the live delay, and as many chunks as a session may run:
// dash.js's duration() of a live stream is its window, from which the
// core had been told the video ended after ten chunks, so it planned to
// spend its buffer there and then made no more decisions. Every decision
// is the one the Go core makes natively from the same states.
func TestBrowserRunsTheGoABRCoreOnALiveStream(t *testing.T) {
	abrDir := buildABRCore(t)
	dir := t.TempDir()
	liveFFmpeg(t, dir, 120, []string{"live.mpd", "chunk-stream0-00003.m4s"}, liveDASH(dir, "0")...)
	mux := http.NewServeMux()
	mux.Handle("/live/", http.StripPrefix("/live/", http.FileServer(http.Dir(dir))))
	mux.Handle("/", web.Handler(web.Config{Self: "page", ModulesDir: webModulesForTest(t), ABRDir: abrDir, Logger: discard()}))
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL+"/?engine=dashjs&abr=deepcast&buffer=4&mpd="+url.QueryEscape(page.URL+"/live/live.mpd"))); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Log   []abrRecord         `json:"log"`
		Video player.BrowserVideo `json:"video"`
	}
	const want = 14 // past the ten chunks of the window
	deadline := time.Now().Add(90 * time.Second)
	for len(got.Log) < want {
		if time.Now().After(deadline) {
			t.Fatalf("the page's core made %d decisions in 90 s over %+v; want %d", len(got.Log), got.Video, want)
		}
		time.Sleep(time.Second)
		s := readStats(t, ctx)
		if len(s.Errors) > 0 {
			t.Fatalf("page errors: %v", s.Errors)
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({log: window.deepcast.abrLog || [], video: window.deepcast.abrVideo || {}})`))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatal(err)
		}
	}
	if got.Video.LiveDelay <= 0 || got.Video.Chunks != 100000 {
		t.Errorf("the page told the core %+v: want the live delay and 100000 chunks", got.Video)
	}
	decidesAsTheGoCore(t, got.Video, got.Log)
	t.Logf("%d decisions on a live stream %.1f s behind its edge", len(got.Log), got.Video.LiveDelay)
}

// decidesAsTheGoCore checks that every decision the page's deepcast core
// logged is the one the Go core makes natively from the same states, in
// the same order, for the same video.
func decidesAsTheGoCore(t *testing.T, video player.BrowserVideo, log []abrRecord) {
	t.Helper()
	s, err := player.NewBrowserSession("deepcast", video)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range log {
		q, err := s.Choose(rec.State)
		if err != nil {
			t.Fatalf("decision %d: %v", i, err)
		}
		if q != rec.Quality {
			t.Errorf("chunk %d: the browser's core chose %d, the Go core %d from %+v", rec.Chunk, rec.Quality, q, rec.State)
		}
	}
}

// TestBrowserShowsHowFarBehindTheLiveEdge: the page says, for a live
// stream, how far behind its live edge each engine plays, and the figure
// is the wall clock's distance from the media the video element shows.
// ffmpeg packages one live stream in real time as DASH with HLS playlists
// beside it, media time t published at the MPD's availabilityStartTime
// plus t (the playlists' PROGRAM-DATE-TIMEs say the same). With
// &livedelay=12 each engine joins that far behind, where by default they
// join 2 s to 8 s behind (the MPD suggests one segment, the playlists say
// nothing).
func TestBrowserShowsHowFarBehindTheLiveEdge(t *testing.T) {
	page, ast := liveStreamBesideThePage(t)
	ctx := browser(t)
	const delay = 12.0
	for _, c := range []struct {
		engine, manifest string
		delay            float64 // 0: the engine's default
	}{
		{"dashjs", "live.mpd", 0}, {"shaka-hls", "master.m3u8", 0},
		{"dashjs", "live.mpd", delay}, {"shaka-dash", "live.mpd", delay}, {"hlsjs", "master.m3u8", delay}, {"shaka-hls", "master.m3u8", delay},
	} {
		q := "/?engine=" + c.engine + "&buffer=4&mpd=" + url.QueryEscape(page+"/live/"+c.manifest)
		if c.delay > 0 {
			q += fmt.Sprintf("&livedelay=%g", c.delay)
			// The stream must hold that much and more (its window is 20 s).
			time.Sleep(time.Until(ast.Add(time.Duration(c.delay+6) * time.Second)))
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(page+q)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, 40*time.Second, c.engine+" playing a live stream", func(s pageStats) bool { return s.CurrentTime > 0 && s.LiveLatency > 0 })
		time.Sleep(3 * time.Second) // past the start, playing at its pace
		type liveStat struct {
			Latency, Now, Media, Date float64
			Shown                     bool
			Text                      string
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[liveStat](`({Latency: window.deepcast.liveLatency, Now: Date.now() / 1000, Media: document.getElementById('video').currentTime,
			Date: window.deepcast.playheadDate / 1000,
			Shown: !document.getElementById('s-live-box').classList.contains('hidden'), Text: document.getElementById('s-live').textContent})`))
		if err != nil {
			t.Fatal(err)
		}
		// A DASH engine's media time is the stream's, from its
		// availabilityStartTime. An HLS engine's starts where the playlist
		// it first read did, which has slid on once the stream is older
		// than its window: there the media shown is dated by the
		// playlist's PROGRAM-DATE-TIMEs, which ffmpeg writes in whole
		// seconds of the MPD's clock.
		truth := got.Now - float64(ast.UnixMilli())/1000 - got.Media
		lag := 0.0
		if strings.HasSuffix(c.manifest, ".m3u8") {
			// An HLS engine's edge is the playlist's last segment. While
			// ffmpeg keeps up, that segment ended 2 s to 4 s ago (it is
			// listed once the next one has begun, and its date is cut to
			// a whole second); when ffmpeg, short of CPU on a loaded
			// machine, publishes later, the edge is that much further back.
			lag = max(0, hlsPublishLag(t, page, ast)-4)
			truth = got.Now - (got.Date + float64(ast.Nanosecond())/1e9) - lag
		}
		t.Logf("%s, livedelay %g: %.2f s behind the live edge, the page shows %q; by the stream's clock %.2f s (by the media's date %.2f s; the playlist %.2f s late)",
			c.engine, c.delay, got.Latency, got.Text, truth, got.Now-got.Date, lag)
		// At least a segment behind (one must be published to be played),
		// at most the ten the window keeps.
		if shown, err := strconv.ParseFloat(got.Text, 64); got.Latency < 2 || got.Latency > 22 || !got.Shown || err != nil || math.Abs(shown-got.Latency) > 0.051 {
			t.Errorf("%s: %.2f s behind the live edge, shown %v as %q; want 2 s to 22 s, shown as such", c.engine, got.Latency, got.Shown, got.Text)
		}
		// hls.js reckons the edge from the playlist's last segment and
		// the time since it was read: within a segment (2 s).
		if math.Abs(got.Latency-truth) > 2 {
			t.Errorf("%s: %.2f s behind the live edge, but %.2f s by the stream's clock and the media shown", c.engine, got.Latency, truth)
		}
		// The page dates the media shown by the stream's clock (for DASH,
		// as its availabilityStartTime places it).
		if !strings.HasSuffix(c.manifest, ".m3u8") && math.Abs(got.Now-got.Date-truth) > 0.5 {
			t.Errorf("%s: the page dates the media shown %.2f s ago, the stream's clock %.2f s", c.engine, got.Now-got.Date, truth)
		}
		// Joined that far behind: up to two segments more, where an
		// engine reckons the edge at the last segment listed (Shaka's
		// seek range ends a segment before it) and starts at the segment
		// holding that point, and a second for the startup.
		if c.delay > 0 && (truth < c.delay-1 || truth > c.delay+5) {
			t.Errorf("%s with livedelay=%g: %.2f s behind the live edge by the stream's clock", c.engine, c.delay, truth)
		}
	}
	pageRefuses(t, ctx, page, "livedelay=-3", "livedelay=-3: want the seconds behind the live edge")
}

// hlsPublishLag reads the live stream's first media playlist beside the
// page and returns how long ago, in seconds, its last segment ended by
// its PROGRAM-DATE-TIMEs (whole seconds of the clock ast is on, as ffmpeg
// writes them): about a segment (2 s) while ffmpeg keeps up.
func hlsPublishLag(t *testing.T, page string, ast time.Time) float64 {
	t.Helper()
	get := func(u string) string {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var media string
	for l := range strings.Lines(get(page + "/live/master.m3u8")) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			media = l
			break
		}
	}
	var end time.Time
	for l := range strings.Lines(get(page + "/live/" + media)) {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"); ok {
			d, err := time.Parse("2006-01-02T15:04:05.999999999Z07:00", v)
			if err != nil {
				d, err = time.Parse("2006-01-02T15:04:05.999999999Z0700", v) // ffmpeg's +0000
			}
			if err != nil {
				t.Fatalf("media playlist %s: %q: %v", media, l, err)
			}
			end = d.Add(time.Duration(ast.Nanosecond()))
		} else if v, ok := strings.CutPrefix(l, "#EXTINF:"); ok && !end.IsZero() {
			sec, _ := strconv.ParseFloat(strings.TrimSuffix(v, ","), 64)
			end = end.Add(time.Duration(sec * float64(time.Second)))
		}
	}
	if end.IsZero() {
		t.Fatalf("media playlist %s dates no segment", media)
	}
	return time.Since(end).Seconds()
}

// pageRefuses opens the player page with query on the live stream beside
// it and checks that the page says want.
func pageRefuses(t *testing.T, ctx context.Context, page, query, want string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(page+"/?"+query+"&mpd="+url.QueryEscape(page+"/live/live.mpd"))); err != nil {
		t.Fatal(err)
	}
	var errs []string
	for deadline := time.Now().Add(10 * time.Second); len(errs) == 0 && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		errs = readStats(t, ctx).Errors
	}
	if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, want) }) {
		t.Errorf("%s: page errors %q, want %q", query, errs, want)
	}
}

// liveStreamBesideThePage has ffmpeg package a live stream in real time
// (150 s) as DASH with HLS playlists beside it (live.mpd, master.m3u8),
// served under /live/ beside the player page; it returns the page's URL
// and the MPD's availabilityStartTime, when media time 0 was published.
func liveStreamBesideThePage(t *testing.T) (string, time.Time) {
	t.Helper()
	dir := t.TempDir()
	liveFFmpeg(t, dir, 150, []string{"live.mpd", "master.m3u8", "chunk-stream0-00003.m4s"},
		"-f", "dash", "-use_timeline", "0", "-use_template", "1", "-seg_duration", "2", "-window_size", "10", "-hls_playlist", "1",
		"-adaptation_sets", "id=0,streams=v id=1,streams=a", filepath.Join(dir, "live.mpd"))
	mpd, err := os.ReadFile(filepath.Join(dir, "live.mpd"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`availabilityStartTime="([^"]+)"`).FindSubmatch(mpd)
	if m == nil {
		t.Fatalf("ffmpeg's live MPD has no availabilityStartTime:\n%s", mpd)
	}
	ast, err := time.Parse(time.RFC3339Nano, string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/live/", http.StripPrefix("/live/", http.FileServer(http.Dir(dir))))
	mux.Handle("/", web.Handler(web.Config{Self: "page", ModulesDir: webModulesForTest(t), Logger: discard()}))
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	return page.URL, ast
}

// TestBrowserCatchesUpWithTheLiveEdge: with ?catchup=1.5, each engine
// wins back a pause on a live stream by playing faster, as deepcast play
// -catchup does, back to about where it played before; without it,
// dash.js stays as far behind as the pause put it.
func TestBrowserCatchesUpWithTheLiveEdge(t *testing.T) {
	page, _ := liveStreamBesideThePage(t)
	ctx := browser(t)
	const pause = 4 * time.Second
	for _, c := range []struct {
		engine, manifest string
		catchup          bool
	}{
		{"dashjs", "live.mpd", false}, {"dashjs", "live.mpd", true}, {"hlsjs", "master.m3u8", true}, {"shaka-dash", "live.mpd", true},
		{"shaka-hls", "master.m3u8", true},
	} {
		q := "/?engine=" + c.engine + "&buffer=4&mpd=" + url.QueryEscape(page+"/live/"+c.manifest)
		if c.catchup {
			q += "&catchup=1.5"
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(page+q)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, 40*time.Second, c.engine+" playing a live stream", func(s pageStats) bool { return s.CurrentTime > 2 && s.LiveLatency > 0 })
		time.Sleep(3 * time.Second) // settled where it joined
		before := readStats(t, ctx).LiveLatency
		video := func(call string) {
			if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`void document.getElementById('video').`+call+`()`)); err != nil {
				t.Fatal(err)
			}
		}
		video("pause")
		time.Sleep(pause)
		video("play")
		// Back within a second of where it was, or 20 s after the pause
		// ended (it takes 8 s at 1.5×).
		var after pageStats
		var fastest float64
		var said bool // the page said it played faster
		wait := 20 * time.Second
		if !c.catchup {
			wait = 12 * time.Second
		}
		resumed := time.Now()
		for deadline := resumed.Add(wait); time.Now().Before(deadline); {
			time.Sleep(500 * time.Millisecond)
			after = readStats(t, ctx)
			fastest = max(fastest, after.PlaybackRate)
			text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('s-live').textContent`))
			if err != nil {
				t.Fatal(err)
			}
			said = said || strings.Contains(text, "(playing at 1.5×)")
			if c.catchup && after.LiveLatency < before+1 {
				break
			}
		}
		t.Logf("%s, catch-up %v: %.2f s behind the live edge before a %v pause, %.2f s %.1f s after it; played at up to %.2f×", c.engine, c.catchup, before, pause, after.LiveLatency, time.Since(resumed).Seconds(), fastest)
		switch {
		case len(after.Errors) > 0:
			t.Errorf("%s: page errors %v", c.engine, after.Errors)
		case c.catchup && (after.LiveLatency >= before+1 || fastest <= 1 || fastest > 1.5 || !said):
			t.Errorf("%s with catchup=1.5: %.2f s behind the edge before the pause, still %.2f s 20 s after it; played at up to %.2f× (the page said so: %v)", c.engine, before, after.LiveLatency, fastest, said)
		case !c.catchup && (after.LiveLatency < before+pause.Seconds()-1 || fastest != 1):
			t.Errorf("%s without catch-up: %.2f s behind the edge before the pause, %.2f s after it; played at up to %.2f×", c.engine, before, after.LiveLatency, fastest)
		}
	}
	// A rate no engine plays at is refused, saying so.
	pageRefuses(t, ctx, page, "catchup=3", "catchup=3: want a playback rate above 1, at most 2")
}
