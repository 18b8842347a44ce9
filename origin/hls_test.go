package origin

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

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
