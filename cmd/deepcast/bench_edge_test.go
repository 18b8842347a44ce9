package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
)

// startVarnish runs Debian's varnishd with malloc storage in front of backend.
func startVarnish(t testing.TB, port int, backend string) {
	t.Helper()
	if _, err := exec.LookPath("varnishd"); err != nil {
		t.Skip("varnishd not installed (make bench installs it)")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	host, bport, _ := strings.Cut(strings.TrimPrefix(backend, "http://"), ":")
	vcl := fmt.Sprintf("vcl 4.1;\nbackend default { .host = %q; .port = %q; }\n", host, bport)
	os.WriteFile(filepath.Join(dir, "default.vcl"), []byte(vcl), 0o644)
	admin := freePort(t)
	args := []string{"-a", fmt.Sprintf("127.0.0.1:%d", port), "-T", fmt.Sprintf("127.0.0.1:%d", admin),
		"-f", filepath.Join(dir, "default.vcl"), "-s", "malloc,1G", "-n", filepath.Join(dir, "work"), "-P", filepath.Join(dir, "pid"),
		"-p", "thread_pool_min=50",
		// As the other systems measured, Varnish then fetches and serves
		// what the client asks for (wrk asks for no coding): with its
		// default gzip support it would fetch gzipped manifests from our
		// origin and gunzip them for every hit.
		"-p", "http_gzip_support=off"}
	if os.Getuid() == 0 {
		args = append(args, "-j", "none")
	}
	if out, err := exec.Command("varnishd", args...).CombinedOutput(); err != nil {
		t.Fatalf("varnishd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		pid, _ := os.ReadFile(filepath.Join(dir, "pid"))
		if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
			syscall.Kill(n, syscall.SIGTERM)
			time.Sleep(300 * time.Millisecond)
		}
	})
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
}

// startNginxCache runs nginx as a caching proxy in front of upstream, as
// the edge benches compare it: proxy_cache (in memory where /dev/shm is)
// with proxy_cache_lock, so that one request fills a miss, and the
// directives in extra added to its location. It returns its base URL.
func startNginxCache(t *testing.T, upstream string, extra ...string) string {
	t.Helper()
	cacheDir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		cacheDir, _ = os.MkdirTemp("/dev/shm", "deepcast-nginx-cache-")
		t.Cleanup(func() { os.RemoveAll(cacheDir) })
	}
	os.Chmod(cacheDir, 0o777)
	port := freePort(t)
	startNginx(t, port, fmt.Sprintf("proxy_cache_path %s levels=1:2 keys_zone=c:32m max_size=2g inactive=1d use_temp_path=off;", cacheDir),
		fmt.Sprintf(`location / { proxy_pass %s; proxy_cache c; proxy_cache_lock on; proxy_cache_lock_timeout 30s;
      proxy_cache_valid 200 1d; proxy_http_version 1.1; proxy_set_header Connection ""; %s }`, upstream, strings.Join(extra, " ")))
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// startBenchOrigin serves lib with an origin behind serve() (the fast
// path, as deployed) on loopback until the test ends; it returns the
// origin's base URL.
func startBenchOrigin(t *testing.T, lib string) string {
	t.Helper()
	o := startOrigin(t, lib)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go serve(ctx, o, ln, discard())
	return "http://" + ln.Addr().String()
}

// benchManifests names the asset's version folder n more times in lib
// (m000, m001, …) and returns their manifest paths: n objects of ~2 KiB.
func benchManifests(lib, asset string, n int) []string {
	target, _ := os.Readlink(filepath.Join(lib, asset))
	var manifests []string
	for i := range n {
		name := fmt.Sprintf("m%03d", i)
		os.Symlink(target, filepath.Join(lib, name))
		manifests = append(manifests, "/vod/"+name+"/manifest.mpd")
	}
	return manifests
}

// ratios formats per-round ratios, in round order.
func ratios(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

// coldStorm sends clients simultaneous GETs for one uncached URL and returns
// the time until the last response is complete.
func coldStorm(t testing.TB, url string, clients int) (time.Duration, int) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: 0, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range clients {
		wg.Go(func() {
			<-start
			resp, err := client.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("%d", resp.StatusCode)
				}
			}
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return time.Since(t0), failed
}

// TestBenchEdgeVsPeers compares hot hits through our enter-deep node, nginx
// proxy_cache (with proxy_cache_lock) and Varnish (malloc), all in front of
// the same origin, with wrk (64 connections over 200 objects), for ~1 MiB
// segments and ~2 KiB manifests, interleaved; then a cold storm of 1,000
// clients on one fresh segment per system. Run by `make bench`.
// edgeRounds is how many interleaved rounds the edge medians are taken
// over: the peers' own p99 swings by 5x between rounds on this shared
// machine (Varnish's 2 KiB p99: 2.7 to 17 ms), so three were not enough.
const edgeRounds = 5

func TestBenchEdgeVsPeers(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	raiseFileLimit(discard())
	lib, a := benchLibrary(t)
	manifests := benchManifests(lib, a.Name, 200)
	segs := segmentPaths(a, 0)
	// 200 segment objects: each segment under several asset names.
	var segObjs []string
	for i := 0; len(segObjs) < 200; i++ {
		for _, s := range segs {
			if len(segObjs) < 200 {
				segObjs = append(segObjs, strings.Replace(s, "/vod/bench/", fmt.Sprintf("/vod/m%03d/", i), 1))
			}
		}
	}
	tuneGC()
	originURL := startBenchOrigin(t, lib)

	// Our node runs as its own process, as deployed and as the peers run:
	// in the test's process it would share a runtime with the origin, the
	// storm's 1,000 client goroutines and the test's heap.
	bin := buildBinary(t)
	eport := freePort(t)
	ours := fmt.Sprintf("http://127.0.0.1:%d", eport)
	node := exec.Command(bin, "edge", "-profile", "enter-deep", "-name", "bench-deep", "-upstream", originURL,
		"-listen", fmt.Sprintf("127.0.0.1:%d", eport), "-mem", "2GiB", "-prefetch", "false")
	node.Stderr = io.Discard
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		node.Process.Signal(os.Interrupt)
		node.Wait()
	}()
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", eport))

	nginxURL := startNginxCache(t, originURL)
	vport := freePort(t)
	startVarnish(t, vport, originURL)
	varnishURL := fmt.Sprintf("http://127.0.0.1:%d", vport)

	systems := []struct{ name, url string }{{"deepcast", ours}, {"nginx", nginxURL}, {"varnish", varnishURL}}
	fmt.Printf("edge hot hits: ours (enter-deep) vs nginx proxy_cache vs Varnish malloc; wrk 2 threads, 64 connections, 200 objects, 5 s runs, %d interleaved rounds\n", edgeRounds)
	for _, load := range []struct {
		name  string
		paths []string
	}{{"1 MiB segments", segObjs}, {"2 KiB manifests", manifests}} {
		res := map[string][]wrkResult{}
		for _, s := range systems { // fill every cache, then warm
			runWrk(t, s.url, load.paths, 64, 3*time.Second)
		}
		for round := range edgeRounds {
			// Each round starts with the next system, so that none is
			// always the one measured right after another's load.
			for i := range systems {
				s := systems[(round+i)%len(systems)]
				res[s.name] = append(res[s.name], runWrk(t, s.url, load.paths, 64, 5*time.Second))
			}
		}
		med := map[string]wrkResult{}
		for _, s := range systems {
			med[s.name] = medianResult(res[s.name])
			fmt.Printf("  %-16s %-8s %s\n", load.name, s.name, med[s.name])
		}
		best := med["nginx"]
		if med["varnish"].RPS > best.RPS {
			best = med["varnish"]
		}
		bestP99 := min(med["nginx"].P99, med["varnish"].P99)
		fmt.Printf("  %-16s deepcast vs better peer: req/s %.2fx (target >= 1), p99 %.2fx of the better peer's (target <= 1)\n",
			load.name, med["deepcast"].RPS/best.RPS, float64(med["deepcast"].P99)/float64(bestP99))
		// The same, round by round: the machine's state drifts between
		// rounds (shared CPUs), and runs within a round share it.
		var rpsRatio, p99Ratio []float64
		for r := range edgeRounds {
			ours, n, v := res["deepcast"][r], res["nginx"][r], res["varnish"][r]
			rpsRatio = append(rpsRatio, ours.RPS/max(n.RPS, v.RPS))
			p99Ratio = append(p99Ratio, float64(ours.P99)/float64(min(n.P99, v.P99)))
		}
		fmt.Printf("  %-16s per round: req/s %s, p99 %s (median %.2fx, %.2fx)\n", load.name,
			ratios(rpsRatio), ratios(p99Ratio), median(rpsRatio), median(p99Ratio))
	}
	// Cold storm: 1,000 clients on a segment none of the systems has.
	storms := map[string][]time.Duration{}
	fresh := 0
	for round := range 3 {
		for _, s := range systems {
			fresh++
			path := strings.Replace(segs[round%len(segs)], "/vod/bench/", fmt.Sprintf("/vod/m%03d/", 100+fresh), 1)
			d, failed := coldStorm(t, s.url+path, 1000)
			if failed > 0 {
				fmt.Printf("  cold storm %s: %d of 1000 failed\n", s.name, failed)
			}
			storms[s.name] = append(storms[s.name], d)
		}
	}
	for _, s := range systems {
		slices.Sort(storms[s.name])
	}
	fmt.Printf("  cold storm (1000 clients, one fresh ~1 MiB segment), median of 3: deepcast %s, nginx %s, varnish %s (target: deepcast <= nginx)\n",
		storms["deepcast"][1].Round(time.Millisecond), storms["nginx"][1].Round(time.Millisecond), storms["varnish"][1].Round(time.Millisecond))
	var st edge.Stats
	if resp, err := http.Get(ours + "/api/stats"); err == nil {
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
	}
	fmt.Printf("  deepcast node: %d hits, %d misses, %d coalesced\n", st.Hits, st.Misses, st.Coalesced)
}
