package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
)

var h2loadRPS = regexp.MustCompile(`finished in [0-9.]+m?s, ([0-9.]+) req/s`)
var h2loadDone = regexp.MustCompile(`requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed`)

// runH2load loads paths over HTTP/2 (h2load: 64 connections, one stream
// each, 2 threads) and returns req/s and failures.
func runH2load(t *testing.T, base string, paths []string, dur time.Duration) (float64, int) {
	t.Helper()
	var urls []string
	for _, p := range paths {
		urls = append(urls, base+p)
	}
	out, err := exec.Command("h2load", append([]string{"-c64", "-m1", "-t2", "-D", strconv.Itoa(int(dur.Seconds()))}, urls...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	m := h2loadRPS.FindSubmatch(out)
	if m == nil {
		t.Fatalf("h2load printed no rate:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	failed := 0
	if d := h2loadDone.FindSubmatch(out); d != nil {
		failed, _ = strconv.Atoi(string(d[2]))
	}
	return rps, failed
}

// goLoad runs 64 workers fetching paths round-robin through client for
// dur and returns req/s: the HTTP/3 and HTTP/2 comparison, where no
// HTTP/3 load tool is at hand.
func goLoad(client *http.Client, base string, paths []string, dur time.Duration) (float64, int64) {
	var done, failed atomic.Int64
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := w; time.Now().Before(stop); i++ {
				resp, err := client.Get(base + paths[i%len(paths)])
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / dur.Seconds(), failed.Load()
}

// handshakes opens TLS connections to addr from 8 workers for dur and
// returns handshakes per second, resuming sessions when resume is set.
func handshakes(addr string, roots *tls.Config, resume bool, dur time.Duration) float64 {
	cfg := roots.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	if resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	var n atomic.Int64
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					continue
				}
				// TLS 1.3 tickets arrive after the handshake: read them.
				c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
				c.Read(make([]byte, 1))
				c.Close()
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / dur.Seconds()
}

// TestBenchHTTPSEdgeVsNginx is make bench's HTTPS comparison: an
// enter-deep node, hot in memory, against nginx proxy_cache with ssl and
// http2, the same ECDSA P-256 certificate and TLS 1.3, on 1 MiB segments
// and 2 KiB manifests: HTTP/1.1 over TLS with wrk, HTTP/2 with h2load
// (64 connections each), interleaved rounds; then HTTP/3 against HTTP/2
// from Go clients, and TLS handshakes per second with and without
// session resumption.
func TestBenchHTTPSEdgeVsNginx(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	for _, tool := range []string{"nginx", "wrk", "h2load"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make bench installs it)", tool)
		}
	}
	raiseFileLimit(discard())
	lib, a := benchLibrary(t)
	manifests := benchManifests(lib, a.Name, 50)
	segs := segmentPaths(a, 0)
	if len(segs) > 16 {
		segs = segs[:16]
	}
	originURL := startBenchOrigin(t, lib)

	ca, leaf := testCerts(t)
	bin := buildBinary(t)
	ours := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	node := exec.Command(bin, "edge", "-profile", "enter-deep", "-upstream", originURL, "-listen", "", "-tls-listen", ours,
		"-tls-cert", leaf.Cert, "-tls-key", leaf.Key, "-http3", "-mem", "2GiB", "-prefetch", "false")
	node.Stderr = io.Discard
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { node.Process.Signal(os.Interrupt); node.Wait() }()
	waitListening(t, ours)
	// The same node with HTTP/2 left to net/http's server, to show what
	// h2front is worth.
	oursNet := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	netNode := exec.Command(bin, "edge", "-profile", "enter-deep", "-upstream", originURL, "-listen", "", "-tls-listen", oursNet,
		"-tls-cert", leaf.Cert, "-tls-key", leaf.Key, "-mem", "2GiB", "-prefetch", "false")
	netNode.Env = append(os.Environ(), "DEEPCAST_HTTP2=net")
	netNode.Stderr = io.Discard
	if err := netNode.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { netNode.Process.Signal(os.Interrupt); netNode.Wait() }()
	waitListening(t, oursNet)
	nport := freePort(t)
	cacheDir, _ := os.MkdirTemp("/dev/shm", "deepcast-nginx-cache-")
	defer os.RemoveAll(cacheDir)
	os.Chmod(cacheDir, 0o777)
	startNginxListen(t, nport, "ssl http2", fmt.Sprintf(`proxy_cache_path %s levels=1:2 keys_zone=c:32m max_size=2g inactive=1d use_temp_path=off;
  ssl_certificate %s; ssl_certificate_key %s; ssl_protocols TLSv1.3; ssl_session_cache shared:S:10m;`, cacheDir, leaf.Cert, leaf.Key),
		fmt.Sprintf(`location / { proxy_pass %s; proxy_cache c; proxy_cache_lock on; proxy_cache_valid 200 1d;
      proxy_http_version 1.1; proxy_set_header Connection ""; }`, originURL))
	nginx := fmt.Sprintf("127.0.0.1:%d", nport)

	systems := []struct{ name, addr string }{{"deepcast", ours}, {"nginx", nginx}}
	const rounds = 3
	fmt.Printf("HTTPS hot hits: enter-deep node vs nginx proxy_cache (ssl http2), same ECDSA P-256 certificate, TLS 1.3; %d interleaved rounds of 5 s\n", rounds)
	for _, load := range []struct {
		name  string
		paths []string
	}{{"1 MiB segments", segs}, {"2 KiB manifests", manifests}} {
		for _, s := range systems {
			runWrk(t, "https://"+s.addr, load.paths, 64, 2*time.Second)
		}
		runH2load(t, "https://"+oursNet, load.paths, 2*time.Second) // warm its cache
		h1 := map[string][]wrkResult{}
		h2 := map[string][]float64{}
		h2systems := append(systems, struct{ name, addr string }{"net/http h2", oursNet})
		for round := range rounds {
			for i := range systems {
				s := systems[(round+i)%len(systems)]
				h1[s.name] = append(h1[s.name], runWrk(t, "https://"+s.addr, load.paths, 64, 5*time.Second))
			}
			for i := range h2systems {
				s := h2systems[(round+i)%len(h2systems)]
				rps, failed := runH2load(t, "https://"+s.addr, load.paths, 5*time.Second)
				if failed > 0 {
					fmt.Printf("  h2load %s: %d failed\n", s.name, failed)
				}
				h2[s.name] = append(h2[s.name], rps)
			}
		}
		d1, n1 := medianResult(h1["deepcast"]), medianResult(h1["nginx"])
		d2, n2, g2 := median(h2["deepcast"]), median(h2["nginx"]), median(h2["net/http h2"])
		fmt.Printf("  %-16s HTTP/1.1+TLS (wrk)  deepcast %s | nginx %s | req/s %.2fx, p99 %.2fx (targets >= 1, <= 1)\n",
			load.name, d1, n1, d1.RPS/n1.RPS, float64(d1.P99)/float64(n1.P99))
		fmt.Printf("  %-16s HTTP/2 (h2load)     deepcast %.0f req/s | nginx %.0f req/s | %.2fx (target >= 1); the same node on net/http's HTTP/2 %.0f req/s (%.2fx nginx)\n",
			load.name, d2, n2, d2/n2, g2, g2/n2)
	}
	// HTTP/3 against HTTP/2, our node, Go clients.
	roots, err := tlsserve.ClientConfig(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	h2c := &http.Client{Transport: &http.Transport{TLSClientConfig: roots, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}}
	h3t := &http3.Transport{TLSClientConfig: roots}
	defer h3t.Close()
	h3c := &http.Client{Transport: h3t}
	for _, load := range []struct {
		name  string
		paths []string
	}{{"1 MiB segments", segs}, {"2 KiB manifests", manifests}} {
		r2, f2 := goLoad(h2c, "https://"+ours, load.paths, 5*time.Second)
		r3, f3 := goLoad(h3c, "https://"+ours, load.paths, 5*time.Second)
		fmt.Printf("  %-16s Go clients, 64 workers: HTTP/3 %.0f req/s (%d failed), HTTP/2 %.0f req/s (%d failed): %.2fx\n", load.name, r3, f3, r2, f2, r3/r2)
	}
	// Handshakes.
	for _, resume := range []bool{false, true} {
		var line []string
		for _, s := range systems {
			line = append(line, fmt.Sprintf("%s %.0f/s", s.name, handshakes(s.addr, roots, resume, 4*time.Second)))
		}
		fmt.Printf("  TLS 1.3 handshakes (8 clients, resumption %v): %s\n", resume, strings.Join(line, ", "))
	}
}
