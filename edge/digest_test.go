package edge

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge/httpsem"
)

// TestUpstreamBodiesMustMatchTheirDigest: an upstream body whose SHA-256
// is not the one its Repr-Digest names reaches no client whole and is
// never kept, small (read into memory) or large (spooled), with or
// without a Content-Length; a matching one is served and cached with its
// Repr-Digest passed on, so the tier below can check it too.
func TestUpstreamBodiesMustMatchTheirDigest(t *testing.T) {
	objectKinds := map[int]string{1: "small", 2: "large", 3: "small-chunked", 4: "large-chunked"}
	const small, large = 64 << 10, 3 << 20
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		// /vod/a/v/N.m4s: N%10 is the kind (objectKinds), N > 10 a bad digest.
		num, _ := strconv.Atoi(strings.TrimSuffix(r.URL.Path[len("/vod/a/v/"):], ".m4s"))
		name := objectKinds[num%10]
		size := small
		if strings.Contains(name, "large") {
			size = large
		}
		body := segmentBytes(r.URL.Path, size)
		sum := sha256.Sum256(body)
		if num > 10 {
			sum[0] ^= 1 // the store's object changed after its digest was recorded
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
		w.Header().Set("Repr-Digest", httpsem.ReprDigest(hex.EncodeToString(sum[:])))
		if !strings.HasSuffix(name, "chunked") {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.Write(body)
	}))
	t.Cleanup(upstream.Close)
	for _, disk := range []bool{false, true} {
		// No health probes: only what the fetches do to the upstream's health counts.
		cfg := Config{Profile: BringHome, Upstreams: []string{upstream.URL}, MemBytes: 16 << 20, Prefetch: noPrefetch(), CheckEvery: time.Hour}
		if disk {
			cfg.DiskDir = t.TempDir()
		}
		n, ts := newNode(t, cfg)
		for k, name := range objectKinds {
			good, bad := "/vod/a/v/"+strconv.Itoa(k)+".m4s", "/vod/a/v/"+strconv.Itoa(10+k)+".m4s"
			size := small
			if strings.Contains(name, "large") {
				size = large
			}
			want := segmentBytes(good, size)
			for round := range 2 { // the second time from cache
				resp, err := http.Get(ts.URL + good)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(got) != string(want) {
					t.Fatalf("disk %v, %s round %d: %d, %d bytes, %v; want the whole body", disk, good, round, resp.StatusCode, len(got), err)
				}
				if resp.Header.Get("Repr-Digest") == "" {
					t.Errorf("disk %v, %s round %d: Repr-Digest not passed on", disk, good, round)
				}
			}
			for round := range 2 { // the second time must go upstream again: nothing was kept
				resp, err := http.Get(ts.URL + bad)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode == 200 {
					t.Errorf("disk %v, %s round %d: a body that does not match its digest arrived whole (%d bytes)", disk, bad, round, len(got))
				}
				if st := resp.Header.Get("Cache-Status"); strings.Contains(st, "hit") {
					t.Errorf("disk %v, %s round %d: served from cache (%s)", disk, bad, round, st)
				}
			}
			if up := n.pool.list()[0]; !up.healthy.Load() || up.fails.Load() != 0 {
				t.Errorf("disk %v, %s: bad bodies counted against a healthy upstream (healthy %v, %d failures)", disk, bad, up.healthy.Load(), up.fails.Load())
			}
		}
		waitFor(t, "fills over", func() bool { n.fillsMu.Lock(); defer n.fillsMu.Unlock(); return len(n.fills) == 0 })
		if got := n.stats.digestMismatches.Load(); got != 8 {
			t.Errorf("disk %v: %d digest mismatches counted, want 8 (4 objects, twice each)", disk, got)
		}
		if disk {
			if objs, _, _ := n.disk.stats(); objs != 4 {
				t.Errorf("disk tier holds %d objects, want the 4 good ones", objs)
			}
		}
	}
}
