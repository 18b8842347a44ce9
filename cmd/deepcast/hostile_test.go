package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/player"
)

// needPrlimit skips a test that runs the binary under a small open-file
// limit where that cannot be done.
func needPrlimit(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
}

// TestServersOutliveRunningOutOfFiles: under a 128-file limit, 300 idle
// keep-alive connections used to make origin and edge exit with "accept4:
// too many open files". Now they back off, serve again once connections
// close, and log the limit they run with.
func TestServersOutliveRunningOutOfFiles(t *testing.T) {
	needPrlimit(t)
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	originPort := freePort(t)
	originAddr := fmt.Sprintf("127.0.0.1:%d", originPort)
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	servers := []struct {
		name string
		args []string
		addr string
	}{
		{"origin", []string{"origin", "-library", lib, "-listen", originAddr, "-access-log=false"}, originAddr},
		{"edge", []string{"edge", "-upstream", "http://" + originAddr, "-listen", edgeAddr}, edgeAddr},
	}
	seg := "/vod/" + mediatest.AssetName + "/manifest.mpd"
	for _, s := range servers {
		p := runProcess(t, exec.Command("prlimit", append([]string{"--nofile=128:128", bin}, s.args...)...))
		logs, exited := p.logs, p.done
		waitListening(t, s.addr)
		var conns []net.Conn
		for range 300 {
			c, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
			if err != nil {
				break // the listen backlog is full: as far as a client can push
			}
			conns = append(conns, c)
		}
		time.Sleep(time.Second) // the accept loop meets EMFILE meanwhile
		select {
		case err := <-exited:
			t.Fatalf("%s exited holding %d connections: %v\n%s", s.name, len(conns), err, logs.String())
		default:
		}
		for _, c := range conns {
			c.Close()
		}
		client := &http.Client{Timeout: 5 * time.Second}
		var resp *http.Response
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if resp, err = client.Get("http://" + s.addr + seg); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s does not serve after the connections closed: %v\n%s", s.name, err, logs.String())
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s after the flood", s.name, resp.Status)
		}
		if out := logs.String(); !strings.Contains(out, "open-file limit") || !strings.Contains(out, "files=128") {
			t.Errorf("%s did not log its file limit:\n%s", s.name, out)
		}
	}
}

// TestDamagedLibraryFilesAreNeverServed: a segment truncated, grown or
// altered on disk used to go out as if whole (200, the full content's
// ETag; net/http with the short length, the fast path with the long one),
// and an edge kept it for a year. Now both paths answer the same 500, the
// origin logs and counts it, and the edge stores nothing.
func TestDamagedLibraryFilesAreNeverServed(t *testing.T) {
	for _, damage := range []struct {
		name string
		do   func(path string) error
	}{
		{"truncated", func(p string) error { return os.Truncate(p, 100) }},
		{"grown", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("junk appended by a broken sync")
			return err
		}},
		{"altered", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i := 200; i < 400 && i < len(b); i++ {
				b[i] ^= 0xff
			}
			return os.WriteFile(p, b, 0o644)
		}},
		// Rewritten in place (same inode, same size) with its modification
		// time put back, as cp --preserve or rsync -t would leave it.
		{"altered, time kept", func(p string) error {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if _, err := f.WriteAt([]byte("junk written in place"), 300); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Chtimes(p, st.ModTime(), st.ModTime())
		}},
	} {
		t.Run(damage.name, func(t *testing.T) {
			lib := mediatest.CopyLibrary(t)
			o := startOrigin(t, lib)
			base := serveLoopback(t, o)
			p := startPairOn(t, o)
			// Serve once whole, so the damage comes after a verified serve.
			get := func(url string, hdr ...string) (*http.Response, []byte) {
				return getBody(t, http.DefaultClient, url, hdr...)
			}
			if resp, _ := get(base + p.segment); resp.StatusCode != 200 {
				t.Fatalf("before the damage: %s", resp.Status)
			}
			e, err := o.Catalog().Get(mediatest.AssetName)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(e.Dir, strings.SplitN(strings.TrimPrefix(p.segment, "/vod/"), "/", 2)[1])
			if err := damage.do(file); err != nil {
				t.Fatal(err)
			}
			fast, plain := exchangeRaw(p.fast, []byte("GET "+p.segment+" HTTP/1.1\r\nHost: x\r\n\r\n")), exchangeRaw(p.plain, []byte("GET "+p.segment+" HTTP/1.1\r\nHost: x\r\n\r\n"))
			if cf, cp := canonical(fast, false), canonical(plain, false); cf != cp || !strings.HasPrefix(cf, "500 ") {
				t.Errorf("fast path and net/http disagree or serve it:\n%s\n%s", cf, cp)
			}
			resp, _ := get(base+p.segment, "CMCD-Request", "bl=1000")
			if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("ETag") != "" {
				t.Errorf("with CMCD-Request (net/http): %s ETag %q", resp.Status, resp.Header.Get("ETag"))
			}
			_, edgeURL := deepEdge(t, base, false)
			resp, _ = get(edgeURL + p.segment)
			if resp.StatusCode == http.StatusOK || strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
				t.Errorf("edge: %s, Cache-Status %q", resp.Status, resp.Header.Get("Cache-Status"))
			}
			_, metrics := get(base + "/metrics")
			if !strings.Contains(string(metrics), "deepcast_origin_damaged_files_total") ||
				strings.Contains(string(metrics), "deepcast_origin_damaged_files_total 0\n") {
				t.Errorf("damage not counted in /metrics")
			}
		})
	}
}

// TestEdgeStreamsLargeObjectsWithinItsMemoryBudget: large objects used to
// be read whole into memory, so an edge with -mem 512MiB reached 2.5 GiB
// with ten 200 MiB misses at once. Now they stream through spool files and
// the process stays within -mem plus the documented in-flight budget plus
// working room, whatever the sizes.
func TestEdgeStreamsLargeObjectsWithinItsMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	const mem = 64 << 20
	const objSize = 48 << 20
	up, payload := payloadUpstream(t, objSize)
	cmd, addr := startMemEdge(t, bin, up.URL, "64MiB")
	peakRSS := watchPeakRSS(cmd.Process.Pid)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 60 * time.Second}
	for i := range 10 {
		wg.Go(func() {
			kind := "v"
			if i%2 == 1 {
				kind = "chunked"
			}
			resp, err := client.Get(fmt.Sprintf("http://%s/vod/a/%s/%d.m4s", addr, kind, i+1))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, _ := io.Copy(h, resp.Body)
			if n != objSize || !bytes.Equal(h.Sum(nil), sha256Of(payload)) {
				t.Errorf("object %d: %d bytes, content differs", i+1, n)
			}
		})
	}
	wg.Wait()
	peak := peakRSS()
	t.Logf("10 concurrent misses of %d MiB through a %d MiB cache: peak RSS %d MiB, of it anonymous %d MiB", objSize>>20, mem>>20, peak.rss>>20, peak.anon>>20)
	checkEdgeMemoryBound(t, peak, mem)
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestEdgeProcessBoundsAClientsMisses: `edge -client-miss-rate` answers a
// client's misses past its budget with 429 and Retry-After (the fast path
// of the built binary answers these plain GETs), and refuses a rate below
// zero before it starts.
func TestEdgeProcessBoundsAClientsMisses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	if out, err := exec.Command(bin, "edge", "-upstream", "http://127.0.0.1:1", "-client-miss-rate", "-1").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "-client-miss-rate") {
		t.Errorf("a negative rate: %v, %s; want a usage error naming the flag", err, out)
	}
	up, _ := payloadUpstream(t, 4096)
	_, addr := startMemEdge(t, bin, up.URL, "64MiB", "-client-miss-rate", "0.5") // bursts of 5
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(i int) *http.Response {
		t.Helper()
		resp, err := client.Get(fmt.Sprintf("http://%s/vod/a/v/%d.m4s", addr, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for i := 1; i <= 5; i++ {
		if resp := get(i); resp.StatusCode != http.StatusOK {
			t.Fatalf("miss %d of a burst of 5: %d", i, resp.StatusCode)
		}
	}
	if resp := get(6); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("6th miss at once: %d, Retry-After %q; want 429, 2 (a token every 2 s)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := get(1); resp.StatusCode != http.StatusOK {
		t.Errorf("a hit past the misses: %d, want 200", resp.StatusCode)
	}
}

// TestOpsEndpointsOffOnPublicListeners: /metrics and /api/stats name the
// upstreams; on a listener other machines reach they are off unless a
// token guards them or an admin listener takes them. There, a token short
// enough to guess is warned of; on loopback, as in the demo, it is not.
func TestOpsEndpointsOffOnPublicListeners(t *testing.T) {
	long := strings.Repeat("k", minTokenLength)
	for _, c := range []struct {
		listen, admin, token string
		hidden               bool
		adminToken, warn     string
	}{
		{"127.0.0.1:0", "", "", false, "", ""},
		{"0.0.0.0:0", "", "", true, "", "/metrics and /api/stats are off"},
		{"0.0.0.0:0", "", long, false, long, ""},
		{"127.0.0.1:0", "127.0.0.1:0", "", true, "", ""},
		{"127.0.0.1:0", "", "tok", false, "s3cret", ""},
		{"0.0.0.0:0", "", "tok", false, long, "-metrics-token is 3 characters, short enough to guess"},
		{"0.0.0.0:0", "127.0.0.1:0", "", true, "s3cret", "-admin-token is 6 characters, short enough to guess"},
	} {
		ln, err := net.Listen("tcp", c.listen)
		if err != nil {
			t.Fatal(err)
		}
		var logged bytes.Buffer
		o := opsFlags{listen: &c.admin, token: &c.token}
		log := slog.New(slog.NewTextHandler(&logged, nil))
		o.warnShortTokens(log, c.adminToken, ln.Addr())
		if got := o.hidden(log, ln.Addr()); got != c.hidden {
			t.Errorf("listen %s admin %q token %q: hidden %v, want %v", c.listen, c.admin, c.token, got, c.hidden)
		}
		if c.warn == "" && logged.Len() > 0 || !strings.Contains(logged.String(), c.warn) {
			t.Errorf("listen %s admin %q token %q admin token %q: logged %q, want %q", c.listen, c.admin, c.token, c.adminToken, logged.String(), c.warn)
		}
		ln.Close()
	}
}

// TestPlayFailsOverBetweenBaseURLsAndVerifies: a session whose location
// dies mid-play goes on at the MPD's next BaseURL (one that dies mid-body
// has the rest of that body asked of the next), and a location that sends
// other bytes than its ETag promises is caught by -verify.
func TestPlayFailsOverBetweenBaseURLsAndVerifies(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	o := startOrigin(t, lib)
	var served atomic.Int64
	var dead atomic.Bool
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dead.Load() {
			panic(http.ErrAbortHandler) // the connection drops, as a killed node's would
		}
		if strings.HasSuffix(r.URL.Path, ".m4s") && r.Method == http.MethodGet && served.Add(1) == 4 {
			dead.Store(true)
		}
		o.ServeHTTP(w, r)
	}))
	defer flaky.Close()
	// A corrupting location flips a bit in every segment; with opaqueTags
	// it also gives ETags that are no hash (as nginx serving the same
	// files would), so only Repr-Digest tells a client what to expect.
	corruptingServer := func(opaqueTags bool) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			o.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if strings.HasSuffix(r.URL.Path, ".m4s") && r.Method == http.MethodGet && len(body) > 100 {
				body[len(body)/2] ^= 1
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			if opaqueTags && w.Header().Get("ETag") != "" {
				w.Header().Set("ETag", fmt.Sprintf(`"%x-5f3a"`, len(body)))
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	good := serveLoopback(t, o)
	a := mediatest.AssetName
	mpd := func(bases ...string) string {
		raw, err := os.ReadFile(filepath.Join(lib, a, "manifest.mpd"))
		if err != nil {
			t.Fatal(err)
		}
		var bs []manifest.BaseURL
		for _, b := range bases {
			bs = append(bs, manifest.BaseURL{URL: b + "/vod/" + a + "/"})
		}
		out, err := manifest.Rewrite(raw, bs, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(out) }))
		t.Cleanup(srv.Close)
		return srv.URL + "/manifest.mpd"
	}
	ctx := t.Context()
	var stats player.FetchStats
	res, err := play(ctx, mpd(flaky.URL, good), playOptions{ABR: "throughput", QoE: "lin", Verify: true, Stats: &stats})
	if err != nil || res.Chunks == 0 {
		t.Fatalf("a dead first location ended the session: %v", err)
	}
	if stats.Switches != 1 || stats.Failed == 0 || stats.Corrupt != 0 {
		t.Errorf("dead location: %+v, want one switch after failures", stats)
	}
	// A location that dies halfway through a segment's body: the session
	// asks the next location for the rest of it only.
	var cutServed atomic.Int64
	var cutDead atomic.Bool
	cutting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cutDead.Load() {
			panic(http.ErrAbortHandler)
		}
		if !strings.HasSuffix(r.URL.Path, ".m4s") || r.Method != http.MethodGet || cutServed.Add(1) != 4 {
			o.ServeHTTP(w, r)
			return
		}
		cutDead.Store(true)
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer cutting.Close()
	stats = player.FetchStats{}
	if res, err := play(ctx, mpd(cutting.URL, good), playOptions{ABR: "throughput", QoE: "lin", Verify: true, Stats: &stats}); err != nil || res.Chunks == 0 {
		t.Fatalf("a location dying mid-body ended the session: %v", err)
	}
	if stats.Resumed != 1 || stats.Switches != 1 || stats.Corrupt != 0 || stats.Verified == 0 {
		t.Errorf("location dying mid-body: %+v, want the rest resumed at the next location, verified whole", stats)
	}
	for _, opaqueTags := range []bool{false, true} {
		stats = player.FetchStats{}
		if _, err := play(ctx, mpd(corruptingServer(opaqueTags).URL, good), playOptions{ABR: "throughput", QoE: "lin", Verify: true, Stats: &stats}); err != nil {
			t.Fatalf("a corrupting location (opaque ETags %v) ended the session: %v", opaqueTags, err)
		}
		if stats.Corrupt == 0 || stats.Switches != 1 || stats.Verified == 0 {
			t.Errorf("corrupting location (opaque ETags %v): %+v, want corrupt bodies caught and a switch", opaqueTags, stats)
		}
	}
}
