package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/fastpath"
	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/edge/routing"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/origin"
	"github.com/deepcast/deepcast/player"
)

func TestMain(m *testing.M) { mediatest.Main(m) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// countingHandler counts the /vod/ requests that reach h.
type countingHandler struct {
	h   http.Handler
	vod atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/vod/") {
		c.vod.Add(1)
	}
	c.h.ServeHTTP(w, r)
}

// startServe runs h with serve (the fast path in front of net/http, as the
// deepcast commands do) on a loopback port; stop shuts it down gracefully
// and returns serve's error, bounded in time.
func startServe(t testing.TB, h http.Handler) (base string, stop func() error) {
	t.Helper()
	return startServeMode(t, h, os.Getenv("DEEPCAST_FASTPATH"))
}

// startServeMode is startServe with the fast path's mode given ("off":
// net/http alone).
func startServeMode(t testing.TB, h http.Handler, mode string) (base string, stop func() error) {
	t.Helper()
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveMode(ctx, h, ln, discard(), mode) }()
	return "http://" + ln.Addr().String(), func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(shutdownGrace + 5*time.Second):
			return fmt.Errorf("serve did not shut down within %s", shutdownGrace+5*time.Second)
		}
	}
}

// serveLoopback is startServe until the test ends.
func serveLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	base, stop := startServe(t, h)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return base
}

// readCSVFile returns the rows of the CSV file at path (a play or sim
// -out log), failing the test when it cannot be read.
func readCSVFile(t testing.TB, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// startOrigin opens an origin on lib, closed when the test ends.
func startOrigin(t testing.TB, lib string) *origin.Server {
	t.Helper()
	o, err := origin.New(origin.Config{Library: lib, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// deepEdge starts an enter-deep node named "deep" (32 MiB) in front of
// upstream, behind serve() on loopback, and returns it with its base URL.
func deepEdge(t *testing.T, upstream string, prefetch bool) (*edge.Node, string) {
	t.Helper()
	n, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{upstream}, MemBytes: 32 << 20, Prefetch: &prefetch, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n, serveLoopback(t, n)
}

// frontMetrics reads the fast path's series from base's /metrics: values
// by name, and the lines themselves for messages.
func frontMetrics(t *testing.T, base string) (map[string]int, string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	values := map[string]int{}
	var lines []string
	for l := range strings.Lines(string(body)) {
		if name, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok && strings.HasPrefix(name, "deepcast_fastpath_") {
			values[name], _ = strconv.Atoi(v)
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return values, strings.Join(lines, "\n")
}

// chain starts origin → bring-home → enter-deep on loopback ports; the
// edges run behind the fast path, the origin behind plain net/http so its
// requests can be counted.
func chain(t *testing.T, lib string) (originCount *countingHandler, home, deep string, deepNode *edge.Node) {
	t.Helper()
	o, err := origin.New(origin.Config{Library: lib, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	originCount = &countingHandler{h: o}
	ots := httptest.NewServer(originCount)
	hn, err := edge.New(edge.Config{Profile: edge.BringHome, Name: "home", Upstreams: []string{ots.URL}, DiskDir: t.TempDir(),
		MemBytes: 64 << 20, Logger: discard(), CheckEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the servers' own cleanups
		hn.Close()
		ots.Close()
		o.Close()
	})
	home = serveLoopback(t, hn)
	deepNode, err = edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{home},
		MemBytes: 64 << 20, Logger: discard(), CheckEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(deepNode.Close)
	deep = serveLoopback(t, deepNode)
	return originCount, home, deep, deepNode
}

func TestThreeTierChainPlaysAndSecondPlayStaysAtTheEdge(t *testing.T) {
	lib := mediatest.Library(t)
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	oc, _, deep, deepNode := chain(t, lib)
	url := deep + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	mediatest.CheckDecodesAll(t, url, 2, frames)
	first := oc.vod.Load()
	if first == 0 {
		t.Fatal("the origin saw no requests")
	}
	mediatest.CheckDecodesAll(t, url, 2, frames)
	if got := oc.vod.Load() - first; got != 0 {
		t.Errorf("second play made %d origin requests, want 0", got)
	}
	if s := deepNode.Stats(); s.Hits == 0 {
		t.Errorf("enter-deep stats show no hits: %+v", s)
	}
}

// TestFFmpegPlaysFromTheOriginFastPath plays every rendition from an
// origin served the way `deepcast origin` serves it (the fast path in
// front of net/http) and checks every frame decodes.
func TestFFmpegPlaysFromTheOriginFastPath(t *testing.T) {
	lib := mediatest.Library(t)
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	base := serveLoopback(t, startOrigin(t, lib))
	mediatest.CheckDecodesAll(t, base+"/vod/"+mediatest.AssetName+"/manifest.mpd", 2, frames)
	var st struct{ Requests int64 }
	resp, err := http.Get(base + "/api/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Requests == 0 {
		t.Errorf("origin stats after the play: %+v, %v", st, err)
	}
}

// buildBinary builds deepcast once for subprocess tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "deepcast")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// rssBytes is process pid's resident memory (VmRSS).
func rssBytes(pid int) (int64, error) { return procStatusBytes(pid, "VmRSS") }

// procStatusBytes reads one of the kB fields of /proc/PID/status.
func procStatusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// payloadUpstream serves the same size deterministic bytes for every path
// but /healthz, immutable, without a Content-Length for paths with
// "/chunked/" in them, until the test ends; it returns the bytes too.
func payloadUpstream(t *testing.T, size int) (*httptest.Server, []byte) {
	t.Helper()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*13 + i>>20)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		if !strings.Contains(r.URL.Path, "/chunked/") {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		for off := 0; off < size; off += 4 << 20 {
			if _, err := w.Write(payload[off:min(size, off+4<<20)]); err != nil {
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	return up, payload
}

// startMemEdge runs an enter-deep `deepcast edge` process with -mem mem
// and no prefetch in front of upstream (and the extra flags) until the
// test ends, spooling into a folder of the test's; it returns the process
// and its address.
func startMemEdge(t *testing.T, bin, upstream, mem string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, append([]string{"edge", "-profile", "enter-deep", "-upstream", upstream, "-listen", addr, "-mem", mem, "-prefetch", "false"}, extra...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	waitListening(t, addr)
	return cmd, addr
}

func TestEdgeProcessStaysWithinItsMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	const mem = 64 << 20
	const objSize = 1 << 20
	up, _ := payloadUpstream(t, objSize)
	cmd, addr := startMemEdge(t, bin, up.URL, "64MiB")
	client := &http.Client{Timeout: 10 * time.Second}
	peakRSS := watchPeakRSS(cmd.Process.Pid)
	for i := 1; i <= 3*mem/objSize; i++ {
		resp, err := client.Get(fmt.Sprintf("http://%s/vod/a/v/%d.m4s", addr, i))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != objSize {
			t.Fatalf("object %d: %d bytes", i, n)
		}
	}
	peak := peakRSS()
	t.Logf("filled %d MiB through a %d MiB cache: peak RSS %d MiB, of it anonymous %d MiB", 3*mem>>20, mem>>20, peak.rss>>20, peak.anon>>20)
	checkEdgeMemoryBound(t, peak, mem)
}

// memoryPeak is the most of a process's memory seen: RSS, and of it the
// anonymous part, the process's own data. The rest of RSS is mostly the
// pages of its binary (some 30 MiB of deepcast's, shared by every process
// running it and growing with the program, not with what it serves).
type memoryPeak struct{ rss, anon int64 }

// watchPeakRSS samples the memory of process pid every 20 ms until the
// returned function is called, which returns the peaks.
func watchPeakRSS(pid int) func() memoryPeak {
	var rss, anon atomic.Int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if v, err := rssBytes(pid); err == nil && v > rss.Load() {
				rss.Store(v)
			}
			if v, err := procStatusBytes(pid, "RssAnon"); err == nil && v > anon.Load() {
				anon.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() memoryPeak {
		close(stop)
		<-sampled
		return memoryPeak{rss: rss.Load(), anon: anon.Load()}
	}
}

// edgeWorkingRoom is what an edge process may use beyond its cache and
// in-flight budget: the room its soft memory limit leaves the collector
// (40 MiB, tuneEdgeMemory) and the runtime's own.
const edgeWorkingRoom = 48 << 20

// checkEdgeMemoryBound holds an edge process's peak memory to the
// documented bound: the cache (-mem), the in-flight read budget, and
// working room. What is bounded is the process's own data (anonymous
// memory): the binary's pages in RSS are the program, not its load, and
// grow with every feature (VmRSS crossed a bound that counted them when
// the binary reached 29 MiB of them, with the data unchanged).
func checkEdgeMemoryBound(t *testing.T, peak memoryPeak, mem int64) {
	t.Helper()
	if bound := mem + edge.InflightBudget(mem) + edgeWorkingRoom; peak.anon > bound {
		t.Errorf("peak anonymous memory %d MiB exceeds -mem + in-flight budget + %d MiB = %d MiB (peak RSS %d MiB)",
			peak.anon>>20, edgeWorkingRoom>>20, bound>>20, peak.rss>>20)
	}
}

func TestSimMatchesRealPlayback(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mp4")
	ctx := context.Background()
	if err := media.MakeSample(ctx, src, media.SampleOptions{Duration: 10 * time.Second, Width: 640, Height: 360}); err != nil {
		t.Fatal(err)
	}
	ladder, _ := media.ParseLadder("640x360@1100k,320x180@350k")
	lib := filepath.Join(dir, "lib")
	if _, err := media.Package(ctx, []string{src}, media.PackageOptions{Library: lib, Name: "clip", Ladder: ladder, SegmentDur: time.Second, Preset: "ultrafast"}); err != nil {
		t.Fatal(err)
	}
	o, err := origin.New(origin.Config{Library: lib, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	base := serveLoopback(t, o)
	trace := filepath.Join(dir, "const-2mbps")
	var b strings.Builder
	for i := range 120 {
		fmt.Fprintf(&b, "%d.0 2.0\n", i)
	}
	os.WriteFile(trace, []byte(b.String()), 0o644)
	url := base + "/vod/clip/manifest.mpd"
	for _, abr := range []string{"throughput", "robustmpc"} {
		real, err := play(ctx, url, playOptions{ABR: abr, Trace: trace, QoE: "lin"})
		if err != nil {
			t.Fatal(err)
		}
		v, err := player.LoadVideo(ctx, url, http.DefaultClient)
		if err != nil {
			t.Fatal(err)
		}
		traces, _ := player.LoadTraces([]string{trace})
		sims, err := player.Simulate(ctx, player.SimOptions{Video: v, Traces: traces, Algorithms: []string{abr}, KeepLogs: true})
		if err != nil {
			t.Fatal(err)
		}
		sim := sims[0]
		same := 0
		var rs, ss []int
		for i := range real.Log {
			rs = append(rs, real.Log[i].Rendition)
			ss = append(ss, sim.Log[i].Rendition)
			if real.Log[i].Rendition == sim.Log[i].Rendition {
				same++
			}
		}
		share := float64(same) / float64(len(real.Log))
		t.Logf("%s: real %v, sim %v: %.0f%% the same", abr, rs, ss, 100*share)
		if len(real.Log) != len(sim.Log) || share < 0.9 {
			t.Errorf("%s: sim and real agree on %.0f%% of %d chunks, want >= 90%%", abr, 100*share, len(real.Log))
		}
	}
}

func TestPlayErrorsAreClear(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/garbage.mpd":
			w.Write([]byte("abc>"))
		case "/live.mpd":
			w.Write([]byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic"><Period/></MPD>`))
		case "/missing-segments.mpd":
			w.Write([]byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S"><Period>
<AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate media="v/$Number$.m4s" duration="2" timescale="1"/>
<Representation id="v" bandwidth="100000"/></AdaptationSet></Period></MPD>`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer bad.Close()
	ctx := context.Background()
	for path, want := range map[string]string{
		"/garbage.mpd":          "mpd",
		"/live.mpd":             "only static",
		"/nope.mpd":             "404",
		"/missing-segments.mpd": "404",
	} {
		_, err := play(ctx, bad.URL+path, playOptions{ABR: "throughput", QoE: "lin"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", path, err, want)
		}
	}
}

// startRouter runs a router (nearest edge, health checked every check)
// over the edges of edgesYAML until the test ends, and returns its URL.
func startRouter(t *testing.T, check time.Duration, edgesYAML string) string {
	t.Helper()
	edges, err := routing.ParseEdges([]byte(edgesYAML))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := routing.New(routing.Config{Edges: edges, Strategy: "nearest", Check: check, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go rt.Run(ctx)
	rts := httptest.NewServer(rt)
	t.Cleanup(rts.Close)
	return rts.URL
}

func TestFFmpegPlaysThroughTheRouter(t *testing.T) {
	lib := mediatest.Library(t)
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	_, home, deep, _ := chain(t, lib)
	router := startRouter(t, 200*time.Millisecond, fmt.Sprintf(`edges:
  - {name: deep, url: %s, addresses: [127.0.0.2], profile: enter-deep, subnets: [127.0.0.0/8]}
  - {name: home, url: %s, addresses: [127.0.0.3], profile: bring-home}
`, deep, home))
	for _, mode := range []string{"", "?route=baseurl", "?route=steering"} {
		mediatest.CheckDecodesAll(t, router+"/vod/"+mediatest.AssetName+"/manifest.mpd"+mode, 2, frames)
		// HLS: ffmpeg knows no pathways, so with steering it plays every
		// pathway's variants: both edges' URIs work.
		streams := 2
		if mode == "?route=steering" {
			streams = 4
		}
		mediatest.CheckDecodesAll(t, router+"/vod/"+mediatest.AssetName+"/master.m3u8"+mode, streams, frames)
		checkThumbnailsReachable(t, router+"/vod/"+mediatest.AssetName+"/master.m3u8"+mode, deep)
	}
}

// checkThumbnailsReachable reads the image stream of a routed
// multivariant playlist (the edge's own after a redirect, or the
// router's rewrite) and fetches its first tile from the edge it names.
func checkThumbnailsReachable(t *testing.T, master, edge string) {
	t.Helper()
	get := func(u string) ([]byte, *http.Response) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", u, resp.Status)
		}
		return b, resp
	}
	playlist, resp := get(master)
	m := regexp.MustCompile(`(?m)^#EXT-X-IMAGE-STREAM-INF:.*URI="([^"]+)"`).FindAllStringSubmatch(string(playlist), -1)
	if len(m) != 1 {
		t.Fatalf("%s: image streams %q, want one:\n%s", master, m, playlist)
	}
	images, err := resp.Request.URL.Parse(m[0][1])
	if err != nil || !strings.HasPrefix(images.String(), edge) {
		t.Fatalf("%s: image stream %s, want one on %s", master, images, edge)
	}
	list, _ := get(images.String())
	tile, _ := images.Parse(regexp.MustCompile(`(?m)^[^#].*\.jpg$`).FindString(string(list)))
	if jpeg, resp := get(tile.String()); resp.Header.Get("Content-Type") != "image/jpeg" || !bytes.HasPrefix(jpeg, []byte{0xff, 0xd8}) {
		t.Errorf("%s: tile %s is %s", master, tile, resp.Header.Get("Content-Type"))
	}
}

// TestHostilePathsThroughTheFastPath sends hostile request targets, on
// keep-alive connections the fast path takes, to an origin and to an edge
// in front of it, both served as the commands serve them: every one is a
// 400 or 404 and nothing outside the library is ever sent.
func TestHostilePathsThroughTheFastPath(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	secret := "TOP-SECRET-DO-NOT-SERVE"
	os.WriteFile(filepath.Join(filepath.Dir(lib), "secret.m4s"), []byte(secret), 0o644)
	os.WriteFile(filepath.Join(filepath.Dir(lib), "manifest.mpd"), []byte(secret), 0o644)
	originURL := serveLoopback(t, startOrigin(t, lib))
	_, edgeURL := deepEdge(t, originURL, true)
	a := mediatest.AssetName
	paths := []string{
		"/vod/../secret.m4s", "/vod/../../manifest.mpd", "/vod/./manifest.mpd", "/vod/" + a + "/./1.m4s",
		"/vod/" + a + "/../" + a + "/manifest.mpd", "/vod/..", "/vod/" + a + "/..", "/vod//etc/passwd/init.mp4",
		"/vod/" + strings.Repeat("a", 300) + "/manifest.mpd", "/vod/" + a + "/x/0.m4s", "/vod/" + a + "/x/01.m4s",
		"/vod/" + a + "/x/1.m4s.bak", "/vod/.versions/manifest.mpd", "/vod/" + a + "/asset.json", "/vod/" + a + "/",
		"/vod/", "/../../../../etc/passwd", "/vod/%2e%2e/manifest.mpd", "/vod/" + a + "%2f..%2f..%2fsecret.m4s",
		"/vod/" + a + "%00/manifest.mpd", "/vod/..\\secret/manifest.mpd", "/vod/~/manifest.mpd",
		"/vod/" + a + "/video/" + strings.Repeat("9", 40) + ".m4s", "/vod/" + a + "/manifest.mpd/x",
		"/vod/" + a + "/master.m3u8/x", "/vod/" + a + "/x/media.m3u8.bak", "/vod/" + a + "/%2e%2e/master.m3u8",
		"/vod/../" + a + "/master.m3u8", "/vod/" + a + "/../x/iframes.m3u8", "/vod/" + a + "/x/other.m3u8",
	}
	for _, base := range []string{originURL, edgeURL} {
		addr := strings.TrimPrefix(base, "http://")
		for _, p := range paths {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", p)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				c.Close()
				t.Fatalf("%s%s: %v", base, p, err)
			}
			body, _ := io.ReadAll(resp.Body)
			c.Close()
			if resp.StatusCode != 400 && resp.StatusCode != 404 {
				t.Errorf("%s%s: status %d, want 400 or 404", base, p, resp.StatusCode)
			}
			if strings.Contains(string(body), secret) || strings.Contains(string(body), "<MPD") {
				t.Errorf("%s%s: served content", base, p)
			}
		}
	}
}

// TestFastPathMetrics: an edge behind serve() reports its front on
// /metrics: a miss answered off the loop, a hit in it, and the /metrics
// request itself handed to net/http. (A manifest would not do: its
// short freshness makes the second request a revalidation, which waits.)
func TestFastPathMetrics(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	_, edgeURL := deepEdge(t, serveLoopback(t, startOrigin(t, lib)), false)
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	segment := fmt.Sprintf("%s/vod/%s/%s/1.m4s", edgeURL, a.Name, a.Renditions[0].ID)
	client := &http.Client{Timeout: 10 * time.Second}
	for range 2 { // a miss, then a hit (segments are immutable: the hit is fresh)
		resp, err := client.Get(segment)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("segment: %d", resp.StatusCode)
		}
	}
	front, lines := frontMetrics(t, edgeURL)
	want := map[string]int{"deepcast_fastpath_handoffs_total": 1, "deepcast_fastpath_answered_total": 2, "deepcast_fastpath_timeouts_total": 0}
	if fastpath.DefaultLoops() > 0 && os.Getenv("DEEPCAST_FASTPATH") == "" {
		want["deepcast_fastpath_waited_total"] = 1
	}
	if _, ok := front["deepcast_fastpath_connections"]; !ok {
		t.Errorf("/metrics has no deepcast_fastpath_connections:\n%s", lines)
	}
	for name, v := range want {
		if got, ok := front[name]; !ok || got != v {
			t.Errorf("/metrics: %s = %d (present: %v), want %d:\n%s", name, got, ok, v, lines)
		}
	}
}

// queryLog is an upstream that records the target of every object request.
type queryLog struct {
	h    http.Handler
	mu   sync.Mutex
	seen []string
}

func (q *queryLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/vod/") {
		q.mu.Lock()
		q.seen = append(q.seen, r.URL.RequestURI())
		q.mu.Unlock()
	}
	q.h.ServeHTTP(w, r)
}

func (q *queryLog) targets() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.seen)
}

// TestEdgeFastPathTakesCMCDQueries: dash.js sends CMCD in the query of
// every request (our player page does). The edge's front answers those
// requests itself (no hand-off to net/http) and treats them as ServeHTTP
// does: the query goes upstream untouched on a miss, CMCD's nor picks the
// segment to prefetch, and the query is not part of the cache key.
func TestEdgeFastPathTakesCMCDQueries(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	up := &queryLog{h: startOrigin(t, lib)}
	ots := httptest.NewServer(up)
	t.Cleanup(ots.Close)
	n, edgeURL := deepEdge(t, ots.URL, true)
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	r := a.Renditions[0]
	if len(r.Segments) < 3 {
		t.Fatalf("test asset has %d segments, want 3 or more", len(r.Segments))
	}
	dir := fmt.Sprintf("/vod/%s/%s/", a.Name, r.ID)
	// As dash.js writes it: nor names segment 3, not the next one, so a
	// prefetch of 3 shows that nor was read.
	cmcd := "CMCD=bl%3D0%2Cbr%3D" + strconv.FormatInt(r.Bandwidth/1000, 10) + "%2Cnor%3D%223.m4s%22%2Cot%3Dv%2Csid%3D%22s-1%22%2Csu"
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(target string) (*http.Response, []byte) {
		t.Helper()
		resp, err := client.Get(edgeURL + target)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", target, resp.StatusCode)
		}
		return resp, body
	}
	_, first := get(dir + "1.m4s?" + cmcd)
	if got := up.targets(); len(got) == 0 || got[0] != dir+"1.m4s?"+cmcd {
		t.Fatalf("upstream saw %q, want the CMCD query untouched: %q", got, dir+"1.m4s?"+cmcd)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(up.targets(), dir+"3.m4s") || n.Stats().Objects["memory"] < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no prefetch of the segment nor names (3.m4s): upstream saw %q", up.targets())
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := n.Stats()
	// Other CMCD values and junk beside them: the same object, and no new
	// prefetch (nor still names 3.m4s, which is cached).
	for _, q := range []string{"?" + strings.Replace(cmcd, "bl%3D0", "bl%3D4000", 1), "?" + cmcd + "&x=junk", "?utm=%2F..%2F&" + cmcd} {
		resp, body := get(dir + "1.m4s" + q)
		if !bytes.Equal(body, first) || !strings.Contains(resp.Header.Get("Cache-Status"), "deep; hit") {
			t.Errorf("1.m4s%s: %d bytes, Cache-Status %q; want the cached object, a hit", q, len(body), resp.Header.Get("Cache-Status"))
		}
	}
	after := n.Stats()
	if after.Objects["memory"] != before.Objects["memory"] || after.Hits != before.Hits+3 {
		t.Errorf("queries changed the cache: objects %d -> %d, hits %d -> %d", before.Objects["memory"], after.Objects["memory"], before.Hits, after.Hits)
	}
	if got := up.targets(); slices.ContainsFunc(got[1:], func(s string) bool { return strings.HasPrefix(s, dir+"1.m4s") }) {
		t.Errorf("upstream asked for 1.m4s again: %q", got)
	}
	// Every request above was the front's: none handed to net/http (the
	// /metrics request itself is, after the counters are read).
	if front, lines := frontMetrics(t, edgeURL); front["deepcast_fastpath_handoffs_total"] != 1 || front["deepcast_fastpath_answered_total"] != 4 {
		t.Errorf("/metrics: want 1 hand-off (this request) and 4 answered:\n%s", lines)
	}
}
