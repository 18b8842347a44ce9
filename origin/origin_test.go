package origin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/httpsem/httpsemtest"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
)

func TestMain(m *testing.M) { mediatest.Main(m) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start serves lib on a loopback port.
func start(t *testing.T, lib string, mut ...func(*Config)) (*Server, *httptest.Server) {
	t.Helper()
	cfg := Config{Library: lib, AdminToken: "secret-token", Logger: quietLogger(), CheckEvery: 50 * time.Millisecond, AccessLog: accesslog.New(io.Discard, "origin")}
	for _, f := range mut {
		f(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return do(t, http.MethodGet, url, hdr...)
}

func do(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if req.Header.Get("Accept-Encoding") == "" {
		// What the tests check is the identity representation; Go's
		// transport would otherwise ask for gzip and decode it out of
		// sight, leaving the gzip one's headers on the identity bytes.
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestFFmpegPlaysOverHTTP(t *testing.T) {
	_, ts := start(t, mediatest.Library(t))
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	mediatest.CheckDecodesAll(t, ts.URL+"/vod/"+mediatest.AssetName+"/manifest.mpd", 2, frames)
}

func TestHeadersPerRoute(t *testing.T) {
	forEachLibrary(t, func(t *testing.T, lib string, on func(*Config)) {
		_, ts := start(t, lib, on)
		a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
		if err != nil {
			t.Fatal(err)
		}
		v := a.Renditions[0]
		var audio media.Rendition
		for _, r := range a.Renditions {
			if r.Type == "audio" {
				audio = r
			}
		}
		base := ts.URL + "/vod/" + mediatest.AssetName
		tests := []struct {
			path, ctype, cache, etag string
		}{
			{base + "/manifest.mpd", "application/dash+xml", "public, max-age=60", a.Manifest.SHA256},
			{base + "/" + v.ID + "/init.mp4", "video/mp4", "public, max-age=31536000, immutable", v.Init.SHA256},
			{base + "/" + audio.ID + "/init.mp4", "audio/mp4", "public, max-age=31536000, immutable", audio.Init.SHA256},
			{base + "/" + v.ID + "/2.m4s", "video/iso.segment", "public, max-age=31536000, immutable", v.Segments[1].SHA256},
			{base + "/thumbs/1.jpg", "image/jpeg", "public, max-age=31536000, immutable", a.Thumbnails.Tiles[0].SHA256},
			{ts.URL + "/api/assets", "application/json", "no-store", ""},
			{ts.URL + "/api/assets/" + mediatest.AssetName, "application/json", "no-store", ""},
			{ts.URL + "/healthz", "text/plain; charset=utf-8", "no-store", ""},
			{ts.URL + "/readyz", "text/plain; charset=utf-8", "no-store", ""},
			{ts.URL + "/metrics", "text/plain", "no-store", ""},
		}
		for _, tt := range tests {
			resp, body := get(t, tt.path)
			h := resp.Header
			if resp.StatusCode != 200 {
				t.Errorf("%s: status %d", tt.path, resp.StatusCode)
				continue
			}
			if !strings.HasPrefix(h.Get("Content-Type"), tt.ctype) || h.Get("Cache-Control") != tt.cache {
				t.Errorf("%s: Content-Type %q Cache-Control %q", tt.path, h.Get("Content-Type"), h.Get("Cache-Control"))
			}
			if h.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("%s: no CORS header", tt.path)
			}
			if tt.etag == "" {
				continue
			}
			sum := sha256.Sum256(body)
			if h.Get("ETag") != `"`+tt.etag[:32]+`"` || hex.EncodeToString(sum[:]) != tt.etag {
				t.Errorf("%s: ETag %s does not match the content checksum", tt.path, h.Get("ETag"))
			}
			if h.Get("Last-Modified") == "" || h.Get("Accept-Ranges") != "bytes" {
				t.Errorf("%s: Last-Modified %q Accept-Ranges %q", tt.path, h.Get("Last-Modified"), h.Get("Accept-Ranges"))
			}
			for _, exp := range []string{"Content-Length", "Content-Range", "ETag"} {
				if !strings.Contains(h.Get("Access-Control-Expose-Headers"), exp) {
					t.Errorf("%s: %s not exposed to scripts", tt.path, exp)
				}
			}
		}
		// What the library does not hold: caches may keep a media path's 404
		// briefly (so a flood of one missing object stays at the edges); the
		// API's stays no-store.
		for _, tt := range []struct{ path, cache string }{
			{ts.URL + "/vod/nope/manifest.mpd", "public, max-age=2"},
			{ts.URL + "/vod/nope/master.m3u8", "public, max-age=2"},
			{base + "/nope/init.mp4", "public, max-age=2"},
			{base + "/" + v.ID + "/99999.m4s", "public, max-age=2"},
			{base + "/nope/media.m3u8", "public, max-age=2"},
			{ts.URL + "/api/assets/nope", "no-store"},
		} {
			resp, _ := get(t, tt.path)
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != tt.cache {
				t.Errorf("%s: %d, Cache-Control %q; want 404, %q", tt.path, resp.StatusCode, resp.Header.Get("Cache-Control"), tt.cache)
			}
		}
		// The tag is the content's, not the server's: a second origin (a replica,
		// or this one restarted) gives the same.
		_, ts2 := start(t, lib, on)
		r1, _ := get(t, base+"/"+v.ID+"/1.m4s")
		r2, _ := get(t, ts2.URL+"/vod/"+mediatest.AssetName+"/"+v.ID+"/1.m4s")
		if r1.Header.Get("ETag") != r2.Header.Get("ETag") || r1.Header.Get("Last-Modified") != r2.Header.Get("Last-Modified") {
			t.Errorf("replicas disagree: %s/%s vs %s/%s", r1.Header.Get("ETag"), r1.Header.Get("Last-Modified"),
				r2.Header.Get("ETag"), r2.Header.Get("Last-Modified"))
		}
	})
}

func TestRangesConditionalsHeadAndCORS(t *testing.T) {
	forEachLibrary(t, func(t *testing.T, lib string, on func(*Config)) {
		_, ts := start(t, lib, on)
		a, _ := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
		v := a.Renditions[0]
		url := ts.URL + "/vod/" + mediatest.AssetName + "/" + v.ID + "/1.m4s"
		full, err := os.ReadFile(filepath.Join(lib, mediatest.AssetName, v.ID, "1.m4s"))
		if err != nil {
			t.Fatal(err)
		}
		size := len(full)

		resp, body := get(t, url, "Range", "bytes=0-99")
		if resp.StatusCode != 206 || !bytes.Equal(body, full[:100]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-99/%d", size) {
			t.Errorf("first bytes: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
		}
		resp, body = get(t, url, "Range", "bytes=-500")
		if resp.StatusCode != 206 || !bytes.Equal(body, full[size-500:]) {
			t.Errorf("suffix: %d, %d bytes", resp.StatusCode, len(body))
		}
		resp, body = get(t, url, "Range", "bytes=0-9,100-109")
		if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
			t.Errorf("multi-range: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		} else {
			_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			var parts [][]byte
			for {
				p, err := mr.NextPart()
				if err != nil {
					break
				}
				b, _ := io.ReadAll(p)
				parts = append(parts, b)
			}
			if len(parts) != 2 || !bytes.Equal(parts[0], full[0:10]) || !bytes.Equal(parts[1], full[100:110]) {
				t.Errorf("multi-range parts wrong: %d parts", len(parts))
			}
		}
		resp, _ = get(t, url, "Range", fmt.Sprintf("bytes=%d-", size+10))
		if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("unsatisfiable: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
		}
		// RFC 9110 §14.1-14.2: the unit is case-insensitive, and a Range in
		// a unit the server does not know is ignored, not refused.
		resp, body = get(t, url, "Range", "Bytes=0-99")
		if resp.StatusCode != 206 || !bytes.Equal(body, full[:100]) {
			t.Errorf("Bytes=0-99: %d, %d bytes", resp.StatusCode, len(body))
		}
		resp, body = get(t, url, "Range", "items=0-1")
		if resp.StatusCode != 200 || !bytes.Equal(body, full) {
			t.Errorf("items=0-1: %d, %d bytes", resp.StatusCode, len(body))
		}
		// A last-pos past any length reaches the end (RFC 9110 §14.1.2);
		// a suffix of no bytes cannot be satisfied (§14.1.1).
		resp, body = get(t, url, "Range", "bytes=10-18446744073709551615000")
		if resp.StatusCode != 206 || !bytes.Equal(body, full[10:]) {
			t.Errorf("bytes=10-(past int64): %d, %d bytes", resp.StatusCode, len(body))
		}
		for _, rng := range []string{"bytes=-0", "bytes=18446744073709551615000-", "bytes=-+0"} {
			resp, _ = get(t, url, "Range", rng)
			if want := fmt.Sprintf("bytes */%d", len(full)); resp.StatusCode != 416 || resp.Header.Get("Content-Range") != want {
				t.Errorf("%s: %d, Content-Range %q, want 416 with %q", rng, resp.StatusCode, resp.Header.Get("Content-Range"), want)
			}
		}

		first, _ := get(t, url)
		tag, lm := first.Header.Get("ETag"), first.Header.Get("Last-Modified")
		if resp, body := get(t, url, "If-None-Match", tag); resp.StatusCode != 304 || len(body) != 0 {
			t.Errorf("If-None-Match: %d", resp.StatusCode)
		}
		if resp, _ := get(t, url, "If-None-Match", `"other"`); resp.StatusCode != 200 {
			t.Errorf("If-None-Match other: %d", resp.StatusCode)
		}
		if resp, _ := get(t, url, "If-Modified-Since", lm); resp.StatusCode != 304 {
			t.Errorf("If-Modified-Since: %d", resp.StatusCode)
		}
		if resp, _ := get(t, url, "If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"); resp.StatusCode != 200 {
			t.Errorf("If-Modified-Since old: %d", resp.StatusCode)
		}
		resp, body = do(t, http.MethodHead, url)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(size) || resp.Header.Get("ETag") != tag {
			t.Errorf("HEAD: %d len %d cl %d", resp.StatusCode, len(body), resp.ContentLength)
		}

		resp, _ = do(t, http.MethodOptions, url, "Origin", "http://127.0.0.1:9999", "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "range")
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Range") ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}

		for _, p := range []string{"/vod/nope/manifest.mpd", "/vod/" + mediatest.AssetName + "/" + v.ID + "/99.m4s",
			"/vod/" + mediatest.AssetName + "/nope/1.m4s", "/vod/" + mediatest.AssetName + "/nope/init.mp4", "/api/assets/nope", "/api/jobs/nope"} {
			if resp, _ := get(t, ts.URL+p); resp.StatusCode != 404 {
				t.Errorf("%s: %d, want 404", p, resp.StatusCode)
			}
		}
	})
}

// rawGet sends a request line exactly as given (no client-side cleaning).
func rawGet(t *testing.T, addr, target string) (int, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func TestHostilePaths(t *testing.T) {
	forEachLibrary(t, func(t *testing.T, lib string, on func(*Config)) {
		// A secret beside the library and inside its parent: it must never be served.
		secret := []byte("TOP-SECRET-DO-NOT-SERVE")
		os.WriteFile(filepath.Join(filepath.Dir(lib), "secret.m4s"), secret, 0o644)
		os.WriteFile(filepath.Join(filepath.Dir(lib), "manifest.mpd"), secret, 0o644)
		_, ts := start(t, lib, on)
		addr := strings.TrimPrefix(ts.URL, "http://")
		a := mediatest.AssetName
		paths := []string{
			"/vod/../secret.m4s",
			"/vod/../../manifest.mpd",
			"/vod/%2e%2e/manifest.mpd",
			"/vod/%2E%2E/%2e%2e/secret.m4s",
			"/vod/..%2fsecret/manifest.mpd",
			"/vod/" + a + "%2f..%2f..%2fsecret.m4s",
			"/vod/" + a + "/..%2f..%2fsecret/1.m4s",
			"/vod/%252e%252e/manifest.mpd",
			"/vod/%252e%252e%252fsecret/init.mp4",
			"/vod/" + a + "%00/manifest.mpd",
			"/vod/" + a + "/video%00/init.mp4",
			"/vod/..\\..\\secret/manifest.mpd",
			"/vod/" + a + "/..\\..\\/1.m4s",
			"/vod/%5c..%5csecret/manifest.mpd",
			"/vod//etc/passwd/init.mp4",
			"/vod/%2fetc%2fpasswd/manifest.mpd",
			"/vod/" + strings.Repeat("a", 300) + "/manifest.mpd",
			"/vod/" + a + "/" + strings.Repeat("r", 300) + "/init.mp4",
			"/vod/" + a + "/720p/" + strings.Repeat("9", 40) + ".m4s",
			"/vod/\u2024\u2024/manifest.mpd",       // one-dot leaders that look like ".."
			"/vod/%E2%80%A4%E2%80%A4/manifest.mpd", // the same, encoded
			"/vod/\uff0e\uff0e/manifest.mpd",       // fullwidth full stops
			"/vod/" + a + "/\u2215etc/init.mp4",    // division slash
			"/vod/./manifest.mpd",
			"/vod/" + a + "/./1.m4s",
			"/vod/" + a + "/../" + a + "/manifest.mpd",
			"/vod/" + a + "/x/-1.m4s",
			"/vod/" + a + "/x/0.m4s",
			"/vod/" + a + "/x/01.m4s",
			"/vod/" + a + "/x/1e3.m4s",
			"/vod/" + a + "/x/+1.m4s",
			"/vod/" + a + "/x/1.m4s.bak",
			"/vod/.versions/manifest.mpd",
			"/vod/" + a + "/asset.json",
			"/vod/" + a + "/",
			"/vod/",
			"/../../../../etc/passwd",
			"/vod/%00/manifest.mpd",
			"/vod/" + a + "/%2e%2e/%2e%2e/secret.m4s",
			"/vod/" + a + "/thumbs/0.jpg",
			"/vod/" + a + "/thumbs/01.jpg",
			"/vod/" + a + "/thumbs/2.jpg",
			"/vod/" + a + "/thumbs/" + strings.Repeat("9", 40) + ".jpg",
			"/vod/" + a + "/thumbs/..%2f..%2f..%2fsecret.jpg",
			"/vod/" + a + "/thumbs/1.jpg%00",
			"/vod/" + a + "/thumbs/1.m4s",
			"/vod/" + a + "/x/text.vtt",
		}
		if len(paths) < 25 {
			t.Fatalf("only %d hostile paths", len(paths))
		}
		srv, _ := start(t, lib, on)
		for _, p := range paths {
			if r, ok := srv.AnswerPlain(false, p, "test"); ok {
				t.Errorf("%q: the fast path answered", p)
				if r.File != nil {
					r.File.Close()
				}
			}
			code, body := rawGet(t, addr, p)
			if code != 400 && code != 404 {
				t.Errorf("%q: status %d, want 400 or 404", p, code)
			}
			if bytes.Contains(body, secret) || bytes.Contains(body, []byte("<MPD")) || bytes.Contains(body, []byte("root:")) {
				t.Errorf("%q: served content", p)
			}
		}
	})
}

func FuzzPaths(f *testing.F) {
	lib := mediatest.Library(f)
	s, err := New(Config{Library: lib, Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	a, _ := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	valid := map[string]bool{"/vod/" + mediatest.AssetName + "/manifest.mpd": true}
	for _, r := range a.Renditions {
		valid["/vod/"+mediatest.AssetName+"/"+r.ID+"/init.mp4"] = true
		for _, sg := range r.Segments {
			valid[fmt.Sprintf("/vod/%s/%s/%d.m4s", mediatest.AssetName, r.ID, sg.Number)] = true
		}
	}
	for p := range valid {
		f.Add(p)
	}
	f.Add("/vod/%2e%2e/manifest.mpd")
	f.Add("/vod/clip/x/0001.m4s")
	f.Fuzz(func(t *testing.T, path string) {
		if !strings.HasPrefix(path, "/vod/") {
			return
		}
		req, err := http.NewRequest(http.MethodGet, "http://x"+path, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code == 200 && !valid[req.URL.EscapedPath()] && !valid[req.URL.Path] {
			t.Fatalf("%q served 200", path)
		}
		if r, ok := s.AnswerPlain(false, path, "fuzz"); ok {
			if r.File != nil {
				r.File.Close()
			}
			if !valid[path] {
				t.Fatalf("fast path answered %q", path)
			}
		}
		if rec.Code >= 500 {
			t.Fatalf("%q: status %d", path, rec.Code)
		}
	})
}

// TestAnswerPlainMatchesServeHTTP pins the fast path to the net/http path:
// the same status, headers (but Date, which the writer adds) and bytes for
// every kind of media object, GET and HEAD, and the same metrics.
func TestAnswerPlainMatchesServeHTTP(t *testing.T) {
	lib := mediatest.Library(t)
	s, _ := start(t, lib)
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"/vod/" + a.Name + "/manifest.mpd", "/vod/" + a.Name + "/thumbs/media.m3u8"}
	for _, r := range a.Renditions {
		paths = append(paths, "/vod/"+a.Name+"/"+r.ID+"/init.mp4", fmt.Sprintf("/vod/%s/%s/%d.m4s", a.Name, r.ID, len(r.Segments)))
	}
	for _, p := range paths {
		for _, head := range []bool{false, true} {
			method := map[bool]string{false: http.MethodGet, true: http.MethodHead}[head]
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(method, p, nil))
			before := s.requests.Load()
			fr, ok := s.AnswerPlain(head, p, "127.0.0.1:1")
			if !ok {
				t.Fatalf("%s %s: the fast path declined", method, p)
			}
			body := fr.Body
			size := int64(len(fr.Body))
			if fr.File != nil {
				body, _ = io.ReadAll(fr.File)
				fr.File.Close()
				size = fr.Size
			}
			fr.Done(size, time.Millisecond, nil)
			if s.requests.Load() != before+1 {
				t.Errorf("%s %s: the fast path did not count the request", method, p)
			}
			got := http.Header{}
			for line := range strings.SplitSeq(strings.TrimSuffix(string(fr.Header), "\r\n"), "\r\n") {
				k, v, _ := strings.Cut(line, ": ")
				got.Add(k, v)
			}
			got.Set("Content-Length", strconv.FormatInt(size, 10))
			want := rec.Header().Clone()
			want.Del("Date")
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %s headers:\n fast     %v\n net/http %v", method, p, got, want)
			}
			if !head && !bytes.Equal(body, rec.Body.Bytes()) {
				t.Errorf("%s %s: bodies differ (%d vs %d bytes)", method, p, len(body), rec.Body.Len())
			}
		}
	}
}

func TestParseSegmentNumber(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "42": 42, "999999999": 999999999} {
		if n, ok := parseSegmentNumber(in); !ok || n != want {
			t.Errorf("parseSegmentNumber(%q) = %d, %v", in, n, ok)
		}
	}
	for _, in := range []string{"", "0", "01", "-1", "+1", "1.0", "1e3", "١", "1000000000", " 1"} {
		if _, ok := parseSegmentNumber(in); ok {
			t.Errorf("parseSegmentNumber(%q) accepted", in)
		}
	}
}

func uploadFile(t *testing.T, url, token, path string, fields map[string]string) (*http.Response, Job) {
	t.Helper()
	return uploadWith(t, url, token, path, fields, nil)
}

// uploadWith is uploadFile with more file parts after the source: field
// name and file, in order.
func uploadWith(t *testing.T, url, token, path string, fields map[string]string, files [][2]string) (*http.Response, Job) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for k, v := range fields {
			mw.WriteField(k, v)
		}
		for _, part := range append([][2]string{{"file", path}}, files...) {
			fw, _ := mw.CreateFormFile(part[0], filepath.Base(part[1]))
			f, err := os.Open(part[1])
			if err == nil {
				io.Copy(fw, f)
				f.Close()
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	return postUpload(t, url, token, pr, mw.FormDataContentType())
}

// postUpload sends an ingest request with body (a multipart form of
// contentType) and decodes the job it answers with, if any.
func postUpload(t *testing.T, url, token string, body io.Reader, contentType string) (*http.Response, Job) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/api/assets", body)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j Job
	json.NewDecoder(resp.Body).Decode(&j)
	return resp, j
}

func waitJob(t *testing.T, url, id string) (Job, []Job) {
	t.Helper()
	var seen []Job
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, body := get(t, url+"/api/jobs/"+id)
		if resp.StatusCode != 200 {
			t.Fatalf("job %s: %d", id, resp.StatusCode)
		}
		var j Job
		if err := json.Unmarshal(body, &j); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, j)
		if j.State == JobDone || j.State == JobFailed {
			return j, seen
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return Job{}, nil
}

func TestIngest(t *testing.T) {
	lib := t.TempDir()
	_, ts := start(t, lib)
	src := mediatest.Source(t)

	if resp, _ := uploadFile(t, ts.URL, "", src, nil); resp.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := uploadFile(t, ts.URL, "wrong", src, nil); resp.StatusCode != 403 {
		t.Errorf("wrong token: %d, want 403", resp.StatusCode)
	}

	resp, j := uploadFile(t, ts.URL, "secret-token", src, map[string]string{"name": "uploaded", "ladder": "320x180@300k"})
	if resp.StatusCode != 202 || j.ID == "" || resp.Header.Get("Location") != "/api/jobs/"+j.ID {
		t.Fatalf("upload: %d %+v", resp.StatusCode, j)
	}
	// Not in the catalogue until complete.
	done, seen := waitJob(t, ts.URL, j.ID)
	if done.State != JobDone || done.Manifest != "/vod/uploaded/manifest.mpd" {
		t.Fatalf("job ended %+v", done)
	}
	sawProgress := false
	for _, s := range seen {
		if s.State == JobRunning && s.Progress > 0 && s.Progress < 1 {
			sawProgress = true
		}
	}
	if !sawProgress {
		t.Logf("no intermediate progress observed in %d polls (fast encode)", len(seen))
	}
	// Whatever the polls caught, the job ends at full progress of its last stage.
	if done.Progress != 1 || done.Stage == "" {
		t.Errorf("finished job reports stage %q, progress %.2f", done.Stage, done.Progress)
	}
	mediatest.CheckDecodesAll(t, ts.URL+done.Manifest, 1, mediatest.CountFrames(t, src))
	if resp, _ := get(t, ts.URL+"/api/assets/uploaded"); resp.StatusCode != 200 {
		t.Errorf("catalogue: %d", resp.StatusCode)
	}

	// thumbnails=false and surround=false do what package's flags do;
	// a value that is neither true nor false is refused at once.
	resp, j = uploadFile(t, ts.URL, "secret-token", mediatest.Film(t, t.TempDir(), 3*time.Second),
		map[string]string{"name": "plain", "ladder": "320x180@300k", "thumbnails": "false", "surround": "0"})
	if resp.StatusCode != 202 {
		t.Fatalf("upload plain: %d", resp.StatusCode)
	}
	if done, _ := waitJob(t, ts.URL, j.ID); done.State != JobDone {
		t.Fatalf("job ended %+v", done)
	}
	plain, err := media.LoadAsset(filepath.Join(lib, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	sounds := 0
	for _, r := range plain.Renditions {
		if r.Type == "audio" {
			sounds++
			if r.Channels != 2 {
				t.Errorf("surround=false made %s with %d channels", r.ID, r.Channels)
			}
		}
	}
	if plain.Thumbnails != nil || sounds != len(mediatest.FilmSounds)-1 {
		t.Errorf("thumbnails=false, surround=false: thumbnails %+v, %d sounds", plain.Thumbnails, sounds)
	}
	if uploaded, err := media.LoadAsset(filepath.Join(lib, "uploaded")); err != nil || uploaded.Thumbnails == nil {
		t.Errorf("an upload without the fields has no thumbnails (%v)", err)
	}
	for _, field := range []string{"thumbnails", "surround"} {
		if resp, _ := uploadFile(t, ts.URL, "secret-token", src, map[string]string{"name": "x", field: "maybe"}); resp.StatusCode != 400 {
			t.Errorf("%s=maybe: %d, want 400", field, resp.StatusCode)
		}
	}

	// A corrupt upload fails with a reason and leaves no asset.
	bad := filepath.Join(t.TempDir(), "broken.mp4")
	data, _ := os.ReadFile(src)
	os.WriteFile(bad, data[len(data)/2:], 0o644)
	resp, j = uploadFile(t, ts.URL, "secret-token", bad, map[string]string{"name": "broken"})
	if resp.StatusCode != 202 {
		t.Fatalf("upload broken: %d", resp.StatusCode)
	}
	failed, _ := waitJob(t, ts.URL, j.ID)
	if failed.State != JobFailed || !strings.Contains(failed.Error, "broken.mp4") {
		t.Errorf("corrupt upload: %+v", failed)
	}
	if resp, _ := get(t, ts.URL+"/api/assets/broken"); resp.StatusCode != 404 {
		t.Errorf("broken asset visible: %d", resp.StatusCode)
	}
	entries, _ := os.ReadDir(lib)
	for _, e := range entries {
		if strings.Contains(e.Name(), "broken") || strings.HasPrefix(e.Name(), ".staging") {
			t.Errorf("failed job left %s", e.Name())
		}
	}
}

// TestIngestTakesSubtitleFiles: subtitle files sent with a source
// (fields subtitles and subtitles:LANG[+ROLE]) are packaged as its
// subtitle tracks; one that is not a text subtitle file (a playlist
// naming a server file) fails the job by its upload name and publishes
// nothing, and a field that names no language or a file over
// media.MaxSubtitleBytes is refused at once.
func TestIngestTakesSubtitleFiles(t *testing.T) {
	lib := t.TempDir()
	_, ts := start(t, lib)
	dir := t.TempDir()
	de := mediatest.WriteSRT(t, filepath.Join(dir, "film.de.srt"), "Deutsch", 6*time.Second)
	und := mediatest.WriteSRT(t, filepath.Join(dir, "film.srt"), "Text", 6*time.Second)
	resp, j := uploadWith(t, ts.URL, "secret-token", mediatest.Source(t), map[string]string{"name": "subbed", "ladder": "320x180@300k"},
		[][2]string{{"subtitles:de", de}, {"subtitles:en+caption", und}, {"subtitles", und}})
	if resp.StatusCode != 202 {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	if done, _ := waitJob(t, ts.URL, j.ID); done.State != JobDone {
		t.Fatalf("job ended %+v", done)
	}
	var summary AssetSummary
	if _, body := get(t, ts.URL+"/api/assets/subbed"); json.Unmarshal(body, &summary) != nil {
		t.Fatal("catalogue")
	}
	var ids []string
	for _, s := range summary.Subtitles {
		ids = append(ids, s.ID)
	}
	if !slices.Equal(ids, []string{"text-de", "text-en-caption", "text-und"}) {
		t.Errorf("subtitle tracks %v", summary.Subtitles)
	}
	if resp, body := get(t, ts.URL+"/vod/subbed/text-de/text.vtt"); resp.StatusCode != 200 || !strings.Contains(string(body), "Deutsch 2") {
		t.Errorf("text-de: %d %q", resp.StatusCode, body)
	}

	leak := playlistNaming(t, filepath.Join(dir, "innocent.srt"), filepath.Join(lib, "subbed", "text-de", "text.vtt"))
	resp, j = uploadWith(t, ts.URL, "secret-token", mediatest.Source(t), map[string]string{"name": "leak"}, [][2]string{{"subtitles:en", leak}})
	wantRefusedJob(t, ts.URL, resp, j, "leak", "not a subtitle file", "innocent.srt")
	if resp, _ := uploadWith(t, ts.URL, "secret-token", mediatest.Source(t), nil, [][2]string{{"subtitles:English", de}}); resp.StatusCode != 400 {
		t.Errorf("subtitles:English: %d, want 400", resp.StatusCode)
	}
	huge := filepath.Join(dir, "huge.srt")
	os.WriteFile(huge, bytes.Repeat([]byte("a"), media.MaxSubtitleBytes+1), 0o644)
	if resp, _ := uploadWith(t, ts.URL, "secret-token", mediatest.Source(t), nil, [][2]string{{"subtitles", huge}}); resp.StatusCode != 400 {
		t.Errorf("subtitles of %d bytes: %d, want 400", media.MaxSubtitleBytes+1, resp.StatusCode)
	}
}

func TestUploadLimit(t *testing.T) {
	_, ts := start(t, t.TempDir(), func(c *Config) { c.MaxUpload = 1000 })
	resp, _ := uploadFile(t, ts.URL, "secret-token", mediatest.Source(t), nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized upload: %d, want 413", resp.StatusCode)
	}
}

func TestReplaceWhileStreamingNeverMixesVersions(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	_, ts := start(t, lib)
	src := mediatest.Source(t)
	stop := make(chan struct{})
	var checked, mismatched atomic.Int64
	var wg sync.WaitGroup
	// Identity answers: the ETag checked is the identity bytes' (a
	// gzipped manifest has a tag of its own; see TestManifestsGzipped).
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	for range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(ts.URL + "/api/assets/" + mediatest.AssetName)
				if err != nil {
					continue
				}
				var sum AssetSummary
				json.NewDecoder(resp.Body).Decode(&sum)
				resp.Body.Close()
				if len(sum.Ladder) == 0 {
					continue
				}
				r := sum.Ladder[i%len(sum.Ladder)]
				for _, p := range []string{"manifest.mpd", r.ID + "/init.mp4", r.ID + "/1.m4s", r.ID + "/2.m4s"} {
					resp, err := client.Get(ts.URL + "/vod/" + mediatest.AssetName + "/" + p)
					if err != nil {
						continue
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						continue // a version pruned under us: a 404, never mixed bytes
					}
					h := sha256.Sum256(body)
					checked.Add(1)
					if `"`+hex.EncodeToString(h[:])[:32]+`"` != resp.Header.Get("ETag") {
						mismatched.Add(1)
					}
				}
			}
		})
	}
	for i, ladder := range []string{"320x180@300k", "640x360@700k,320x180@200k", "320x180@250k"} {
		l, _ := media.ParseLadder(ladder)
		if _, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Name: mediatest.AssetName, Ladder: l, Preset: "ultrafast"}); err != nil {
			t.Fatalf("repackage %d: %v", i, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if checked.Load() < 20 || mismatched.Load() != 0 {
		t.Errorf("%d responses checked, %d with bytes that do not match their ETag", checked.Load(), mismatched.Load())
	}
	// And the catalogue now serves the last version.
	resp, body := get(t, ts.URL+"/api/assets/"+mediatest.AssetName)
	var sum AssetSummary
	json.Unmarshal(body, &sum)
	if resp.StatusCode != 200 || len(sum.Ladder) != 2 || sum.Ladder[0].Bandwidth > 600_000 {
		t.Errorf("after replacement: %+v", sum)
	}
}

func TestMetricsCountRequestsByRoute(t *testing.T) {
	_, ts := start(t, mediatest.Library(t))
	get(t, ts.URL+"/vod/"+mediatest.AssetName+"/manifest.mpd")
	get(t, ts.URL+"/vod/nope/manifest.mpd")
	// A client's method tokens are its own: they must not each make a series.
	httpsemtest.SendMadeUpMethods(40, ts.URL+"/vod/"+mediatest.AssetName+"/manifest.mpd")
	_, body := get(t, ts.URL+"/metrics")
	httpsemtest.CheckNoMadeUpMethodLabel(t, string(body))
	for _, want := range []string{
		`deepcast_origin_http_requests_total{code="200",method="GET",route="/vod/{asset}/manifest.mpd"} 1`,
		`deepcast_origin_http_requests_total{code="404",method="GET",route="/vod/{asset}/manifest.mpd"} 1`,
		`deepcast_origin_http_sent_bytes_total{route="/vod/{asset}/manifest.mpd"}`,
		`deepcast_origin_http_request_duration_seconds_bucket`,
		`deepcast_origin_jobs{state="running"} 0`,
		`deepcast_origin_http_requests_total{code="405",method="other",route="unmatched"} 40`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// BenchmarkServeSegment is the origin's hot path: a whole segment and the
// manifest over a real loopback connection.
func BenchmarkServeSegment(b *testing.B) {
	lib := mediatest.Library(b)
	_, ts := startBench(b, lib)
	a, _ := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	for _, p := range []string{"manifest.mpd", a.Renditions[0].ID + "/1.m4s"} {
		url := ts.URL + "/vod/" + mediatest.AssetName + "/" + p
		b.Run(p, func(b *testing.B) {
			var n int64
			for b.Loop() {
				resp, err := http.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.SetBytes(n)
		})
	}
}

func startBench(b *testing.B, lib string) (*Server, *httptest.Server) {
	s, err := New(Config{Library: lib, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s)
	b.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

// TestIngestRefusesPlaylistsThatNameServerFiles: an uploaded .m3u8 naming
// a file on the server used to publish that file as an asset.
func TestIngestRefusesPlaylistsThatNameServerFiles(t *testing.T) {
	lib := t.TempDir()
	_, ts := start(t, lib)
	playlist := playlistNaming(t, filepath.Join(t.TempDir(), "innocent.m3u8"), mediatest.Source(t))
	resp, j := uploadFile(t, ts.URL, "secret-token", playlist, map[string]string{"name": "leak"})
	wantRefusedJob(t, ts.URL, resp, j, "leak", "plain media container", "innocent.m3u8")
}

// playlistNaming writes at path an HLS playlist whose one segment is
// target, a file of the server's, and returns path.
func playlistNaming(t *testing.T, path, target string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:6.0,\n"+target+"\n#EXT-X-ENDLIST\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantRefusedJob fails the test unless the upload was accepted (202) and
// its job failed with an error saying every one of words, publishing
// nothing under name.
func wantRefusedJob(t *testing.T, url string, resp *http.Response, j Job, name string, words ...string) {
	t.Helper()
	if resp.StatusCode != 202 {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	failed, _ := waitJob(t, url, j.ID)
	for _, w := range words {
		if failed.State != JobFailed || !strings.Contains(failed.Error, w) {
			t.Errorf("job ended %+v, want it failed saying %q", failed, w)
		}
	}
	if resp, _ := get(t, url+"/vod/"+name+"/manifest.mpd"); resp.StatusCode != 404 {
		t.Errorf("the refused upload was published as %s: %d", name, resp.StatusCode)
	}
}

// TestMethodsOutsideTheRoutes: a method a path does not take is a 405
// that says in Allow what the path does take, with the web pages mounted
// (their catch-all route once answered every method with their 404) and
// without them.
func TestMethodsOutsideTheRoutes(t *testing.T) {
	lib := mediatest.Library(t)
	a, _ := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	seg := "/vod/" + mediatest.AssetName + "/" + a.Renditions[0].ID + "/1.m4s"
	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "page") })
	for _, c := range []struct {
		name string
		web  http.Handler
	}{{"with pages", pages}, {"without pages", nil}} {
		t.Run(c.name, func(t *testing.T) {
			_, ts := start(t, lib, func(cfg *Config) { cfg.Web = c.web })
			for _, r := range []struct {
				method, path string
				status       int
				allow        string
			}{
				{http.MethodPost, seg, 405, "GET, HEAD, OPTIONS"},
				{http.MethodDelete, "/vod/" + mediatest.AssetName + "/manifest.mpd", 405, "GET, HEAD, OPTIONS"},
				{http.MethodPut, "/api/assets", 405, "GET, HEAD, POST, OPTIONS"},
				{http.MethodHead, "/api/assets", 200, ""},
				{http.MethodGet, seg, 200, ""},
				{http.MethodHead, seg, 200, ""},
			} {
				resp, _ := do(t, r.method, ts.URL+r.path)
				if resp.StatusCode != r.status || resp.Header.Get("Allow") != r.allow {
					t.Errorf("%s %s: %d, Allow %q; want %d, %q", r.method, r.path, resp.StatusCode, resp.Header.Get("Allow"), r.status, r.allow)
				}
			}
			if c.web != nil {
				if resp, body := get(t, ts.URL+"/"); resp.StatusCode != 200 || string(body) != "page" {
					t.Errorf("GET /: %d %q", resp.StatusCode, body)
				}
			}
		})
	}
}

// TestUnreadableNewVersionKeepsTheLoadedOne: a library whose pointer
// moves to a version that cannot be served (its asset.json damaged) used
// to answer 500 "asset unreadable" to every viewer of the asset, though
// the version they were playing was whole and still in the library. Now
// the loaded version is served and the operator told, until a good
// version is published.
func TestUnreadableNewVersionKeepsTheLoadedOne(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	logs := &mediatest.Capture{}
	_, ts := start(t, lib, func(c *Config) { c.Logger = logs.Logger() })
	manifest := ts.URL + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	resp, before := get(t, manifest)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: %s", resp.Status)
	}
	tag := resp.Header.Get("ETag")
	republish := publishDamaged(t, lib)
	time.Sleep(100 * time.Millisecond) // past the check interval (50 ms)
	for range 3 {
		resp, body := get(t, manifest)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != tag || !bytes.Equal(body, before) {
			t.Fatalf("manifest after a damaged version went live: %s, ETag %s (was %s)", resp.Status, resp.Header.Get("ETag"), tag)
		}
		time.Sleep(60 * time.Millisecond)
	}
	if said := strings.Count(logs.String(), "cannot be served"); said != 1 {
		t.Errorf("the damaged version was reported %d times, want once:\n%s", said, logs.String())
	}
	if _, body := get(t, ts.URL+"/metrics"); !strings.Contains(string(body), "\ndeepcast_origin_assets_held_back 1\n") {
		t.Error("no held-back asset in the metrics while the damaged version is live")
	}
	// A good version published: served.
	republish()
	time.Sleep(100 * time.Millisecond)
	if resp, _ := get(t, manifest); resp.StatusCode != http.StatusOK {
		t.Errorf("manifest after a good version: %s", resp.Status)
	}
	if _, body := get(t, ts.URL+"/metrics"); !strings.Contains(string(body), "\ndeepcast_origin_assets_held_back 0\n") {
		t.Error("an asset still held back in the metrics after a good version was published")
	}
}

// publishDamaged makes a copy of the live version of the sample asset
// with its asset.json damaged the live one, as a symlink swap does it,
// and returns what puts the good one back.
func publishDamaged(t *testing.T, lib string) (republish func()) {
	t.Helper()
	link := filepath.Join(lib, mediatest.AssetName)
	live, err := os.Readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(filepath.Dir(live), mediatest.AssetName+".damaged")
	if err := os.CopyFS(filepath.Join(lib, bad), os.DirFS(filepath.Join(lib, live))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lib, bad, media.AssetFile), []byte(`{"name": "clip", "renditions": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	swap := func(to string) {
		tmp := link + ".tmp"
		if err := os.Symlink(to, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	swap(bad)
	return func() { swap(live) }
}

// TestEvictedAssetKeepsItsVersionWhenTheNewOneIsDamaged: an asset the
// catalogue dropped to stay within its memory is served as a loaded one
// is when its pointer moves to a version that cannot be served: the
// version it served, not a 500, whether the damaged version went live
// before the eviction (already rejected) or after it.
func TestEvictedAssetKeepsItsVersionWhenTheNewOneIsDamaged(t *testing.T) {
	for _, damagedFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("damaged before the eviction %v", damagedFirst), func(t *testing.T) {
			lib := mediatest.CopyLibrary(t)
			logs := &mediatest.Capture{}
			s, ts := start(t, lib, func(c *Config) { c.Logger = logs.Logger() })
			manifest := ts.URL + "/vod/" + mediatest.AssetName + "/manifest.mpd"
			resp, before := get(t, manifest)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("manifest: %s", resp.Status)
			}
			tag := resp.Header.Get("ETag")
			evict := func() {
				s.Catalog().SetMemory(1)
				if n, _, _ := s.Catalog().Memory(); n != 0 {
					t.Fatalf("%d entries loaded after the bound fell to 1 byte", n)
				}
				s.Catalog().SetMemory(0)
			}
			var republish func()
			if damagedFirst {
				republish = publishDamaged(t, lib)
				time.Sleep(100 * time.Millisecond) // past the check interval (50 ms)
				get(t, manifest)                   // the damaged version is rejected
				evict()
			} else {
				evict()
				republish = publishDamaged(t, lib)
			}
			for range 3 {
				resp, body := get(t, manifest)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != tag || !bytes.Equal(body, before) {
					t.Fatalf("manifest of the evicted asset after a damaged version went live: %s, ETag %s (was %s)", resp.Status, resp.Header.Get("ETag"), tag)
				}
				time.Sleep(60 * time.Millisecond)
				evict()
			}
			if said := strings.Count(logs.String(), "cannot be served"); said != 1 {
				t.Errorf("the damaged version was reported %d times, want once:\n%s", said, logs.String())
			}
			republish()
			time.Sleep(100 * time.Millisecond)
			if resp, _ := get(t, manifest); resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != tag {
				t.Errorf("manifest after the good version was published again: %s, ETag %s", resp.Status, resp.Header.Get("ETag"))
			}
		})
	}
}

// TestFreshOriginServesTheVersionBeforeADamagedOne: an origin that starts
// (or joins a fleet) after a version that cannot be served went live used
// to answer 500 to every viewer of the asset, while the origins that were
// already serving it kept serving the version before: a restart turned a
// damaged publish into an outage, and two origins of one library answered
// differently. Now a fresh origin serves the version the library kept
// from before the damaged one, as the others do, and says so once; with
// no version before it, the failure is still the answer.
func TestFreshOriginServesTheVersionBeforeADamagedOne(t *testing.T) {
	for _, kind := range []string{"folder", "s3"} {
		t.Run(kind, func(t *testing.T) {
			lib := mediatest.CopyLibrary(t)
			live, err := store.Folder{Root: lib}.Resolve(mediatest.AssetName)
			if err != nil {
				t.Fatal(err)
			}
			on := func(*Config) {}
			damage := func() { publishDamaged(t, lib) }
			if kind == "s3" {
				s3lib, _ := s3Library(t)
				on = func(c *Config) { c.Store = s3lib }
				damage = func() {
					dir := t.TempDir()
					if out, err := execCp(live, dir); err != nil {
						t.Fatalf("%v: %s", err, out)
					}
					if err := os.WriteFile(filepath.Join(dir, media.AssetFile), []byte(`{"name": "clip", "renditions": [`), 0o644); err != nil {
						t.Fatal(err)
					}
					storetest.CopyIn(t, s3lib, dir, mediatest.AssetName, "damaged")
				}
			}
			a, err := media.LoadAsset(live)
			if err != nil {
				t.Fatal(err)
			}
			base := "/vod/" + mediatest.AssetName
			seg := base + "/" + a.Renditions[0].ID + "/1.m4s"
			_, serving := start(t, lib, on)
			resp, mpd := get(t, serving.URL+base+"/manifest.mpd")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("manifest: %s", resp.Status)
			}
			tag := resp.Header.Get("ETag")
			_, segment := get(t, serving.URL+seg)

			damage()
			logs := &mediatest.Capture{}
			_, fresh := start(t, lib, on, func(c *Config) { c.Logger = logs.Logger() })
			time.Sleep(100 * time.Millisecond) // past the check interval (50 ms) of the serving one
			for range 3 {
				for _, o := range []*httptest.Server{fresh, serving} {
					resp, body := get(t, o.URL+base+"/manifest.mpd")
					if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != tag || !bytes.Equal(body, mpd) {
						t.Fatalf("manifest after a damaged version went live (fresh origin %v): %s, ETag %s (was %s)", o == fresh, resp.Status, resp.Header.Get("ETag"), tag)
					}
					if resp, body := get(t, o.URL+seg); resp.StatusCode != http.StatusOK || !bytes.Equal(body, segment) {
						t.Fatalf("segment after a damaged version went live (fresh origin %v): %s, %d bytes", o == fresh, resp.Status, len(body))
					}
				}
				time.Sleep(60 * time.Millisecond)
			}
			if resp, body := get(t, fresh.URL+"/api/assets"); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"`+mediatest.AssetName+`"`) {
				t.Errorf("listing of the fresh origin: %s %s", resp.Status, body)
			}
			if said := strings.Count(logs.String(), "cannot be served"); said != 1 || !strings.Contains(logs.String(), "serving="+filepath.Base(live)) {
				t.Errorf("the damaged version was reported %d times, want once, naming %s as served:\n%s", said, filepath.Base(live), logs.String())
			}
			for _, o := range []*httptest.Server{fresh, serving} {
				if _, body := get(t, o.URL+"/metrics"); !strings.Contains(string(body), "\ndeepcast_origin_assets_held_back 1\n") {
					t.Errorf("fresh origin %v: no held-back asset in its metrics", o == fresh)
				}
				var st Stats
				if _, body := get(t, o.URL+"/api/stats"); json.Unmarshal(body, &st) != nil || st.HeldBack != 1 {
					t.Errorf("fresh origin %v: stats %s, want heldBack 1", o == fresh, body)
				}
			}
		})
	}
	t.Run("nothing before it", func(t *testing.T) {
		lib := mediatest.CopyLibrary(t)
		live, err := store.Folder{Root: lib}.Resolve(mediatest.AssetName)
		if err != nil {
			t.Fatal(err)
		}
		publishDamaged(t, lib)
		if err := os.RemoveAll(live); err != nil {
			t.Fatal(err)
		}
		_, fresh := start(t, lib)
		for range 2 {
			if resp, _ := get(t, fresh.URL+"/vod/"+mediatest.AssetName+"/manifest.mpd"); resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("manifest of an asset whose only version is damaged: %s, want 500", resp.Status)
			}
		}
	})
}
