package edge

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/deepcast/deepcast/edge/httpsem"
)

// playlistBody is an HLS media playlist of n segments, as long-form VOD
// makes them.
func playlistBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "#EXTINF:4.000,\n%d.m4s\n", i)
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return b.Bytes()
}

// manifestUpstream serves a long playlist, a short MPD and a segment, each
// with a strong ETag and the Repr-Digest of its bytes, and records the
// Accept-Encoding of each request.
func manifestUpstream(t *testing.T) (*httptest.Server, *[]string) {
	var asked []string
	bodies := map[string]struct {
		ctype string
		body  []byte
	}{
		"/vod/a/v/media.m3u8": {"application/vnd.apple.mpegurl", playlistBody(1800)},
		"/vod/a/manifest.mpd": {"application/dash+xml", []byte("<MPD>short</MPD>")},
		"/vod/a/v/1.m4s":      {"video/iso.segment", segmentBytes("/vod/a/v/1.m4s", 64<<10)},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		asked = append(asked, r.Header.Get("Accept-Encoding"))
		sum := sha256.Sum256(o.body)
		w.Header().Set("Content-Type", o.ctype)
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
		w.Header().Set("Repr-Digest", httpsem.ReprDigest(hex.EncodeToString(sum[:])))
		w.Write(o.body)
	}))
	t.Cleanup(srv.Close)
	return srv, &asked
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("broken gzip: %v", err)
	}
	return out
}

// TestManifestsAreGzippedForClientsThatAsk: a long playlist goes out
// gzipped to a client that takes gzip, as its own representation (its own
// ETag and Repr-Digest, Vary), on both the net/http path and the fast
// path, through two tiers; the tiers fetch identity; short manifests,
// segments and clients that refuse gzip get the identity bytes.
func TestManifestsAreGzippedForClientsThatAsk(t *testing.T) {
	up, asked := manifestUpstream(t)
	parent, pts := newNode(t, Config{Name: "home", Profile: BringHome, Upstreams: []string{up.URL}, Prefetch: noPrefetch()})
	_, cts := newNode(t, Config{Name: "deep", Upstreams: []string{pts.URL}, Prefetch: noPrefetch()})
	const playlist = "/vod/a/v/media.m3u8"
	want := playlistBody(1800)

	plainResp, plain := fetch(t, cts.URL+playlist)
	if !bytes.Equal(plain, want) || plainResp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("identity client: %d bytes, Content-Encoding %q", len(plain), plainResp.Header.Get("Content-Encoding"))
	}
	if plainResp.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("identity answer of a compressible object: Vary %q, want Accept-Encoding", plainResp.Header.Get("Vary"))
	}
	for _, ae := range []string{"gzip, deflate, br, zstd", "br;q=1, gzip;q=0.5"} {
		resp, body := fetch(t, cts.URL+playlist, "Accept-Encoding", ae)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Accept-Encoding %q: %d, Content-Encoding %q", ae, resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
		if got := gunzip(t, body); !bytes.Equal(got, want) {
			t.Fatalf("gzip answer decodes to %d bytes, want the playlist's %d", len(got), len(want))
		}
		if len(body)*5 > len(want) {
			t.Errorf("gzip answer is %d bytes for a %d-byte playlist", len(body), len(want))
		}
		if resp.Header.Get("ETag") == plainResp.Header.Get("ETag") || !strings.HasSuffix(resp.Header.Get("ETag"), `-gzip"`) {
			t.Errorf("gzip ETag %q, identity %q: want a tag of its own", resp.Header.Get("ETag"), plainResp.Header.Get("ETag"))
		}
		sum := sha256.Sum256(body)
		if d, ok := httpsem.ReprSHA256(resp.Header.Get("Repr-Digest")); !ok || d != sum {
			t.Errorf("gzip answer's Repr-Digest %q is not its bytes'", resp.Header.Get("Repr-Digest"))
		}
		if resp.Header.Get("Vary") != "Accept-Encoding" || resp.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Errorf("gzip answer: Vary %q, Content-Length %q for %d bytes", resp.Header.Get("Vary"), resp.Header.Get("Content-Length"), len(body))
		}
		// Its own tag revalidates it.
		if r304, _ := fetch(t, cts.URL+playlist, "Accept-Encoding", ae, "If-None-Match", resp.Header.Get("ETag")); r304.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match with the gzip tag: %d, want 304", r304.StatusCode)
		}
	}
	for _, ae := range []string{"gzip;q=0", "identity", "br", "gzip;q=nonsense"} {
		if resp, body := fetch(t, cts.URL+playlist, "Accept-Encoding", ae); !bytes.Equal(body, want) || resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, %d bytes; want identity", ae, resp.Header.Get("Content-Encoding"), len(body))
		}
	}
	for _, p := range []string{"/vod/a/manifest.mpd", "/vod/a/v/1.m4s"} {
		if resp, _ := fetch(t, cts.URL+p, "Accept-Encoding", "gzip"); resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Vary") != "" {
			t.Errorf("%s: Content-Encoding %q, Vary %q; want neither (short or not text)", p, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
		}
	}
	// A range of a gzip answer is a range of the gzip bytes.
	full, gz := fetch(t, cts.URL+playlist, "Accept-Encoding", "gzip")
	if resp, part := fetch(t, cts.URL+playlist, "Accept-Encoding", "gzip", "Range", "bytes=10-99"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, gz[10:100]) || resp.Header.Get("ETag") != full.Header.Get("ETag") {
		t.Errorf("range of the gzip answer: %d, %d bytes", resp.StatusCode, len(part))
	}

	// The fast path answers as net/http does.
	fast, ok := parent.Answer(PlainRequest{Path: playlist, Remote: "127.0.0.1:1", AcceptEncoding: "gzip"})
	if !ok || fast.Status != 200 || !strings.Contains(string(fast.Header), "Content-Encoding: gzip\r\n") || !strings.Contains(string(fast.Header), "Vary: Accept-Encoding\r\n") {
		t.Fatalf("fast path, gzip: ok=%v %d\n%s", ok, fast.Status, fast.Header)
	}
	if !bytes.Equal(gunzip(t, fast.Body), want) {
		t.Errorf("fast path gzip body does not decode to the playlist")
	}
	fastPlain, _ := parent.Answer(PlainRequest{Path: playlist, Remote: "127.0.0.1:1"})
	if !bytes.Equal(fastPlain.Body, want) || strings.Contains(string(fastPlain.Header), "Content-Encoding") {
		t.Errorf("fast path, no Accept-Encoding: %d bytes\n%s", len(fastPlain.Body), fastPlain.Header)
	}

	// Every tier asked its upstream for identity: what Repr-Digest and
	// the ETag describe, and what each tier checks.
	for _, ae := range *asked {
		if ae != "identity" {
			t.Errorf("the bring-home node asked its origin for Accept-Encoding %q", ae)
		}
	}
	if parent.Stats().DigestMismatches != 0 {
		t.Errorf("digest mismatches between the tiers: %d", parent.Stats().DigestMismatches)
	}
}

// TestUpstreamContentCodingIsRefused: an upstream that encodes a body the
// edge asked for as identity is not kept: its bytes are not the
// representation the edge would serve them as.
func TestUpstreamContentCodingIsRefused(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(playlistBody(100))
		zw.Close()
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write(b.Bytes())
	}))
	defer up.Close()
	n, ts := newNode(t, Config{Upstreams: []string{up.URL}, Prefetch: noPrefetch()})
	resp, _ := fetch(t, ts.URL+"/vod/a/v/media.m3u8")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("an encoded answer to a request for identity: %d, want 502", resp.StatusCode)
	}
	if objs := n.Stats().Objects["memory"]; objs != 0 {
		t.Errorf("%d objects cached", objs)
	}
}
