package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// slowParent is an upstream behind a slow link: it sends every segment at
// rate bits/s, paced from the first byte (a congested parent, as in
// TestBenchCMSDThroughAShield, without needing namespaces).
func slowParent(t *testing.T, size int, rate float64) string {
	t.Helper()
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Type", "video/iso.segment")
		w.Header().Set("ETag", `"`+strconv.Itoa(len(r.URL.Path))+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(size))
		start := time.Now()
		const chunk = 16 << 10
		for off := 0; off < size; off += chunk {
			if wait := time.Duration(float64(off*8)/rate*float64(time.Second)) - time.Since(start); wait > 0 {
				time.Sleep(wait)
			}
			if _, err := w.Write(body[off:min(size, off+chunk)]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// missTiming is one client's view of a miss: when its first byte came,
// when its last did, and the throughput a player that measures from the
// first byte to the last (dash.js) takes from it.
type missTiming struct {
	firstByte, total time.Duration
	seenMbps         float64
	err              error
}

// timeMiss fetches url and times it as missTiming says.
func timeMiss(client *http.Client, url string) missTiming {
	sent := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		return missTiming{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return missTiming{err: fmt.Errorf("%s", resp.Status)}
	}
	buf := make([]byte, 64<<10)
	_, err = resp.Body.Read(buf) // as dash.js, the rest is timed from the first bytes
	first := time.Now()
	rest := 0
	for err == nil {
		var m int
		m, err = resp.Body.Read(buf)
		rest += m
	}
	end := time.Now()
	if err != io.EOF {
		return missTiming{err: err}
	}
	return missTiming{firstByte: first.Sub(sent), total: end.Sub(sent),
		seenMbps: float64(rest*8) / max(end.Sub(first).Seconds(), 1e-6) / 1e6}
}

// TestBenchSlowParent: segments that miss at an edge whose parent sends
// them over a slow link (4 Mbit/s; a 500 KB segment takes a second), two
// viewers on each segment at once. A cache that waits for the whole body
// before it answers (store and forward: deepcast before -stream-after,
// and with -stream-after -1s) makes each viewer wait the whole second for
// its first byte, then sends it all at once: dash.js, which measures from
// the first byte to the last, sees the cache's own link (hundreds of
// Mbit/s) and climbs past what the parent can bring. Against nginx
// proxy_cache (proxy_cache_lock on, as in TestBenchEdgeVsPeers) and
// Varnish, which stream a miss. Run by make bench.
func TestBenchSlowParent(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	const (
		size     = 500_000
		rate     = 4e6
		rounds   = 3
		segments = 4
		viewers  = 2
	)
	parent := slowParent(t, size, rate)
	bin := buildBinary(t)
	startEdge := func(extra ...string) string {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		startNode(t, bin, addr, append([]string{"edge", "-profile", "enter-deep", "-upstream", parent, "-listen", addr,
			"-mem", "256MiB", "-prefetch", "false"}, extra...)...)
		return "http://" + addr
	}
	vport := freePort(t)
	startVarnish(t, vport, parent)
	systems := []struct{ name, url string }{
		{"deepcast (-stream-after 100ms)", startEdge()},
		{"deepcast -stream-after -1s (store and forward)", startEdge("-stream-after", "-1s")},
		{"nginx proxy_cache", startNginxCache(t, parent)},
		{"Varnish", fmt.Sprintf("http://127.0.0.1:%d", vport)},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: viewers, DisableCompression: true}, Timeout: 30 * time.Second}
	timings := make([][]missTiming, len(systems))
	for round := range rounds {
		for k := range systems {
			s := (k + round) % len(systems)
			for seg := range segments {
				url := fmt.Sprintf("%s/vod/slow/v/%d.m4s", systems[s].url, 1+s*1000+round*100+seg)
				got := make([]missTiming, viewers)
				var wg sync.WaitGroup
				for v := range viewers {
					wg.Go(func() { got[v] = timeMiss(client, url) })
				}
				wg.Wait()
				for _, m := range got {
					if m.err != nil {
						t.Fatalf("%s: %s: %v", systems[s].name, url, m.err)
					}
				}
				timings[s] = append(timings[s], got...)
			}
		}
	}
	fmt.Printf("misses behind a parent that sends at %.0f Mbit/s (%d KB segments, %d viewers on each at once, %d segments x %d interleaved rounds; medians over viewers)\n",
		rate/1e6, size/1000, viewers, segments, rounds)
	fmt.Printf("| system | first byte, earlier viewer | first byte, later viewer | last byte | throughput a dash.js viewer measures (first byte to last) |\n|---|---|---|---|---|\n")
	for s, sys := range systems {
		var early, late, tot, seen []float64
		for i := 0; i+viewers <= len(timings[s]); i += viewers {
			var first []float64
			for _, m := range timings[s][i : i+viewers] { // the viewers of one segment
				first = append(first, m.firstByte.Seconds()*1000)
				tot = append(tot, m.total.Seconds()*1000)
				seen = append(seen, m.seenMbps)
			}
			early, late = append(early, slices.Min(first)), append(late, slices.Max(first))
		}
		fmt.Printf("| %s | %.0f ms | %.0f ms | %.0f ms | %.1f Mbit/s (%.1f to %.1f) |\n", sys.name, median(early), median(late), median(tot), median(seen), slices.Min(seen), slices.Max(seen))
	}
}
