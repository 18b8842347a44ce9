//go:build !js

package player

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestACutBodyIsResumed: a segment whose body breaks off is not fetched
// whole again: the next attempt asks for the rest, conditional on the
// strong ETag, and the SHA-256 check covers the whole body across both
// answers. A server that sends the whole again (no ranges, or another
// version), or a wrong rest, is read from the start; a body without a
// strong ETag is never resumed.
func TestACutBodyIsResumed(t *testing.T) {
	const size = 256 << 10
	v1 := bytes.Repeat([]byte("segment one "), size/12+1)[:size]
	v2 := bytes.Repeat([]byte("segment two "), size/12+1)[:size]
	tagOf := func(b []byte) string { s := sha256.Sum256(b); return `"` + hex.EncodeToString(s[:16]) + `"` }
	cases := []struct {
		name string
		// etag and body are answer k's (from 0); ranges: the server
		// serves ranges; wrongRange: it answers one with another.
		etag       func(k int) string
		body       func(k int) []byte
		ranges     bool
		wrongRange bool
		asked      []string // each request's Range and If-Range
		resumed    int64
		attempts   int64
		unchecked  bool // no SHA-256 declared (a weak ETag)
	}{
		{name: "the rest, as a range", etag: func(int) string { return tagOf(v1) }, body: func(int) []byte { return v1 }, ranges: true,
			asked: []string{"|", "bytes=131072-|" + tagOf(v1)}, resumed: 1, attempts: 2},
		{name: "a server without ranges", etag: func(int) string { return tagOf(v1) }, body: func(int) []byte { return v1 },
			asked: []string{"|", "bytes=131072-|" + tagOf(v1)}, attempts: 2},
		{name: "another version after the cut", etag: func(k int) string { return tagOf([][]byte{v1, v2}[min(k, 1)]) },
			body: func(k int) []byte { return [][]byte{v1, v2}[min(k, 1)] }, ranges: true,
			asked: []string{"|", "bytes=131072-|" + tagOf(v1)}, attempts: 2},
		{name: "a wrong rest", etag: func(int) string { return tagOf(v1) }, body: func(int) []byte { return v1 }, ranges: true, wrongRange: true,
			asked: []string{"|", "bytes=131072-|" + tagOf(v1), "|"}, attempts: 3},
		{name: "a weak ETag", etag: func(int) string { return "W/" + tagOf(v1) }, body: func(int) []byte { return v1 }, ranges: true,
			asked: []string{"|", "|"}, attempts: 2, unchecked: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var asked []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				k := len(asked)
				asked = append(asked, r.Header.Get("Range")+"|"+r.Header.Get("If-Range"))
				mu.Unlock()
				body, etag := c.body(k), c.etag(k)
				w.Header().Set("ETag", etag)
				if k == 0 {
					// The first answer breaks off halfway.
					w.Header().Set("Content-Length", strconv.Itoa(size))
					w.Write(body[:size/2])
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler)
				}
				if c.wrongRange && r.Header.Get("Range") != "" {
					w.Header().Set("Content-Range", "bytes 0-99/"+strconv.Itoa(size))
					w.WriteHeader(http.StatusPartialContent)
					w.Write(body[:100])
					return
				}
				if !c.ranges {
					r.Header.Del("Range")
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
			}))
			defer srv.Close()
			f := &HTTPFetcher{Client: srv.Client(), Clock: &sleepLog{}, Retries: 3, Backoff: time.Millisecond, Verify: true}
			d, err := f.Fetch(context.Background(), Request{URL: srv.URL + "/v/1.m4s", Size: size})
			st := f.Stats()
			if err != nil || d.Bytes != size {
				t.Fatalf("%d bytes, err %v; want %d", d.Bytes, err, size)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(asked, c.asked) || st.Resumed != c.resumed || st.Attempts != c.attempts {
				t.Errorf("asked %q, %d resumed, %d attempts; want %q, %d, %d", asked, st.Resumed, st.Attempts, c.asked, c.resumed, c.attempts)
			}
			// The check covered the bytes taken: a mix of versions, or a
			// hash restarted wrongly, would not match.
			if want := int64(1); c.unchecked && st.Verified != 0 || !c.unchecked && (st.Corrupt != 0 || st.Verified != want) {
				t.Errorf("%d verified, %d corrupt; want %d and 0", st.Verified, st.Corrupt, want)
			}
		})
	}
}
