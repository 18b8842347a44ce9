package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/player"
)

// edgeStats reads an edge's /api/stats.
func edgeStats(t *testing.T, base string) (hits, misses int64) {
	t.Helper()
	resp, err := http.Get(base + "/api/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ Hits, Misses int64 }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Hits, s.Misses
}

// TestHLSAndDASHShareTheSegments, through origin -> bring-home ->
// enter-deep: the playlists and the MPD describe the same segment URLs
// and the same duration (within a frame); ffmpeg decodes every frame of
// every variant through the playlists, as many as through the MPD; played
// after the MPD, HLS costs the edge no segment miss (one cache object per
// segment, whichever manifest named it); GStreamer's HLS demuxer plays
// every frame; `deepcast play` plays the playlist.
func TestHLSAndDASHShareTheSegments(t *testing.T) {
	setup := startWebChain(t) // a 24 s clip, two rungs and audio
	deep := setup.deep + "/vod/clip/"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dash, err := player.FetchManifest(ctx, deep+"manifest.mpd", http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	hls, err := player.FetchManifest(ctx, deep+"master.m3u8", http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	if d := hls.Duration - dash.Duration; d > 34*time.Millisecond || d < -34*time.Millisecond {
		t.Errorf("playlists last %v, the MPD %v", hls.Duration, dash.Duration)
	}
	urls := func(m []*manifest.Representation) [][]string {
		var out [][]string
		for _, r := range m {
			var u []string
			for _, s := range r.Segments {
				u = append(u, s.URL)
			}
			out = append(out, append([]string{r.Init}, u...))
		}
		return out
	}
	if !slices.EqualFunc(urls(dash.Video), urls(hls.Video), slices.Equal) || !slices.EqualFunc(urls(dash.Audio), urls(hls.Audio), slices.Equal) {
		t.Fatalf("the MPD and the playlists name different segments:\nMPD %v\nHLS %v", urls(dash.Video), urls(hls.Video))
	}

	counts := func(url string) []mediatest.StreamCount {
		c, log, err := mediatest.Decode(ctx, url)
		if err != nil {
			t.Fatalf("ffmpeg %s: %v\n%s", url, err, log[max(0, len(log)-2000):])
		}
		return c
	}
	dashCounts := counts(deep + "manifest.mpd")
	_, missesBefore := edgeStats(t, setup.deep)
	hlsCounts := counts(deep + "master.m3u8")
	_, missesAfter := edgeStats(t, setup.deep)
	frames := func(cs []mediatest.StreamCount) []int {
		var f []int
		for _, c := range cs {
			if c.Kind == "video" {
				f = append(f, c.Frames)
			}
		}
		return f
	}
	df, hf := frames(dashCounts), frames(hlsCounts)
	if len(hf) != 2 || !slices.Equal(df, hf) || hf[0] != 24*30 {
		t.Errorf("frames decoded per video stream: DASH %v, HLS %v, want 720 each", df, hf)
	}
	// The playlists (master, three media) are new objects; no segment is.
	if extra := missesAfter - missesBefore; extra > 4 {
		t.Errorf("HLS after DASH cost the edge %d misses: segments were cached twice", extra)
	}

	// GStreamer: hlsdemux2 (or hlsdemux) to the end, every frame.
	gst, err := exec.CommandContext(ctx, "gst-launch-1.0", "-v", "playbin3", "uri="+deep+"master.m3u8",
		"video-sink=fakesink name=vs sync=false silent=false", "audio-sink=fakesink sync=false").CombinedOutput()
	if err != nil {
		t.Fatalf("gst-launch: %v\n%s", err, tailText(string(gst), 3000))
	}
	if !regexp.MustCompile(`GstHLSDemux2?:hlsdemux`).Match(gst) || !strings.Contains(string(gst), "Got EOS") {
		t.Errorf("GStreamer did not play the playlist through its HLS demuxer to the end:\n%s", tailText(string(gst), 3000))
	}
	if n := len(regexp.MustCompile(`chain[^\n]*\(vs:sink\)`).FindAll(gst, -1)); n != 24*30 {
		t.Errorf("GStreamer rendered %d video frames, want 720", n)
	}

	// deepcast play and sim, over the playlist.
	bin := buildBinary(t)
	out, err := exec.CommandContext(ctx, bin, "play", deep+"master.m3u8").CombinedOutput()
	// One session: its own figures, no percentiles of a single value.
	if err != nil || !strings.Contains(string(out), "chunk  12") || !strings.Contains(string(out), "0 stalls") || strings.Contains(string(out), "p10") {
		t.Errorf("deepcast play %smaster.m3u8: %v\n%s", deep, err, out)
	}
	out, err = exec.CommandContext(ctx, bin, "sim", "-video", deep+"master.m3u8", "-traces", repoRoot()+"/testdata/traces/fcc", "-abr", "bola,throughput").CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^\s+bola\s+\d+`).Match(out) {
		t.Errorf("deepcast sim -video %smaster.m3u8: %v\n%s", deep, err, out)
	}
}

func tailText(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
