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

	"github.com/deepcast/deepcast/edge/httpsem"
)

// slowParent is an upstream behind a slow link: it sends every segment at
// rate bits/s, paced from the first byte (a congested parent, as in
// TestBenchCMSDThroughAShield, without needing namespaces). A request for
// one range gets that range (206), paced the same way. It counts the
// body bytes it sent for each path.
func slowParent(t *testing.T, size int, rate float64) *pacedParent {
	t.Helper()
	p := &pacedParent{sent: map[string]int64{}}
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
		w.Header().Set("Accept-Ranges", "bytes")
		send := body
		if first, last, ok := httpsem.SingleRange(r.Header.Get("Range"), int64(size)); ok {
			send = body[first : last+1]
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, size))
			w.Header().Set("Content-Length", strconv.Itoa(len(send)))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		start := time.Now()
		const chunk = 16 << 10
		for off := 0; off < len(send); off += chunk {
			if wait := time.Duration(float64(off*8)/rate*float64(time.Second)) - time.Since(start); wait > 0 {
				time.Sleep(wait)
			}
			k, err := w.Write(send[off:min(len(send), off+chunk)])
			p.mu.Lock()
			p.sent[r.URL.Path] += int64(k)
			p.mu.Unlock()
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// pacedParent is a slowParent: its URL and the bytes it sent per path.
type pacedParent struct {
	URL  string
	mu   sync.Mutex
	sent map[string]int64
}

// bytesSent is what p sent for path so far.
func (p *pacedParent) bytesSent(path string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[path]
}

// startDeepEdge runs bin as an enter-deep edge with mem of memory, no
// prefetch and the flags in extra, in front of parent, until the test
// ends; it returns its base URL.
func startDeepEdge(t *testing.T, bin, parent, mem string, extra ...string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNode(t, bin, addr, append([]string{"edge", "-profile", "enter-deep", "-upstream", parent, "-listen", addr,
		"-mem", mem, "-prefetch", "false"}, extra...)...)
	return "http://" + addr
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
	parent := slowParent(t, size, rate).URL
	bin := buildBinary(t)
	startEdge := func(extra ...string) string { return startDeepEdge(t, bin, parent, "256MiB", extra...) }
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

// TestBenchRangeAhead: a client asks for the last MB of a large segment
// (10 MB) that misses at an edge whose parent sends at 20 Mbit/s (the
// whole segment takes 4 s): a node below resuming a cut body asks for
// such a rest, a client seeking in a large object for such a tail. A
// cache that fetches the whole object and serves the range from it as it
// comes (nginx proxy_cache, Varnish, deepcast with -range-ahead -1s)
// makes the client wait for the 9 MB before its range; deepcast fetches
// a range that far ahead of its fill apart (and still fills the whole
// object). Run by make bench.
func TestBenchRangeAhead(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	const (
		size   = 10_000_000
		tail   = 1_000_000
		rate   = 20e6
		rounds = 3
	)
	paced := slowParent(t, size, rate)
	parent := paced.URL
	bin := buildBinary(t)
	startEdge := func(extra ...string) string { return startDeepEdge(t, bin, parent, "64MiB", extra...) }
	vport := freePort(t)
	startVarnish(t, vport, parent)
	systems := []struct{ name, url string }{
		{"deepcast (-range-ahead 1s)", startEdge()},
		{"deepcast -range-ahead -1s (waits for the fill)", startEdge("-range-ahead", "-1s")},
		{"nginx proxy_cache", startNginxCache(t, parent)},
		// nginx's own answer to ranges of large objects: the slice
		// module caches and fetches 1 MB pieces, each a ranged request.
		{"nginx proxy_cache, slice 1m", startNginxCache(t, parent, "slice 1m; proxy_cache_key $uri$slice_range;",
			"proxy_set_header Range $slice_range; proxy_cache_valid 206 1d;")},
		{"Varnish", fmt.Sprintf("http://127.0.0.1:%d", vport)},
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}
	took := make([][]float64, len(systems))
	for round := range rounds {
		for k := range systems {
			s := (k + round) % len(systems)
			url := systems[s].url + bigPath(s, round)
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", size-tail))
			sent := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", systems[s].name, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusPartialContent || len(body) != tail {
				t.Fatalf("%s: %s, %d bytes, err %v; want a 206 of %d bytes", systems[s].name, resp.Status, len(body), err, tail)
			}
			took[s] = append(took[s], time.Since(sent).Seconds()*1000)
			// The fills go on; the next system's request must not share
			// the parent's pacing with them (each request is paced on
			// its own, so they do not), nor the CPU: a pause.
			time.Sleep(200 * time.Millisecond)
		}
	}
	fmt.Printf("the last %d MB of a %d MB segment that misses, behind a parent that sends at %.0f Mbit/s (%d interleaved rounds)\n", tail/1_000_000, size/1_000_000, rate/1e6, rounds)
	// What each system took from the parent for one such request, once
	// its fills are over (a whole fill takes size*8/rate).
	time.Sleep(time.Duration(float64(size*8)/rate*float64(time.Second)) + time.Second)
	fmt.Printf("| system | the range's last byte, median (min to max) | MB from the parent a request |\n|---|---|---|\n")
	for s, sys := range systems {
		var sent int64
		for round := range rounds {
			sent += paced.bytesSent(bigPath(s, round))
		}
		fmt.Printf("| %s | %.0f ms (%.0f to %.0f) | %.1f |\n", sys.name, median(took[s]), slices.Min(took[s]), slices.Max(took[s]), float64(sent)/rounds/1e6)
	}
}

// bigPath is the segment system s asks for in round.
func bigPath(s, round int) string {
	return fmt.Sprintf("/vod/big/v/%d.m4s", 1+s*1000+round)
}
