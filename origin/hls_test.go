package origin

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
)

// TestHLSPlaylistsFromTheSameSegments: every asset has a multivariant
// playlist, a media playlist per rendition and an I-frame playlist per
// video rendition, served with the MPD's cache rules; ffmpeg decodes every
// frame of every variant through them; each I-frame byte range, after the
// init segment, is exactly one decodable frame.
func TestHLSPlaylistsFromTheSameSegments(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	_, ts := start(t, lib)
	base := ts.URL + "/vod/" + mediatest.AssetName + "/"
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"master.m3u8"}
	for _, r := range a.Renditions {
		paths = append(paths, r.ID+"/media.m3u8")
		if r.Type == "video" {
			paths = append(paths, r.ID+"/iframes.m3u8")
		}
	}
	for _, p := range paths {
		resp, body := get(t, base+p)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != manifest.HLSContentType ||
			resp.Header.Get("Cache-Control") != cacheManifest || resp.Header.Get("ETag") == "" || !bytes.HasPrefix(body, []byte("#EXTM3U")) {
			t.Fatalf("%s: %d %v\n%s", p, resp.StatusCode, resp.Header, body)
		}
		again, _ := get(t, base+p, "If-None-Match", resp.Header.Get("ETag"))
		if again.StatusCode != 304 {
			t.Errorf("%s: If-None-Match answered %d, want 304", p, again.StatusCode)
		}
	}
	for _, p := range []string{"nope/media.m3u8", "master.m3u8x", mediatest.AssetName + ".m3u8", "../master.m3u8"} {
		if resp, _ := get(t, base+p); resp.StatusCode == 200 {
			t.Errorf("%s: 200", p)
		}
	}
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	mediatest.CheckDecodesAll(t, base+"master.m3u8", 2, frames)

	// Each I-frame range decodes to one frame.
	dir := t.TempDir()
	rangeLine := regexp.MustCompile(`#EXT-X-BYTERANGE:(\d+)@0\n#EXTINF:[0-9.]+,\n(\d+)\.m4s`)
	for _, r := range a.Renditions {
		if r.Type != "video" {
			continue
		}
		_, pl := get(t, base+r.ID+"/iframes.m3u8")
		m := rangeLine.FindAllStringSubmatch(string(pl), -1)
		if len(m) != len(r.Segments) {
			t.Fatalf("%s: %d I-frame entries for %d segments:\n%s", r.ID, len(m), len(r.Segments), pl)
		}
		_, init := get(t, base+r.ID+"/init.mp4")
		for _, e := range []([]string){m[0], m[len(m)-1]} {
			n, _ := strconv.Atoi(e[1])
			resp, part := get(t, base+r.ID+"/"+e[2]+".m4s", "Range", "bytes=0-"+strconv.Itoa(n-1))
			if resp.StatusCode != 206 || len(part) != n {
				t.Fatalf("%s segment %s: range of %d bytes answered %d with %d bytes", r.ID, e[2], n, resp.StatusCode, len(part))
			}
			file := filepath.Join(dir, r.ID+"-"+e[2]+".mp4")
			os.WriteFile(file, append(init, part...), 0o644)
			out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
				"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file).Output() // stderr: "partial file", as the mdat is cut
			if err != nil || strings.TrimSpace(string(out)) != "1" {
				t.Errorf("%s segment %s: the I-frame range decodes to %q frames (%v), want 1", r.ID, e[2], out, err)
			}
		}
	}
}

// TestHLSForAssetsPackagedBeforeIt: an asset whose asset.json has no
// keyframe ranges (packaged before HLS) gets the same playlists, the
// ranges read from its segments.
func TestHLSForAssetsPackagedBeforeIt(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	_, ts := start(t, lib)
	base := ts.URL + "/vod/" + mediatest.AssetName + "/"
	want := map[string][]byte{}
	a, _ := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	var paths []string
	for _, r := range a.Renditions {
		if r.Type == "video" {
			paths = append(paths, r.ID+"/iframes.m3u8")
		}
	}
	paths = append(paths, "master.m3u8")
	for _, p := range paths {
		_, want[p] = get(t, base+p)
	}

	old := mediatest.CopyLibrary(t)
	dir, err := filepath.EvalSymlinks(filepath.Join(old, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, media.AssetFile))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	json.Unmarshal(data, &raw)
	stripped := 0
	for _, r := range raw["renditions"].([]any) {
		for _, s := range r.(map[string]any)["segments"].([]any) {
			if _, ok := s.(map[string]any)["key"]; ok {
				delete(s.(map[string]any), "key")
				stripped++
			}
		}
	}
	if stripped == 0 {
		t.Fatal("the packager recorded no keyframe ranges")
	}
	data, _ = json.Marshal(raw)
	os.WriteFile(filepath.Join(dir, media.AssetFile), data, 0o644)
	_, ots := start(t, old)
	for _, p := range paths {
		resp, got := get(t, ots.URL+"/vod/"+mediatest.AssetName+"/"+p)
		if resp.StatusCode != 200 || !bytes.Equal(got, want[p]) {
			t.Errorf("%s of an asset without keyframe ranges: %d\n%s\nwant\n%s", p, resp.StatusCode, got, want[p])
		}
	}
}

// TestManifestsGzipped: the origin sends its MPD and HLS playlists gzipped
// to a viewer that takes gzip, as a representation of its own (ETag, Vary),
// on both its paths; edges, which ask for identity, and clients that
// refuse gzip get the identity bytes.
func TestManifestsGzipped(t *testing.T) {
	s, ts := start(t, mediatest.Library(t))
	e, err := s.Catalog().Get(mediatest.AssetName)
	if err != nil {
		t.Fatal(err)
	}
	if e.mpd.gz == nil || e.hls == nil {
		t.Fatalf("the sample's MPD (%d bytes) has no gzip representation, or the asset no HLS", len(e.Manifest))
	}
	for _, d := range e.hls.media {
		if len(d.body) < httpsem.MinGzip && d.gz != nil {
			t.Errorf("a playlist of %d bytes has a gzip representation", len(d.body))
		}
	}
	// The 6 s sample's media playlists are too short to compress: one
	// rendition's is replaced by a long-form playlist, so the playlist
	// route is tried with a gzip representation too.
	long := e.Asset.Renditions[0].ID
	s.Catalog().mu.Lock() // the server's next catalogue read sees the change
	e.hls.media[long] = longPlaylist()
	s.Catalog().mu.Unlock()
	docs := []string{"manifest.mpd", long + "/media.m3u8"}
	if e.hls.master.gz != nil {
		docs = append(docs, "master.m3u8")
	}
	for _, p := range docs {
		url := ts.URL + "/vod/" + mediatest.AssetName + "/" + p
		plainResp, plain := get(t, url)
		gzResp, gz := get(t, url, "Accept-Encoding", "gzip, deflate, br")
		if plainResp.Header.Get("Content-Encoding") != "" || gzResp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s: Content-Encoding %q (identity) and %q (gzip)", p, plainResp.Header.Get("Content-Encoding"), gzResp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if decoded, _ := io.ReadAll(zr); !bytes.Equal(decoded, plain) || len(gz) >= len(plain) {
			t.Errorf("%s: gzip answer of %d bytes decodes to %d, identity %d", p, len(gz), len(decoded), len(plain))
		}
		if gzResp.Header.Get("ETag") != strings.TrimSuffix(plainResp.Header.Get("ETag"), `"`)+`-gzip"` {
			t.Errorf("%s: ETag %q for gzip, %q for identity", p, gzResp.Header.Get("ETag"), plainResp.Header.Get("ETag"))
		}
		for _, r := range []*http.Response{plainResp, gzResp} {
			if r.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("%s: Vary %q", p, r.Header.Get("Vary"))
			}
		}
		if r, _ := get(t, url, "Accept-Encoding", "gzip", "If-None-Match", gzResp.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
			t.Errorf("%s: If-None-Match with the gzip tag: %d", p, r.StatusCode)
		}
		if r, body := get(t, url, "Accept-Encoding", "gzip;q=0"); r.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, plain) {
			t.Errorf("%s: gzip;q=0 got Content-Encoding %q", p, r.Header.Get("Content-Encoding"))
		}
		// The fast path sends the same.
		fast, ok := s.AnswerEncoded(false, "/vod/"+mediatest.AssetName+"/"+p, "127.0.0.1:1", "gzip")
		if !ok || !bytes.Equal(fast.Body, gz) || !strings.Contains(string(fast.Header), "Content-Encoding: gzip\r\n") ||
			!strings.Contains(string(fast.Header), "Etag: "+gzResp.Header.Get("ETag")+"\r\n") {
			t.Errorf("%s: fast path gzip answer: ok %v, %d bytes\n%s", p, ok, len(fast.Body), fast.Header)
		}
		if fast, _ := s.AnswerPlain(false, "/vod/"+mediatest.AssetName+"/"+p, "127.0.0.1:1"); !bytes.Equal(fast.Body, plain) {
			t.Errorf("%s: fast path without Accept-Encoding: %d bytes", p, len(fast.Body))
		}
	}
}

// TestLongPlaylistsHaveAGzipRepresentation: a long-form playlist (1,800
// segments) gets a gzip representation a fraction of its size, with the
// headers the fast path sends; a short one gets none.
func TestLongPlaylistsHaveAGzipRepresentation(t *testing.T) {
	long := longPlaylist()
	if long.gz == nil || long.gz.encoding != "gzip" || len(long.gz.body)*5 > len(long.body) {
		t.Fatalf("a %d-byte playlist: gzip representation %v", len(long.body), long.gz != nil)
	}
	for _, want := range []string{"Content-Encoding: gzip\r\n", "Vary: Accept-Encoding\r\n", "Etag: " + long.gz.tag + "\r\n"} {
		if !strings.Contains(string(long.gz.header), want) {
			t.Errorf("gzip header block lacks %q:\n%s", want, long.gz.header)
		}
	}
	if !strings.Contains(string(long.header), "Vary: Accept-Encoding\r\n") || strings.Contains(string(long.header), "Content-Encoding") {
		t.Errorf("identity header block:\n%s", long.header)
	}
	if got := long.forClient([]string{"br", "gzip;q=0.5"}); got != long.gz {
		t.Errorf("a client taking gzip got the identity representation")
	}
	short := newPlaylist([]byte("#EXTM3U\n#EXTINF:4.0,\n1.m4s\n#EXT-X-ENDLIST\n"), "")
	if short.gz != nil || strings.Contains(string(short.header), "Vary") {
		t.Errorf("a short playlist has a gzip representation or a Vary")
	}
}

// longPlaylist is a long-form media playlist (1,800 segments) as served.
func longPlaylist() document {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n")
	for i := 1; i <= 1800; i++ {
		b.WriteString("#EXTINF:4.000,\n" + strconv.Itoa(i) + ".m4s\n")
	}
	return newPlaylist([]byte(b.String()), "Mon, 01 Jan 2026 00:00:00 GMT")
}
