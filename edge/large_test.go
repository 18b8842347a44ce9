package edge

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bigUpstream serves /vod/a/v/N.m4s as size deterministic bytes, sent in
// chunks with a pause between them, with or without a Content-Length,
// counting requests; cutSegment stops halfway. With ranges set, a request
// with a Range is answered by ServeContent (after rangeWait) and counted
// apart.
type bigUpstream struct {
	size    int
	chunked bool
	pause   time.Duration
	hits    atomic.Int64
	ranges  atomic.Bool
	ranged  atomic.Int64
	// rangeWait holds each ranged answer back this long (nanoseconds).
	rangeWait atomic.Int64
	srv       *httptest.Server
}

// cutSegment is the path bigUpstream cuts halfway.
const cutSegment = "/vod/a/v/666.m4s"

func newBigUpstream(t *testing.T, size int, chunked bool, pause time.Duration) *bigUpstream {
	u := &bigUpstream{size: size, chunked: chunked, pause: pause}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		body := segmentBytes(r.URL.Path, u.size)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"`+strconv.Itoa(len(r.URL.Path))+`"`)
		if u.ranges.Load() && r.Header.Get("Range") != "" {
			u.ranged.Add(1)
			w.Header().Set("Cache-Status", "parent; hit; ttl=99") // as a tier above answers
			time.Sleep(time.Duration(u.rangeWait.Load()))
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
			return
		}
		u.hits.Add(1)
		if !u.chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		end := len(body)
		if r.URL.Path == cutSegment {
			end = len(body) / 2
		}
		for off := 0; off < end; off += 1 << 20 {
			w.Write(body[off:min(end, off+1<<20)])
			w.(http.Flusher).Flush()
			time.Sleep(u.pause)
		}
		if end < len(body) {
			panic(http.ErrAbortHandler) // the upstream dies mid-body
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// TestLargeObjectsStreamThroughOneFetch: objects larger than a node keeps
// in memory are streamed to every concurrent reader from one upstream
// fetch, with or without a Content-Length, byte for byte.
func TestLargeObjectsStreamThroughOneFetch(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			const size = 12 << 20
			up := newBigUpstream(t, size, chunked, 20*time.Millisecond)
			spool := t.TempDir()
			n, ts := newNode(t, Config{Upstreams: []string{up.srv.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(), SpoolDir: spool})
			if n.maxMemObject >= size {
				t.Fatalf("test object of %d bytes is not large for this node (%d)", size, n.maxMemObject)
			}
			want := segmentBytes("/vod/a/v/1.m4s", size)
			var wg sync.WaitGroup
			statuses := make([]string, 5)
			for i := range 5 {
				wg.Go(func() {
					resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s")
					statuses[i] = resp.Header.Get("Cache-Status")
					if resp.StatusCode != 200 || !bytes.Equal(body, want) {
						t.Errorf("reader %d: %d, %d bytes", i, resp.StatusCode, len(body))
					}
				})
			}
			wg.Wait()
			if got := up.hits.Load(); got != 1 {
				t.Errorf("%d upstream fetches for one object, want 1 (statuses %q)", got, statuses)
			}
			if n.Stats().CachedBytes["memory"] > 1<<20 {
				t.Errorf("a large object went into the memory tier (%d bytes)", n.Stats().CachedBytes["memory"])
			}
			if !strings.Contains(statuses[0]+statuses[1], "streamed") {
				t.Errorf("Cache-Status %q does not say streamed", statuses)
			}
			// Without a disk tier nothing is kept: the spool file is gone.
			waitFor(t, "spool file removed", func() bool {
				m, _ := filepath.Glob(filepath.Join(spool, "*"))
				n.fillsMu.Lock()
				defer n.fillsMu.Unlock()
				return len(n.fills) == 0 && len(m) == 0
			})
		})
	}
}

// TestLargeObjectsLandOnDiskAndServeRanges: a bring-home node keeps a
// finished large object on its disk tier and serves it (and ranges of it)
// from the file.
func TestLargeObjectsLandOnDiskAndServeRanges(t *testing.T) {
	const size = 10 << 20
	up := newBigUpstream(t, size, false, 0)
	_, ts := newNode(t, Config{Profile: BringHome, Upstreams: []string{up.srv.URL}, MemBytes: 32 << 20, DiskDir: t.TempDir()})
	want := segmentBytes("/vod/a/v/2.m4s", size)
	if resp, body := fetch(t, ts.URL+"/vod/a/v/2.m4s"); resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("first fetch: %d, %d bytes", resp.StatusCode, len(body))
	}
	var resp *http.Response
	var body []byte
	waitFor(t, "a hit from the disk tier", func() bool {
		resp, body = fetch(t, ts.URL+"/vod/a/v/2.m4s")
		return strings.Contains(resp.Header.Get("Cache-Status"), "hit")
	})
	if !bytes.Equal(body, want) || up.hits.Load() != 1 {
		t.Errorf("disk hit: %d bytes, %d upstream fetches", len(body), up.hits.Load())
	}
	resp, body = fetch(t, ts.URL+"/vod/a/v/2.m4s", "Range", "bytes=5000000-5000099")
	if resp.StatusCode != 206 || !bytes.Equal(body, want[5000000:5000100]) {
		t.Errorf("range from disk: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestLargeObjectCutUpstreamIsNotKept: an upstream that dies mid-body
// leaves its readers with a short, failed response and nothing cached;
// one that dies within StreamAfter, before anything was sent, gives a
// clean 502.
func TestLargeObjectCutUpstreamIsNotKept(t *testing.T) {
	const size = 8 << 20
	for _, c := range []struct {
		chunked     bool
		streamAfter time.Duration
		status      int
	}{
		{false, 0, http.StatusOK},              // too large for memory: streamed at once
		{true, time.Nanosecond, http.StatusOK}, // of unknown length, streamed at once
		{true, 0, http.StatusBadGateway},       // cut within StreamAfter (100 ms)
	} {
		up := newBigUpstream(t, size, c.chunked, 0)
		dir := t.TempDir()
		n, ts := newNode(t, Config{Profile: BringHome, Upstreams: []string{up.srv.URL}, MemBytes: 32 << 20, DiskDir: dir, StreamAfter: c.streamAfter})
		resp, err := http.Get(ts.URL + cutSegment)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		// An error status, or a broken body: without a Content-Length,
		// only a broken chunked body tells the client (or a cache below)
		// that it did not get the whole object.
		if resp.StatusCode != c.status {
			t.Fatalf("%+v: %d, want %d", c, resp.StatusCode, c.status)
		}
		if c.status == http.StatusOK && err == nil {
			t.Fatalf("%+v: a cut body ended cleanly (%d of %d bytes)", c, len(got), size)
		}
		waitFor(t, "fill over", func() bool { n.fillsMu.Lock(); defer n.fillsMu.Unlock(); return len(n.fills) == 0 })
		if objs, _, _ := n.disk.stats(); objs != 0 {
			t.Errorf("%+v: a cut object was stored on disk", c)
		}
	}
}

// TestLargeDiskObjectsAreCheckedAfterARestart: a large file on the disk
// tier whose bytes changed while the node was down (same length: the
// zeros a power cut can leave in a file renamed into place without fsync,
// or a rotting disk) is fetched again, never served; an intact one is a
// hit with no upstream fetch.
func TestLargeDiskObjectsAreCheckedAfterARestart(t *testing.T) {
	const size = 6 << 20
	up := newBigUpstream(t, size, false, 0)
	dir := t.TempDir()
	cfg := Config{Profile: BringHome, Upstreams: []string{up.srv.URL}, MemBytes: 16 << 20, DiskDir: dir, Prefetch: noPrefetch()}
	n1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts1 := httptest.NewServer(n1)
	for _, p := range []string{"/vod/a/v/1.m4s", "/vod/a/v/2.m4s"} {
		fetch(t, ts1.URL+p)
	}
	waitFor(t, "both objects on disk", func() bool { objs, _, _ := n1.disk.stats(); return objs == 2 })
	ts1.Close()
	n1.Close()

	victim := (&diskTier{dir: dir}).fileFor("/vod/a/v/2.m4s")
	f, err := os.OpenFile(victim, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if _, err := f.WriteAt(make([]byte, 1<<20), st.Size()-2<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if st2, _ := os.Stat(victim); st2.Size() != st.Size() {
		t.Fatalf("the damage changed the file's length")
	}

	n2, ts2 := newNode(t, cfg)
	fetched := up.hits.Load()
	for _, p := range []string{"/vod/a/v/1.m4s", "/vod/a/v/2.m4s"} {
		resp, body := fetch(t, ts2.URL+p)
		if resp.StatusCode != 200 || !bytes.Equal(body, segmentBytes(p, size)) {
			t.Errorf("%s after the restart: %d, %d bytes, not the object (Cache-Status %q)", p, resp.StatusCode, len(body), resp.Header.Get("Cache-Status"))
		}
	}
	if got := up.hits.Load() - fetched; got != 1 {
		t.Errorf("%d upstream fetches after the restart, want 1 (the damaged object only)", got)
	}
	waitFor(t, "the damaged object stored again", func() bool { objs, _, _ := n2.disk.stats(); return objs == 2 })
	resp, body := fetch(t, ts2.URL+"/vod/a/v/2.m4s")
	if !bytes.Equal(body, segmentBytes("/vod/a/v/2.m4s", size)) || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("the object fetched again: %d bytes, Cache-Status %q", len(body), resp.Header.Get("Cache-Status"))
	}
}

// TestLargeObjectInFillAnswersConditionals: a revalidation of a large
// object while it is still coming from upstream is answered 304 when its
// If-None-Match lists the object's tag among others, or names it weakly,
// and in full otherwise.
func TestLargeObjectInFillAnswersConditionals(t *testing.T) {
	const size = 12 << 20
	up := newBigUpstream(t, size, false, 300*time.Millisecond) // 3.6 s from first to last byte
	n, ts := newNode(t, Config{Upstreams: []string{up.srv.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(), SpoolDir: t.TempDir()})
	const path = "/vod/a/v/1.m4s"
	tag := `"` + strconv.Itoa(len(path)) + `"`
	first := make(chan struct{})
	go func() {
		defer close(first)
		fetch(t, ts.URL+path)
	}()
	waitFor(t, "a fill under way", func() bool {
		n.fillsMu.Lock()
		defer n.fillsMu.Unlock()
		return len(n.fills) == 1
	})
	for _, c := range []struct {
		inm  string
		want int
	}{
		{`"other", ` + tag, http.StatusNotModified},
		{"W/" + tag, http.StatusNotModified},
		{"*", http.StatusNotModified},
		{`"other"`, http.StatusOK},
	} {
		resp, body := fetch(t, ts.URL+path, "If-None-Match", c.inm)
		if resp.StatusCode != c.want || !strings.Contains(resp.Header.Get("Cache-Status"), "streamed") {
			t.Errorf("If-None-Match %s during the fill: %d (Cache-Status %q), want %d from the fill", c.inm, resp.StatusCode, resp.Header.Get("Cache-Status"), c.want)
		}
		if c.want == http.StatusOK && len(body) != size {
			t.Errorf("If-None-Match %s: %d bytes, want %d", c.inm, len(body), size)
		}
	}
	<-first
	if got := up.hits.Load(); got != 1 {
		t.Errorf("%d upstream fetches, want 1", got)
	}
}
