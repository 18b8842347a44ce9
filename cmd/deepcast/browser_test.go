package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/edge/auth"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
	"github.com/deepcast/deepcast/origin"
	"github.com/deepcast/deepcast/web"
)

// chromium is Debian's browser, which `make deps` installs.
const chromium = "/usr/bin/chromium"

// browser starts headless Chromium with the flags this machine needs and a
// fresh profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	return browserWith(t, chromedp.Flag("disable-quic", true))
}

// browserWith is browser with more (or other) flags, such as QUIC's.
func browserWith(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s not found: `make deps` installs it (apt-get install chromium)", chromium)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	return ctx
}

// webSetup is a three-tier chain with the web pages on every node.
type webSetup struct {
	origin, home, deep string
	lib                string
}

func startWebChain(t *testing.T) webSetup {
	t.Helper()
	return startWebChainOn(t, packageClip(t, 24*time.Second, "640x360@1200k,320x180@300k"), chainOptions{})
}

// chainOptions vary startWebChainOn's chain.
type chainOptions struct {
	auth   auth.Checker // the enter-deep node checks tokens with it
	abrDir string       // the pages' ABR core in WebAssembly (web.BuildABR)
	// listPage is the origin's most assets per listing (0: its default).
	listPage int
	// advice is what the enter-deep node tells players (CMSD);
	// homeAdvice what the bring-home node tells it and them.
	advice, homeAdvice edge.AdviceConfig
}

// startWebChainOn is startWebChain on a library, with options.
func startWebChainOn(t *testing.T, lib string, opt chainOptions) webSetup {
	t.Helper()
	modules := webModulesForTest(t)
	// Listeners first, so every page knows every node.
	var lns [3]*httptest.Server
	mux := [3]*swapHandler{{}, {}, {}}
	for i := range lns {
		lns[i] = httptest.NewServer(mux[i])
		t.Cleanup(lns[i].Close)
	}
	nodes := []web.Node{{Name: "origin", Role: "origin", URL: lns[0].URL}, {Name: "home", Role: edge.BringHome, URL: lns[1].URL},
		{Name: "deep", Role: edge.EnterDeep, URL: lns[2].URL}}
	pages := func(self string) http.Handler {
		return web.Handler(web.Config{Self: self, Nodes: nodes, ModulesDir: modules, ABRDir: opt.abrDir, Logger: discard()})
	}
	o, err := origin.New(origin.Config{Library: lib, Logger: discard(), Web: pages("origin"), ListPage: opt.listPage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	mux[0].h = o
	home, err := edge.New(edge.Config{Profile: edge.BringHome, Name: "home", Upstreams: []string{lns[0].URL}, MemBytes: 64 << 20,
		Logger: discard(), Web: pages("home"), Advice: opt.homeAdvice})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(home.Close)
	mux[1].h = home
	deep, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{lns[1].URL}, MemBytes: 64 << 20,
		Logger: discard(), Web: pages("deep"), Auth: opt.auth, Advice: opt.advice})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(deep.Close)
	mux[2].h = deep
	return webSetup{origin: lns[0].URL, home: lns[1].URL, deep: lns[2].URL, lib: lib}
}

// webModulesForTest is web/node_modules, which must be installed.
func webModulesForTest(t *testing.T) string {
	t.Helper()
	modules := filepath.Join(repoRoot(), "web", "node_modules")
	if missing := web.MissingModules(modules); len(missing) > 0 {
		t.Fatalf("web modules missing (%v): `make deps` runs npm ci in web/", missing)
	}
	return modules
}

// packageClip makes a sample of the given length and packages it as "clip"
// with the ladder; it returns the library.
func packageClip(t *testing.T, d time.Duration, ladderSpec string) string {
	t.Helper()
	return packageAssets(t, d, ladderSpec, map[string]string{"clip": ""})
}

// swapHandler lets a server start before its handler exists.
type swapHandler struct{ h http.Handler }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	s.h.ServeHTTP(w, r)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}

// pageStats is window.deepcast as the player page keeps it.
type pageStats struct {
	CurrentTime    float64  `json:"currentTime"`
	DecodedFrames  int      `json:"decodedFrames"`
	Errors         []string `json:"errors"`
	CacheHits      int      `json:"cacheHits"`
	CacheResponses int      `json:"cacheResponses"`
	DownSwitches   int      `json:"downSwitches"`
	UpSwitches     int      `json:"upSwitches"`
	Bitrate        int      `json:"bitrate"`
	// The Sound menu: the audio tracks the player lists, the one playing
	// (an index in AudioTracks), and the audio segments fetched.
	AudioTracks []struct {
		Label, Lang, Role string
	} `json:"audioTracks"`
	AudioTrack   int `json:"audioTrack"`
	SoundFetched []struct {
		Rendition string `json:"rendition"`
		N         int    `json:"n"`
	} `json:"soundFetched"`
	// The Subtitles menu: the tracks listed, the one shown (-1: off), and
	// the cues on screen at media times.
	TextTracks []struct {
		Label, Lang, Role string
	} `json:"textTracks"`
	TextTrack int `json:"textTrack"`
	Cues      []struct {
		T    float64 `json:"t"`
		Text string  `json:"text"`
	} `json:"cues"`
	// LiveLatency is how far behind a live stream's edge the player
	// plays (s), as its engine reckons it; 0 on demand.
	LiveLatency float64 `json:"liveLatency"`
	// PlaybackRate is the video element's (above 1 while catching up).
	PlaybackRate float64 `json:"playbackRate"`
	// Preview is the thumbnail the seek bar shows under the pointer.
	Preview *struct {
		T          float64 `json:"t"`
		URL        string  `json:"url"`
		X, Y, W, H int
	} `json:"preview"`
}

func readStats(t *testing.T, ctx context.Context) pageStats {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[pageStats](`window.deepcast || {}`))
	if err != nil {
		t.Fatalf("read page stats: %v", err)
	}
	return s
}

// waitFor polls the page until cond holds, within limit.
func waitFor(t *testing.T, ctx context.Context, limit time.Duration, what string, cond func(pageStats) bool) pageStats {
	t.Helper()
	deadline := time.Now().Add(limit)
	var s pageStats
	for time.Now().Before(deadline) {
		s = readStats(t, ctx)
		if len(s.Errors) > 0 {
			t.Fatalf("dash.js error while waiting for %s: %v", what, s.Errors)
		}
		if cond(s) {
			return s
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %+v", what, s)
	return s
}

func TestBrowserPlaysThroughEnterDeepAndDashboardShowsHits(t *testing.T) {
	setup := startWebChain(t)
	ctx := browser(t)
	// Small buffer targets so a cap change shows within seconds; start capped.
	page := setup.deep + "/?asset=clip&abr=throughput&buffer=4&cap=400"
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	capSwitches(t, ctx, 400)
	s := waitFor(t, ctx, 60*time.Second, "currentTime past 10 s", func(s pageStats) bool { return s.CurrentTime > 10 })
	if s.DecodedFrames == 0 {
		t.Error("no frames decoded")
	}
	if s.CacheHits == 0 {
		t.Errorf("the page saw no edge hit in %d segment responses", s.CacheResponses)
	}
	if s.LiveLatency != 0 {
		t.Errorf("an on-demand asset %.1f s behind a live edge", s.LiveLatency)
	}
	t.Logf("player: %+v", s)
	// The chart: the bitrate of each segment at its media time (a step
	// every 2 s segment, in order), on an axis with several readable ticks.
	xs, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`window.deepcast.chart[0]`))
	if err != nil || len(xs) < 4 || !slices.IsSorted(xs) || xs[0] != 0 || xs[len(xs)-1] > 24 {
		t.Errorf("chart x values %v (%v): want segment start times from 0", xs, err)
	}
	for _, x := range xs {
		if math.Mod(x, 2) != 0 {
			t.Errorf("chart x value %v is not a segment's start", x)
		}
	}
	ticks, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.deepcastChartTicks()`))
	if err != nil || len(ticks) < 3 || !strings.Contains(strings.Join(ticks, " "), "bit/s") {
		t.Errorf("bitrate axis ticks %q (%v): want three or more, in kbit/s or Mbit/s", ticks, err)
	}
	shot(t, ctx, "player.png")

	// The dashboard shows the enter-deep node's hits.
	if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var hits float64
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(window.deepcastNodes && window.deepcastNodes.deep && window.deepcastNodes.deep.hits) || 0`))
		if err == nil && v > 0 {
			hits = v
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if hits == 0 {
		t.Error("the dashboard shows no hits for the enter-deep node")
	}
	dashboardViewers(t, ctx, setup.deep)
	dashboardSparklines(t, ctx, setup.deep)
	shot(t, ctx, "dashboard.png")
}

// dashboardViewers checks what the enter-deep node read of dash.js's CMCD
// (the page turns it on, with a session id): the page's one session,
// with the buffer and bitrate it reported, in /api/stats and on the
// node's card.
func dashboardViewers(t *testing.T, ctx context.Context, deep string) {
	t.Helper()
	var stats struct {
		Viewers struct {
			Sessions            int
			BufferMedianSeconds float64
			BitrateMeanKbps     float64
		}
	}
	resp, err := http.Get(deep + "/api/stats")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	v := stats.Viewers
	if err != nil || v.Sessions != 1 || v.BufferMedianSeconds <= 0 || v.BitrateMeanKbps <= 0 {
		t.Errorf("the edge's viewers from dash.js's CMCD: %+v (%v), want one session with its buffer and bitrate", v, err)
	}
	var text string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		text, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('.node')].filter((n) => n.textContent.includes('enter-deep')).map((n) => (n.querySelector('.viewers') || {}).textContent || '').join('')`))
		if strings.Contains(text, "1 session") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.Contains(text, "1 session") || !strings.Contains(text, "buffer median") || !strings.Contains(text, "Mbit/s") {
		t.Errorf("the enter-deep card's viewers row says %q, want the page's session with its buffer and bitrate", text)
	}
}

// dashboardSparklines checks the dashboard's last minute of the enter-deep
// node: while a client fetches the manifest through it (hits), every poll
// adds a point to its requests/s, hit-ratio and bytes-served lines, the
// hit ratio of those seconds is 1, and each line is drawn.
func dashboardSparklines(t *testing.T, ctx context.Context, deep string) {
	t.Helper()
	type spark struct {
		History int
		Hits    []float64
		RPS     float64
		Drawn   map[string]int
	}
	const probe = `(() => {
	  const n = window.deepcastNodes && window.deepcastNodes.deep;
	  const h = (n && n.rates && n.rates.history) || [];
	  const drawn = {};
	  for (const el of document.querySelectorAll('.spark')) {
	    if (!el.closest('.node') || !el.closest('.node').textContent.includes('enter-deep')) continue;
	    const pts = [...el.querySelectorAll('polyline')].reduce((a, l) => a + l.getAttribute('points').trim().split(' ').length, 0);
	    drawn[el.dataset.series] = pts + el.querySelectorAll('circle').length;
	  }
	  return { History: h.length, Hits: h.filter((p) => p.hit !== null).map((p) => p.hit), RPS: Math.max(0, ...h.map((p) => p.rps)), Drawn: drawn };
	})()`
	client := &http.Client{Timeout: 5 * time.Second}
	var got spark
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		// The manifest, cached at the edge since the page played it: a hit.
		if resp, err := client.Get(deep + "/vod/clip/manifest.mpd"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		v, err := chromedp.Run(ctx, chromedp.Evaluate[spark](probe))
		if err == nil {
			got = v
			if got.History >= 3 && len(got.Hits) >= 2 && got.Drawn["rps"] >= 3 && got.Drawn["hit"] >= 2 && got.Drawn["out"] >= 3 {
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got.History < 3 || got.Drawn["rps"] != got.History || got.Drawn["out"] != got.History || got.Drawn["hit"] != len(got.Hits) {
		t.Errorf("the deep node's last minute: %d polls kept, lines drawn with %v points, want 3 or more and one point a poll (hit ratio: one a poll with lookups, %d)", got.History, got.Drawn, len(got.Hits))
	}
	if got.RPS <= 0 {
		t.Errorf("the deep node's requests/s line peaks at %v while a client fetched through it", got.RPS)
	}
	for _, h := range got.Hits[max(0, len(got.Hits)-2):] {
		if h != 1 {
			t.Errorf("hit ratio %v in a second when every lookup was of a cached manifest, want 1 (all %v)", h, got.Hits)
		}
	}
}

// capSwitches checks the page's player against a bitrate cap: it starts
// below capKbps (the page was opened with that cap), switches up when the
// cap is lifted and down when it is set again.
func capSwitches(t *testing.T, ctx context.Context, capKbps int) {
	t.Helper()
	waitFor(t, ctx, 40*time.Second, "playback to start at the capped rendition", func(s pageStats) bool {
		return s.CurrentTime > 1 && s.Bitrate > 0 && s.Bitrate < capKbps
	})
	setCap := func(kbps int) {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`window.deepcastSetCap(%d)`, kbps))); err != nil {
			t.Fatal(err)
		}
	}
	setCap(-1)
	waitFor(t, ctx, 30*time.Second, "a switch up after the cap is lifted", func(s pageStats) bool { return s.UpSwitches >= 1 })
	setCap(capKbps)
	waitFor(t, ctx, 30*time.Second, "a switch down after the cap is lowered", func(s pageStats) bool { return s.DownSwitches >= 1 })
}

// shot saves a screenshot when DEEPCAST_SCREENSHOTS names a folder (the
// README's images are made this way).
func shot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("DEEPCAST_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Error(err)
	}
}

// startDemo runs `deepcast demo` with args from the repository root
// until it serves (3 minutes at most), killed when the test ends if still
// running; done reports its exit.
func startDemo(t *testing.T, bin string, args ...string) (*exec.Cmd, *mediatest.Capture, <-chan error) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"demo"}, args...)...)
	cmd.Dir = repoRoot()
	out := &mediatest.Capture{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(out.String(), "serving; Ctrl-C") {
		if time.Now().After(deadline) {
			t.Fatalf("demo %v did not come up:\n%s", args, out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("demo %v exited early: %v\n%s", args, err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return cmd, out, done
}

func TestDemoServesEveryEnterDeepNodeAndStopsOnSIGINT(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cmd, out, done := startDemo(t, bin, "-dir", dir, "-sample-duration", "6s", "-sample-size", "320x180", "-play", "2s")
	// The ABR session's own figures, over HTTPS, no percentiles of one value.
	if !strings.Contains(out.String(), "robustmpc: QoE ") || !strings.Contains(out.String(), "over HTTP/") || strings.Contains(out.String(), "p10") {
		t.Errorf("demo's session summary:\n%s", out.String())
	}
	var deeps []string
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == edge.EnterDeep && strings.HasPrefix(f[2], "https://") {
			deeps = append(deeps, f[2])
		}
	}
	if len(deeps) != 2 {
		t.Fatalf("want two enter-deep nodes in the table:\n%s", out.String())
	}
	frames := 6 * 30
	// What viewers see is HTTPS, with the demo's own CA.
	ca := filepath.Join(dir, "tls", "ca.pem")
	client := clientFor(t, ca, nil, false)
	for _, d := range deeps {
		resp, err := client.Get(d + "/")
		if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.HasPrefix(resp.Header.Get("Alt-Svc"), "h3=") {
			t.Errorf("%s: player page: %v %v", d, err, resp)
		} else {
			resp.Body.Close()
		}
		checkDecodes(t, d+"/vod/sample/manifest.mpd", frames, "-ca_file", ca)
	}
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo exit: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("demo still running 10 s after SIGINT")
	}
	if !strings.Contains(out.String(), "all nodes stopped") {
		t.Errorf("no clean shutdown message:\n%s", out.String())
	}
	t.Logf("stopped %s after SIGINT", time.Since(start).Round(time.Millisecond))
	if procs, _ := exec.Command("pgrep", "-f", dir).Output(); len(strings.TrimSpace(string(procs))) > 0 {
		t.Errorf("processes left behind: %s", procs)
	}
	// A second run reuses the packaged sample.
	again := exec.Command(bin, "demo", "-dir", dir, "-play", "0")
	again.Dir = repoRoot()
	out2 := &mediatest.Capture{}
	again.Stdout, again.Stderr = out2, out2
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- again.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out2.String(), "serving; Ctrl-C") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	again.Process.Signal(os.Interrupt)
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		// Its goroutines say where it is stuck.
		again.Process.Signal(syscall.SIGQUIT)
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			again.Process.Kill()
			<-waited
		}
		t.Fatalf("the second demo run still ran 20 s after SIGINT:\n%s", out2.String())
	}
	if !strings.Contains(out2.String(), "reusing the packaged sample") {
		t.Errorf("second run did not reuse the sample:\n%s", out2.String())
	}
}

func checkDecodes(t *testing.T, url string, frames int, inputOpts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"-hide_banner", "-nostdin", "-v", "verbose"}, inputOpts...)
	out, err := exec.CommandContext(ctx, "ffmpeg", append(args, "-i", url, "-map", "0", "-f", "null", "-")...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v", url, err)
	}
	want := fmt.Sprintf("%d frames decoded", frames)
	if !strings.Contains(string(out), want) {
		t.Errorf("ffmpeg through %s did not decode %d frames", url, frames)
	}
}

// TestBrowserContentSteeringMovesOffADeadEdge: dash.js (DASH) and hls.js
// (HLS) play through the router's content steering, start on edge A, and
// move to edge B without a stall when A dies.
func TestBrowserContentSteeringMovesOffADeadEdge(t *testing.T) {
	for _, c := range []struct{ engine, manifest string }{{"dashjs", "manifest.mpd"}, {"hlsjs", "master.m3u8"}} {
		t.Run(c.engine, func(t *testing.T) { testSteering(t, c.engine, c.manifest) })
	}
}

func testSteering(t *testing.T, engine, manifestFile string) {
	modules := webModulesForTest(t)
	lib := packageClip(t, 30*time.Second, "640x360@900k,320x180@300k")
	ots := httptest.NewServer(startOrigin(t, lib))
	t.Cleanup(ots.Close)
	// Two edges in front of the origin; the page itself comes from B, which
	// stays up and runs behind serve(), as deepcast edge does. A runs on
	// httptest so that it can die abruptly, connections and all.
	mk := func(name string) *edge.Node {
		n, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: name, Upstreams: []string{ots.URL}, MemBytes: 64 << 20, Logger: discard(),
			Web: web.Handler(web.Config{Self: name, ModulesDir: modules, Logger: discard()})})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		return n
	}
	a := httptest.NewServer(mk("edge-a"))
	t.Cleanup(a.Close)
	nodeB := mk("edge-b")
	bURL := serveLoopback(t, nodeB)
	router := startRouter(t, 500*time.Millisecond, fmt.Sprintf(`edges:
  - {name: edge-a, url: %s, addresses: [127.0.0.2], profile: enter-deep, subnets: [127.0.0.0/8]}
  - {name: edge-b, url: %s, addresses: [127.0.0.3], profile: bring-home}
`, a.URL, bURL))

	bctx := browser(t)
	mpd := router + "/vod/clip/" + manifestFile + "?route=steering"
	if err := chromedp.Do(bctx, chromedp.Navigate(bURL+"/?buffer=6&engine="+engine+"&mpd="+url.QueryEscape(mpd))); err != nil {
		t.Fatal(err)
	}
	servedBy := func() []string {
		v, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`(window.deepcast.recent || []).filter(r => r.cache).map(r => r.cache.node)`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	waitFor(t, bctx, 40*time.Second, "playback past 8 s", func(s pageStats) bool { return s.CurrentTime > 8 })
	if nodes := servedBy(); len(nodes) == 0 || nodes[len(nodes)-1] != "edge-a" {
		t.Fatalf("playback did not start on edge A: %v", nodes)
	}
	// Edge A dies.
	a.CloseClientConnections()
	a.Close()
	s := waitFor(t, bctx, 60*time.Second, "currentTime past 20 s after edge A died", func(s pageStats) bool { return s.CurrentTime > 20 })
	nodes := servedBy()
	if len(nodes) == 0 || nodes[0] != "edge-b" {
		t.Errorf("latest segments not from edge B: %v", nodes)
	}
	maxStall, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`window.deepcast.maxStall || 0`))
	if err != nil {
		t.Fatal(err)
	}
	if maxStall > 2 {
		t.Errorf("a stall of %.1f s while moving to edge B", maxStall)
	}
	if len(s.Errors) > 0 {
		t.Errorf("the page reported errors: %v", s.Errors)
	}
	if engine != "dashjs" {
		t.Logf("moved to edge B; longest stall %.2f s; %+v", maxStall, s)
		return
	}
	// B ran behind serve()'s front. Our page has dash.js send CMCD in the
	// query of every request, and the front answers those itself: B's
	// misses on a goroutine (waited), its hits on the loops. The page's
	// own files went to net/http, and Chromium reused those connections
	// for segments: the front took them back.
	front, lines := frontMetrics(t, bURL)
	if front["deepcast_fastpath_answered_total"] < 2 || front["deepcast_fastpath_waited_total"] == 0 ||
		front["deepcast_fastpath_takebacks_total"] == 0 {
		t.Errorf("edge B's front: want dash.js's segments answered by it, not handed to net/http:\n%s", lines)
	}
	t.Logf("edge B's front:\n%s", lines)
	t.Logf("moved to edge B; longest stall %.2f s; %+v", maxStall, s)
}

// TestBrowserSendsATokenHeaderThroughTheRouter: a page on another origin
// asks the router for a manifest with its Common Access Token in the
// CTA-Common-Access-Token header (CTA-5007's header form) and an
// If-None-Match. The router's preflight must allow what the edge's does,
// since the browser takes the request, headers and all, on to the edge
// the 302 names: there the token is checked. Without the token the edge
// refuses.
func TestBrowserSendsATokenHeaderThroughTheRouter(t *testing.T) {
	lib := packageClip(t, 4*time.Second, "320x180@300k")
	key, _ := auth.NewKey("viewer-key", "HS256")
	checker, err := auth.NewCAT(auth.CATConfig{Keys: []*auth.Key{key}, Issuer: "deepcast-test"})
	if err != nil {
		t.Fatal(err)
	}
	setup := startWebChainOn(t, lib, chainOptions{auth: checker})
	router := startRouter(t, 500*time.Millisecond, fmt.Sprintf("edges:\n  - {name: deep, url: %s, addresses: [127.0.0.2], profile: enter-deep, subnets: [127.0.0.0/8]}\n", setup.deep))
	tok, err := auth.Mint(key, auth.TokenSpec{Issuer: "deepcast-test", Expires: time.Now().Add(5 * time.Minute), PathPrefix: "/vod/clip/"})
	if err != nil {
		t.Fatal(err)
	}
	// The router sends viewers to the edge once its first health check is in.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := noFollow.Get(router + "/vod/clip/manifest.mpd")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the router still answers %d after 10 s", resp.StatusCode)
		}
	}
	ctx := browser(t)
	// Any page of the edge's origin will do: the router is another origin.
	if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/healthz")); err != nil {
		t.Fatal(err)
	}
	manifest := router + "/vod/clip/manifest.mpd"
	for _, c := range []struct {
		name, headers, want string
	}{
		{"token in the header", fmt.Sprintf(`{"CTA-Common-Access-Token": %q, "If-None-Match": "\"other\""}`, tok), "200 " + setup.deep + "/vod/clip/manifest.mpd"},
		{"no token", `{"If-None-Match": "\"other\""}`, "401 " + setup.deep + "/vod/clip/manifest.mpd"},
	} {
		js := fmt.Sprintf(`fetch(%q, {headers: %s}).then(r => r.status + " " + r.url, e => "failed: " + e)`, manifest, c.headers)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: fetch through the router gave %q, want %q", c.name, got, c.want)
		}
	}
}

// TestBrowserPlaysFromItsOwnNodeUnderAnotherName: an edge's page opened
// under a name the node list does not know (here localhost for 127.0.0.1,
// in production a load balancer's name) still plays from that edge, not
// from the first node of the list, the origin.
func TestBrowserPlaysFromItsOwnNodeUnderAnotherName(t *testing.T) {
	setup := startWebChain(t)
	ctx := browser(t)
	page := strings.Replace(setup.deep, "127.0.0.1", "localhost", 1) + "/?asset=clip&autoplay=0"
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	var got string
	for deadline := time.Now().Add(20 * time.Second); got == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('asset').options.length ? document.getElementById('node').value : ""`))
		if err != nil {
			t.Fatal(err)
		}
		got = v
	}
	if got != setup.deep {
		t.Errorf("the deep edge's page, opened as %s, plays from %q, want the deep edge %s", page, got, setup.deep)
	}
}

// TestBrowserOpensAnAssetPastTheFirstListingPage: a listing gives one
// page of the library; the player page opened for an asset past it (a
// link into a large library) still offers and plays that asset.
func TestBrowserOpensAnAssetPastTheFirstListingPage(t *testing.T) {
	lib := packageClip(t, 8*time.Second, "320x180@300k")
	storetest.CopyAssetAs(t, store.Folder{Root: lib}, lib, "clip", "aaa") // first in name order: the one asset of page 1
	storetest.CopyAssetAs(t, store.Folder{Root: lib}, lib, "clip", "zzz") // the last page
	setup := startWebChainOn(t, lib, chainOptions{listPage: 1})
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/?asset=clip&buffer=4")); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, ctx, 60*time.Second, "clip played to its end", func(s pageStats) bool { return s.CurrentTime > 7 })
	offered, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.getElementById('asset').options].map(o => o.value)`))
	if err != nil {
		t.Fatal(err)
	}
	chosen, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('asset').value`))
	if err != nil {
		t.Fatal(err)
	}
	if chosen != "clip" || !slices.Equal(offered, []string{"clip", "aaa", "/more"}) || s.DecodedFrames == 0 || len(s.Errors) > 0 {
		t.Errorf("asset chosen %q of %v, %d frames decoded, errors %v; want clip of [clip aaa /more], played", chosen, offered, s.DecodedFrames, s.Errors)
	}
	// The list's last entry fetches the pages after the first: past the
	// page that holds only clip (listed already) to zzz, the last.
	type list struct {
		Offered []string
		Chosen  string
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById('asset'); s.value = '/more'; s.dispatchEvent(new Event('change')); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	want := list{Offered: []string{"clip", "aaa", "zzz"}, Chosen: "zzz"}
	var got list
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = chromedp.Run(ctx, chromedp.Evaluate[list](`({Offered: [...document.getElementById('asset').options].map(o => o.value), Chosen: document.getElementById('asset').value})`)); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got.Offered, want.Offered) && got.Chosen == want.Chosen {
			return
		}
	}
	t.Errorf("after choosing more assets: %+v, want %+v", got, want)
}

// TestBrowserDashboardTellsPrivateFromDown: on the dashboard, a node that
// is up but keeps its stats for operators (-metrics-token) shows as
// private, not down; a node that does not answer shows as down.
func TestBrowserDashboardTellsPrivateFromDown(t *testing.T) {
	modules := webModulesForTest(t)
	ots := httptest.NewServer(startOrigin(t, mediatest.CopyLibrary(t)))
	t.Cleanup(ots.Close)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	// A node whose stats put markup where figures belong, in every kind
	// of card: the page shows it as text, never runs it.
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "application/json")
		const bad = `"<img src=x onerror=\"window.pwned=1\">"`
		fmt.Fprintf(w, `{"requests":%[1]s,"assets":%[1]s,"jobsRunning":%[1]s,"heldBack":%[1]s,"hits":%[1]s,"misses":%[1]s,"stale":%[1]s,"coalesced":%[1]s,"prefetches":%[1]s,"hitRatio":%[1]s,"strategy":%[1]s,"edges":[{"name":%[1]s,"up":true,"load":%[1]s}]}`, bad)
	}))
	t.Cleanup(hostile.Close)
	ln := httptest.NewUnstartedServer(nil)
	edgeURL := "http://" + ln.Listener.Addr().String()
	nodes := []web.Node{{Name: "origin", Role: "origin", URL: ots.URL}, {Name: "deep", Role: edge.EnterDeep, URL: edgeURL},
		{Name: "gone", Role: edge.EnterDeep, URL: dead.URL},
		{Name: "bad-origin", Role: "origin", URL: hostile.URL}, {Name: "bad-edge", Role: edge.EnterDeep, URL: hostile.URL},
		{Name: "bad-router", Role: "router", URL: hostile.URL}}
	n, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{ots.URL}, MemBytes: 32 << 20,
		MetricsToken: "ops-secret", Logger: discard(), Web: web.Handler(web.Config{Self: "deep", Nodes: nodes, ModulesDir: modules, Logger: discard()})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	ln.Config.Handler = n
	ln.Start()
	t.Cleanup(ln.Close)

	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(edgeURL+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		Origin, Private, Down, Hostile, Ran bool
		Markup                              int
	}
	var got seen
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		got, err = chromedp.Run(ctx, chromedp.Evaluate[seen](`(() => { const d = window.deepcastNodes || {};
			return {Origin: !!(d.origin && d.origin.requests !== undefined), Private: !!(d.deep && d.deep.private && !d.deep.down), Down: !!(d.gone && d.gone.down),
				Hostile: !!(d['bad-origin'] && d['bad-edge'] && d['bad-router']) && document.getElementById('nodes').children.length === 6,
				Ran: window.pwned !== undefined, Markup: document.querySelectorAll('#nodes img').length}; })()`))
		if err != nil {
			t.Fatal(err)
		}
		if got.Origin && got.Private && got.Down && got.Hostile {
			break
		}
	}
	if !got.Origin || !got.Private || !got.Down || !got.Hostile {
		t.Errorf("dashboard: origin with stats %v, token-guarded edge private %v, dead node down %v, hostile nodes shown %v; want all true", got.Origin, got.Private, got.Down, got.Hostile)
	}
	if got.Ran || got.Markup > 0 {
		t.Errorf("a node's stats became markup on the dashboard: %d img elements, script ran %v", got.Markup, got.Ran)
	}
}

// TestBrowserPlaysHLS: hls.js and Shaka play the HLS playlists (and Shaka
// the MPD) through an enter-deep edge start to finish: both renditions
// reached, switches when the page caps and uncaps the bitrate, frames
// decoded, no errors, and edge hits.
func TestBrowserPlaysHLS(t *testing.T) {
	setup := startWebChain(t)
	for _, engine := range []string{"hlsjs", "shaka-hls", "shaka-dash"} {
		t.Run(engine, func(t *testing.T) {
			ctx := browser(t)
			reported := cmcdMediaRequests(t, setup.deep)
			// HLS variants carry their audio in BANDWIDTH: 700 kbit/s
			// holds the low rung only.
			page := setup.deep + "/?asset=clip&buffer=4&cap=700&engine=" + engine
			if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
				t.Fatal(err)
			}
			capSwitches(t, ctx, 700)
			// To the end (24 s), both renditions seen.
			s := waitFor(t, ctx, 60*time.Second, "playback to the end", func(s pageStats) bool { return s.CurrentTime > 23 })
			heights, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[...new Set(window.deepcast.renditions.map(r => r.height))]`))
			if err != nil {
				t.Fatal(err)
			}
			if len(heights) < 2 {
				t.Errorf("renditions shown: heights %v, want both", heights)
			}
			if s.DecodedFrames == 0 || len(s.Errors) > 0 || s.CacheHits == 0 {
				t.Errorf("decoded %d frames, errors %v, %d hits in %d segment responses", s.DecodedFrames, s.Errors, s.CacheHits, s.CacheResponses)
			}
			// Each engine sends CMCD (the page turns it on), which the
			// edge reads: with every segment at least (12 of video, 12
			// of sound; Shaka leaves ot out of some, so all but the
			// playlists' count).
			if got := cmcdMediaRequests(t, setup.deep) - reported; got < 24 {
				t.Errorf("the edge read CMCD from %d segment requests of %s, want one a segment (24 or more)", got, engine)
			}
			t.Logf("%s: %+v, heights %v", engine, s, heights)
		})
	}
}

// TestBrowserKeepsToTheEdgesSuggestedBitrate: an enter-deep edge that
// suggests 700 kbit/s (CMSD mb, video and sound together) holds dash.js,
// hls.js and Shaka to the 300k rendition once its first answers are in,
// where on loopback each takes the 1200k one within seconds (as
// TestBrowserPlaysHLS sees); the page shows the suggestion. dash.js and
// Shaka keep to it themselves (the page turns applyMb on in dash.js);
// hls.js reads no CMSD, and the page caps it. dash.js keeps to the same
// suggestion made by the bring-home parent of an enter-deep node that
// says nothing of its own (without the deep node passing it on, dash.js
// takes the 1200k rendition from its second segment).
func TestBrowserKeepsToTheEdgesSuggestedBitrate(t *testing.T) {
	lib := packageClip(t, 24*time.Second, "640x360@1200k,320x180@300k")
	setup := startWebChainOn(t, lib, chainOptions{advice: edge.AdviceConfig{MaxBitrateKbps: 700}})
	// The same suggestion made by the bring-home parent of an enter-deep
	// node that has nothing of its own to say: the deep node passes it on.
	parented := startWebChainOn(t, lib, chainOptions{homeAdvice: edge.AdviceConfig{MaxBitrateKbps: 700}})
	for _, tc := range []struct {
		name, engine string
		setup        webSetup
	}{
		{"dashjs", "dashjs", setup}, {"hlsjs", "hlsjs", setup}, {"shaka-dash", "shaka-dash", setup},
		{"dashjs-behind-a-parent", "dashjs", parented},
	} {
		engine := tc.engine
		t.Run(tc.name, func(t *testing.T) {
			ctx := browser(t)
			if err := chromedp.Do(ctx, chromedp.Navigate(tc.setup.deep+"/?asset=clip&buffer=4&engine="+engine)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, 60*time.Second, "12 s played", func(s pageStats) bool { return s.CurrentTime > 12 })
			type pageAdvice struct {
				ServerCap int          `json:"serverCap"`
				Chart     [2][]float64 `json:"chart"` // media time (s), kbit/s of each video segment fetched
				Shown     string       `json:"shown"`
			}
			page, err := chromedp.Run(ctx, chromedp.Evaluate[pageAdvice](`({serverCap: deepcast.serverCap, chart: deepcast.chart,
				shown: document.getElementById('s-cmsd').textContent})`))
			if err != nil {
				t.Fatal(err)
			}
			var over []string
			for i, at := range page.Chart[0] {
				// The first two segments may be asked for before any
				// answer carried the suggestion.
				if at >= 4 && page.Chart[1][i] > 700 {
					over = append(over, fmt.Sprintf("%.0f kbit/s at %.0f s", page.Chart[1][i], at))
				}
			}
			if len(page.Chart[0]) < 5 || len(over) > 0 {
				t.Errorf("%s fetched past the edge's 700 kbit/s: %v (of %d video segments)", engine, over, len(page.Chart[0]))
			}
			if page.ServerCap != 700 || !strings.Contains(page.Shown, "700 kbit/s") {
				t.Errorf("the page read a suggestion of %d kbit/s and shows %q; want 700", page.ServerCap, page.Shown)
			}
			t.Logf("%s: %d video segments %v, the page shows %q", engine, len(page.Chart[0]), page.Chart[1], page.Shown)
		})
	}
	// The dashboard says what the enter-deep node tells its players, and
	// when that is its parent's word (which it keeps to for 30 s after its
	// latest fetch from the parent: the parented chain comes first, just
	// after its player fetched).
	for _, tc := range []struct {
		deep, want string
	}{{parented.deep, "at most 0.70 Mbit/s · as its parent suggests"}, {setup.deep, "at most 0.70 Mbit/s"}} {
		ctx := browser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate(tc.deep+"/dashboard")); err != nil {
			t.Fatal(err)
		}
		var text string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !strings.Contains(text, tc.want); time.Sleep(250 * time.Millisecond) {
			text, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('.node')].filter((n) => n.textContent.includes('enter-deep')).map((n) => (n.querySelector('.advice') || {}).textContent || '').join('')`))
		}
		if !strings.Contains(text, tc.want) {
			t.Errorf("the enter-deep card's CMSD row says %q, want %q", text, tc.want)
		}
	}
}

// cmcdMediaRequests reads from an edge's /metrics how many requests
// carried CMCD, but for manifests and playlists (ot=m).
func cmcdMediaRequests(t *testing.T, edgeURL string) int {
	t.Helper()
	page := scrape(t, edgeURL+"/metrics")
	if !strings.Contains(page, "deepcast_edge_cmcd_requests_total{") {
		t.Fatalf("/metrics of %s has no CMCD requests series", edgeURL)
	}
	n := 0.0
	for _, ot := range []string{"a", "v", "av", "i", "c", "tt", "k", "o", "none", "other"} {
		n += metricValue(page, `deepcast_edge_cmcd_requests_total{ot="`+ot+`"}`)
	}
	return int(n)
}

// TestBrowserShowsStreamDataAsText: the player page plays a stream from a
// server it does not know (?mpd=) whose answers carry markup in their
// Cache-Status; the page shows that text in its segment table and never
// runs it.
func TestBrowserShowsStreamDataAsText(t *testing.T) {
	o, err := origin.New(origin.Config{Library: mediatest.CopyLibrary(t), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	const payload = `<img src=x onerror="window.deepcastInjected=1">`
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "deep; hit, "+payload)
		o.ServeHTTP(w, r)
	}))
	t.Cleanup(hostile.Close)
	page := httptest.NewServer(web.Handler(web.Config{Self: "page", ModulesDir: webModulesForTest(t), Logger: discard()}))
	t.Cleanup(page.Close)

	ctx := browser(t)
	mpd := hostile.URL + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL+"/?buffer=4&mpd="+url.QueryEscape(mpd))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 40*time.Second, "segments with the hostile Cache-Status", func(s pageStats) bool { return s.CacheResponses >= 2 })
	type shown struct {
		Injected bool   `json:"injected"`
		Images   int    `json:"images"`
		Text     string `json:"text"`
	}
	deadline := time.Now().Add(10 * time.Second)
	var got shown
	for time.Now().Before(deadline) {
		got, err = chromedp.Run(ctx, chromedp.Evaluate[shown](`({injected: !!window.deepcastInjected,
			images: document.querySelectorAll('#segments img').length, text: document.getElementById('segments').textContent})`))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got.Text, payload) || got.Injected || got.Images > 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got.Injected || got.Images > 0 || !strings.Contains(got.Text, payload) {
		t.Errorf("segment table: injected %v, %d img elements, text %q; want the header's text shown as text", got.Injected, got.Images, got.Text)
	}
}

// networkLog records what a page's requests met that a test wants to see
// when the page misbehaves: requests that failed (with Chromium's reason),
// answers of 400 or more, and what the browser logged as errors besides,
// each with the time since the log began.
type networkLog struct {
	mu     sync.Mutex
	start  time.Time
	urls   map[network.RequestID]string
	events []string
}

// watchNetwork starts a networkLog for the page of ctx.
func watchNetwork(t *testing.T, ctx context.Context) *networkLog {
	t.Helper()
	l := &networkLog{start: time.Now(), urls: map[network.RequestID]string{}}
	err := chromedp.Listen(ctx, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		at := time.Since(l.start).Round(time.Millisecond)
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			l.urls[e.RequestID] = e.Request.URL
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 {
				l.events = append(l.events, fmt.Sprintf("%v %s: HTTP %d over %s", at, e.Response.URL, int(e.Response.Status), e.Response.Protocol))
			}
		case *network.EventLoadingFailed:
			l.events = append(l.events, fmt.Sprintf("%v %s: %s (canceled %v, blocked %q)", at, l.urls[e.RequestID], e.ErrorText, e.Canceled, e.BlockedReason))
		case *cdplog.EventEntryAdded:
			// What the browser itself logs as an error: a script it
			// refused to run (its MIME type, say), a security violation.
			if e.Entry != nil && e.Entry.Level == cdplog.EntryLevelError && e.Entry.Source != cdplog.EntrySourceNetwork {
				l.events = append(l.events, fmt.Sprintf("%v browser %s: %s (%s)", at, e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("watch the page's network: %v", err)
	}
	return l
}

// String lists what was recorded, one event a line.
func (l *networkLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == 0 {
		return "no failed request"
	}
	return strings.Join(l.events, "\n")
}

// TestBrowserChoosesSoundAndSubtitles: a film with a French dub, its
// English sound, a commentary, an audio description and two subtitle
// tracks plays through an enter-deep edge in each of the page's players
// (DASH and HLS), starting with the main English sound in stereo and no
// subtitles; the Sound menu lists every sound (with DASH, the English
// 5.1 too, which plays when chosen), and choosing French there fetches
// and plays the French sound from then on; the Subtitles menu lists both
// tracks, and choosing English shows its cues at their times.
func TestBrowserChoosesSoundAndSubtitles(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "lib")
	ladder, _ := media.ParseLadder("320x180@300k")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := media.Package(ctx, []string{mediatest.Film(t, t.TempDir(), 16*time.Second)},
		media.PackageOptions{Library: lib, Name: "film", Ladder: ladder}); err != nil {
		t.Fatal(err)
	}
	setup := startWebChainOn(t, lib, chainOptions{})
	fetched := func(s pageStats, rendition string) int {
		n := 0
		for _, f := range s.SoundFetched {
			if f.Rendition == rendition {
				n++
			}
		}
		return n
	}
	for _, engine := range []string{"dashjs", "hlsjs", "shaka-dash", "shaka-hls"} {
		t.Run(engine, func(t *testing.T) {
			ctx := browser(t)
			if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/?asset=film&buffer=4&engine="+engine)); err != nil {
				t.Fatal(err)
			}
			// HLS offers the 5.1 sound in DASH alone (manifest.hlsSounds).
			sounds := len(mediatest.FilmSounds)
			if strings.Contains(engine, "hls") {
				sounds--
			}
			s := waitFor(t, ctx, 60*time.Second, "the sounds listed and the first fetched", func(s pageStats) bool {
				return len(s.AudioTracks) == sounds && len(s.SoundFetched) > 0 && s.AudioTrack >= 0 && s.CurrentTime > 1
			})
			if first := s.SoundFetched[0].Rendition; first != "audio-en-128k" || s.AudioTracks[s.AudioTrack].Lang != "en" {
				t.Errorf("started with %s (menu at %+v), want the main English sound", first, s.AudioTracks[s.AudioTrack])
			}
			french, surround := -1, -1
			labels := map[string]bool{}
			for i, a := range s.AudioTracks {
				labels[a.Label] = true
				if a.Lang == "fr" {
					french = i
				}
				if a.Label == "English (5.1)" {
					surround = i
				}
			}
			if fetched(s, "audio-en-surround-384k") > 0 {
				t.Errorf("fetched the 5.1 sound before it was chosen")
			}
			if sounds == len(mediatest.FilmSounds) {
				// The viewer picks English 5.1: fetched and played.
				if surround < 0 {
					t.Fatalf("no English 5.1 in the menu: %+v", s.AudioTracks)
				}
				chooseInMenu(t, ctx, "sound", surround, sounds)
				from := s.CurrentTime
				s = waitFor(t, ctx, 60*time.Second, "the 5.1 sound fetched and played", func(s pageStats) bool {
					return fetched(s, "audio-en-surround-384k") >= 2 && s.AudioTrack == surround && s.CurrentTime > from+2
				})
			}
			if french < 0 {
				t.Fatalf("no French sound in the menu: %+v", s.AudioTracks)
			}
			if !labels["Director's commentary"] || !labels["français"] {
				t.Errorf("the menu's labels are %v, want the manifest's", labels)
			}
			// The viewer picks French in the menu.
			chooseInMenu(t, ctx, "sound", french, sounds)
			from := s.CurrentTime
			s = waitFor(t, ctx, 60*time.Second, "the French sound fetched and played", func(s pageStats) bool {
				return fetched(s, "audio-fr-128k") >= 2 && s.AudioTrack == french && s.CurrentTime > from+3
			})
			if len(s.Errors) > 0 || s.DecodedFrames == 0 {
				t.Errorf("errors %v, %d frames decoded", s.Errors, s.DecodedFrames)
			}
			if s.TextTrack != -1 || len(s.Cues) > 0 || len(s.TextTracks) != len(mediatest.FilmSubtitles) {
				t.Fatalf("subtitles: %d tracks listed (%+v), track %d shown, cues %+v; want %d listed, none shown",
					len(s.TextTracks), s.TextTracks, s.TextTrack, s.Cues, len(mediatest.FilmSubtitles))
			}
			english := slices.IndexFunc(s.TextTracks, func(x struct{ Label, Lang, Role string }) bool { return x.Lang == "en" })
			if english < 0 {
				t.Fatalf("no English subtitles in the menu: %+v", s.TextTracks)
			}
			chooseInMenu(t, ctx, "subtitles", english, len(mediatest.FilmSubtitles)+1)
			s = waitFor(t, ctx, 30*time.Second, "English subtitles on screen", func(s pageStats) bool { return len(s.Cues) >= 8 && s.TextTrack == english })
			for _, c := range s.Cues {
				// Cue n covers [2(n-1), 2n) s of the film (23 ms later in
				// its Matroska source); the page samples four times a
				// second, while cues change on the player's clock.
				var n int
				if _, err := fmt.Sscanf(c.Text, "English %d", &n); err != nil || c.T < float64(2*(n-1))-0.3 || c.T > float64(2*n)+0.3 {
					t.Errorf("at %.2f s the screen reads %q, want English %d", c.T, c.Text, int(c.T/2)+1)
				}
			}
			t.Logf("%s: menu %+v; fetched en %d, fr %d, others %d", engine, s.AudioTracks, fetched(s, "audio-en-128k"), fetched(s, "audio-fr-128k"),
				len(s.SoundFetched)-fetched(s, "audio-en-128k")-fetched(s, "audio-fr-128k"))
		})
	}
	// A link can ask for both: ?sound=fr&subtitles=en.
	t.Run("link", func(t *testing.T) {
		ctx := browser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/?asset=film&buffer=4&sound=fr&subtitles=en")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, 60*time.Second, "the French sound and English subtitles the link asks for", func(s pageStats) bool {
			return s.AudioTrack >= 0 && s.AudioTracks[s.AudioTrack].Lang == "fr" && fetched(s, "audio-fr-128k") > 0 &&
				len(s.Cues) > 0 && strings.HasPrefix(s.Cues[len(s.Cues)-1].Text, "English ")
		})
	})
}

// TestBrowserShowsACopiedTurnedVideoUpright: a phone's portrait video
// stored landscape with a quarter turn, packaged as it is (-copy), plays
// upright in Chromium (its display matrix is in the init segment).
func TestBrowserShowsACopiedTurnedVideoUpright(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "lib")
	if _, err := media.Package(context.Background(), []string{mediatest.Turned(t, t.TempDir())},
		media.PackageOptions{Library: lib, Name: "turned", Copy: true}); err != nil {
		t.Fatal(err)
	}
	setup := startWebChainOn(t, lib, chainOptions{})
	for _, engine := range []string{"dashjs", "hlsjs"} {
		t.Run(engine, func(t *testing.T) {
			ctx := browser(t)
			if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/?asset=turned&engine="+engine)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, 60*time.Second, "playback", func(s pageStats) bool { return s.CurrentTime > 0.5 })
			size, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`(() => { const v = document.querySelector('video'); return [v.videoWidth, v.videoHeight]; })()`))
			if err != nil || len(size) != 2 || size[0] != 180 || size[1] != 320 {
				t.Errorf("the video shows %v (%v), want upright 180x320", size, err)
			}
		})
	}
}

// chooseInMenu picks option value in the page's menu (a select) as a
// viewer does, which must hold options entries.
func chooseInMenu(t *testing.T, ctx context.Context, menu string, value, options int) {
	t.Helper()
	pick := fmt.Sprintf(`(() => { const s = document.getElementById('%s'); s.value = '%d'; s.dispatchEvent(new Event('change')); return s.options.length; })()`, menu, value)
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](pick)); err != nil || n != options {
		t.Fatalf("choosing %d in the %s menu: %d options, want %d (%v)", value, menu, n, options, err)
	}
}

// TestBrowserSeekBarShowsThumbnails: hovering the player page's seek bar
// shows the thumbnail of the time under the pointer, cut from the asset's
// thumbnail tiles (fetched through the enter-deep edge) at the place the
// tile layout gives it, with dash.js and Shaka (DASH and HLS); hls.js
// reads no thumbnails.
func TestBrowserSeekBarShowsThumbnails(t *testing.T) {
	setup := startWebChain(t)
	a, err := media.LoadAsset(filepath.Join(setup.lib, "clip"))
	if err != nil {
		t.Fatal(err)
	}
	th := a.Thumbnails
	if th == nil || th.Interval != 2 || th.Width != 160 || th.Height != 90 || th.Columns != 10 || th.Rows != 2 || len(th.Tiles) != 1 {
		t.Fatalf("thumbnails of the 24 s clip: %+v", th)
	}
	for _, engine := range []string{"dashjs", "shaka-dash", "shaka-hls", "hlsjs"} {
		t.Run(engine, func(t *testing.T) {
			ctx := browser(t)
			if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/?asset=clip&buffer=4&engine="+engine)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, 60*time.Second, "playback", func(s pageStats) bool { return s.CurrentTime > 1 })
			rect, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const r = document.getElementById('scrub').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`))
			if err != nil || len(rect) != 4 || rect[2] <= 0 {
				t.Fatalf("seek bar: %v %v", rect, err)
			}
			// At 12 s (thumbnail 6: the tile's seventh column) and at
			// 23 s (thumbnail 11: second column of the second row).
			for _, c := range []struct {
				at   float64
				x, y int
			}{{12.5, 6 * 160, 0}, {23, 160, 90}} {
				x, y := rect[0]+rect[2]*c.at/24, rect[1]+rect[3]/2
				if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y)); err != nil {
					t.Fatal(err)
				}
				if engine == "hlsjs" {
					time.Sleep(time.Second)
					if s := readStats(t, ctx); s.Preview != nil {
						t.Errorf("a thumbnail in HLS: %+v", s.Preview)
					}
					continue
				}
				s := waitFor(t, ctx, 10*time.Second, fmt.Sprintf("the thumbnail at %.1f s", c.at), func(s pageStats) bool {
					return s.Preview != nil && math.Abs(s.Preview.T-c.at) < 0.5
				})
				p := s.Preview
				if !strings.HasSuffix(p.URL, "/vod/clip/thumbs/1.jpg") || !strings.HasPrefix(p.URL, setup.deep) || p.X != c.x || p.Y != c.y || p.W != 160 || p.H != 90 {
					t.Errorf("at %.1f s the preview is %+v, want thumbs/1.jpg from the edge at %d,%d, 160x90", c.at, *p, c.x, c.y)
				}
				resp, err := http.Get(p.URL)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := jpeg.DecodeConfig(resp.Body)
				resp.Body.Close()
				if err != nil || resp.Header.Get("Content-Type") != "image/jpeg" || cfg.Width != 1600 || cfg.Height != 180 {
					t.Errorf("%s: %s, %dx%d (%v), want a 1600x180 JPEG", p.URL, resp.Header.Get("Content-Type"), cfg.Width, cfg.Height, err)
				}
			}
		})
	}
}
