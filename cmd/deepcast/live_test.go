package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/player"
)

// TestPlayJoinsALiveStream: ffmpeg packages a live stream in real time (a
// dynamic MPD, SegmentTemplate of fixed duration, as a live encoder
// writes it) behind a static file server; deepcast play joins it near
// the live edge, asks for each segment only once it is published, and
// plays the chunks it was asked for.
func TestPlayJoinsALiveStream(t *testing.T) {
	// A template of fixed @duration, whose segments follow from the
	// clock; and a SegmentTimeline, which lists those published so far
	// (ffmpeg's default), so the player re-reads the MPD as it goes.
	for _, timeline := range []string{"0", "1"} {
		t.Run("use_timeline="+timeline, func(t *testing.T) { playLive(t, timeline) })
	}
}

func playLive(t *testing.T, useTimeline string) {
	dir := t.TempDir()
	// Three segments published: the stream is under way.
	liveFFmpeg(t, dir, 60, []string{"chunk-stream0-00003.m4s"}, liveDASH(dir, useTimeline)...)
	doc, err := os.ReadFile(filepath.Join(dir, "live.mpd"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`availabilityStartTime="([^"]+)"`).FindSubmatch(doc)
	if m == nil || !bytes.Contains(doc, []byte(`type="dynamic"`)) {
		t.Fatalf("not a live MPD:\n%s", doc)
	}
	ast, err := time.Parse(time.RFC3339Nano, string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	log := &rangeLog{}
	srv := httptest.NewServer(log.wrap(http.FileServer(http.Dir(dir))))
	defer srv.Close()

	joined := time.Now()
	var out, errb bytes.Buffer
	report := filepath.Join(t.TempDir(), "play.json")
	if code := run([]string{"play", "-duration", "6s", "-cmcd", "-json", report, srv.URL + "/live.mpd"}, &out, &errb); code != 0 {
		t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
	}
	// How far behind the live edge it played: at least the segment it
	// joined in, at most the join delay and two segments of waiting.
	if l := liveLatencyOf(t, report); l.StartSeconds < 1 || l.StartSeconds > 12 || l.EndSeconds < 1 || l.EndSeconds > 12 ||
		!strings.Contains(out.String(), "behind the live edge") {
		t.Errorf("live latency %+v s; output:\n%s", l, out.String())
	}
	if report := out.String(); !bytes.Contains([]byte(report), []byte("chunk   3")) || bytes.Contains([]byte(report), []byte("chunk   4")) {
		t.Errorf("deepcast play -duration 6s of 2 s segments:\n%s", report)
	}
	// Segment n (from 1) spans [2(n-1), 2n) s after availabilityStartTime
	// and is published at its end.
	segment := regexp.MustCompile(`^/chunk-stream(\d)-(\d+)\.m4s$`)
	publishedAtJoin := int(joined.Sub(ast) / (2 * time.Second))
	var videoNumbers []int
	reqs := log.take()
	for _, r := range reqs {
		g := segment.FindStringSubmatch(r.path)
		if g == nil || r.method != http.MethodGet { // the sizes asked with HEAD aside
			continue
		}
		n, _ := strconv.Atoi(g[2])
		if published := ast.Add(time.Duration(n) * 2 * time.Second); r.status == http.StatusOK && r.at.Before(published.Add(-50*time.Millisecond)) {
			t.Errorf("%s was asked for %v before it was due", r.path, published.Sub(r.at))
		}
		if g[1] != "2" && r.status == http.StatusOK {
			videoNumbers = append(videoNumbers, n)
		}
	}
	// The MPD is read once, and re-read a few times a chunk at most.
	// A SegmentTimeline does not list the chunks published after the join:
	// the player re-reads it for them.
	if mpds := countPath(reqs, "/live.mpd"); mpds > 1+5*3 || useTimeline == "1" && mpds < 2 {
		t.Errorf("the MPD was read %d times for 3 chunks", mpds)
	}
	if len(videoNumbers) != 3 {
		t.Fatalf("video segments fetched: %v, want 3", videoNumbers)
	}
	// Joined near the live edge (ffmpeg suggests a delay of one segment:
	// the player starts one or two behind), not at the stream's start.
	if first := videoNumbers[0]; first < publishedAtJoin-2 || first > publishedAtJoin+1 {
		t.Errorf("joined at segment %d when %d were published", first, publishedAtJoin)
	}
	for i, n := range videoNumbers {
		if n != videoNumbers[0]+i {
			t.Errorf("video segments %v are not consecutive", videoNumbers)
			break
		}
	}
	// Played in real time: the last chunk could not come before it was
	// published.
	if last := ast.Add(time.Duration(videoNumbers[2]) * 2 * time.Second); time.Now().Before(last) {
		t.Errorf("finished %v before the last segment was published", time.Until(last))
	}
}

func countPath(reqs []loggedRequest, path string) int {
	n := 0
	for _, r := range reqs {
		if r.method == http.MethodGet && r.path == path {
			n++
		}
	}
	return n
}

// TestPlayJoinsALiveHLSStream: ffmpeg writes live HLS (media playlists
// without EXT-X-ENDLIST, fMP4 segments, a separate audio rendition);
// deepcast play joins three target durations behind the end of the
// playlist, reloads the playlists for the segments published after, and
// plays consecutive segments. A second player beside it, given
// -live-delay 2s, joins about the 4 s nearer the end that asks for.
func TestPlayJoinsALiveHLSStream(t *testing.T) {
	dir := t.TempDir()
	liveFFmpeg(t, dir, 60, []string{"master.m3u8", "s_04.m4s"}, liveHLS(dir)...)
	log := &rangeLog{}
	srv := httptest.NewServer(log.wrap(http.FileServer(http.Dir(dir))))
	defer srv.Close()
	near := httptest.NewServer(http.FileServer(http.Dir(dir))) // its own, out of the request log
	defer near.Close()
	nearReport := filepath.Join(t.TempDir(), "near.json")
	var nearOut bytes.Buffer
	var nearCode int
	var wg sync.WaitGroup
	wg.Go(func() {
		nearCode = run([]string{"play", "-duration", "8s", "-live-delay", "2s", "-json", nearReport, near.URL + "/master.m3u8"}, &nearOut, &nearOut)
	})

	var out, errb bytes.Buffer
	report := filepath.Join(t.TempDir(), "play.json")
	code := run([]string{"play", "-duration", "8s", "-cmcd", "-json", report, srv.URL + "/master.m3u8"}, &out, &errb)
	wg.Wait()
	if code != 0 || nearCode != 0 {
		t.Fatalf("deepcast play: exit %d\n%s%s\nwith -live-delay 2s: exit %d\n%s", code, out.String(), errb.String(), nearCode, nearOut.String())
	}
	// Three target durations (6 s) against one segment (2 s), each from
	// the segment that holds that point.
	suggested, given := liveLatencyOf(t, report).StartSeconds, liveLatencyOf(t, nearReport).StartSeconds
	t.Logf("joined %.2f s behind the live edge as the playlist suggests, %.2f s with -live-delay 2s", suggested, given)
	if suggested-given < 2.5 || given > 5 {
		t.Errorf("joined %.2f s behind the live edge as the playlist suggests, %.2f s with -live-delay 2s", suggested, given)
	}
	if r := out.String(); !strings.Contains(r, "chunk   4") || strings.Contains(r, "chunk   5") || !strings.Contains(r, "behind the live edge") {
		t.Errorf("deepcast play -duration 8s of 2 s segments:\n%s", r)
	}
	if l := liveLatencyOf(t, report); l.StartSeconds < 2 || l.StartSeconds > 14 {
		t.Errorf("joined %.2f s behind the live edge, want about three target durations (6 s)", l.StartSeconds)
	}
	reqs := log.take()
	segment := regexp.MustCompile(`^/s_([01])(\d+)\.m4s$`)
	var videoNumbers []int
	for _, r := range reqs {
		if g := segment.FindStringSubmatch(r.path); g != nil && r.method == http.MethodGet && r.status == http.StatusOK {
			n, _ := strconv.Atoi(g[2])
			videoNumbers = append(videoNumbers, n)
			// -cmcd: the player says it plays HLS.
			if !slices.Contains(strings.Split(r.cmcd, ","), "sf=h") {
				t.Errorf("%s: CMCD %q, want sf=h", r.path, r.cmcd)
			}
		}
	}
	for i, n := range videoNumbers {
		if len(videoNumbers) != 4 || n != videoNumbers[0]+i {
			t.Errorf("video segments fetched: %v, want 4 consecutive", videoNumbers)
			break
		}
	}
	// Four segments from three target durations behind: the fourth was
	// published after the join, so a playlist was reloaded: only the one
	// played from (and the sound's), not the multivariant playlist or
	// the ladder's.
	loads := countPath(reqs, "/s_0.m3u8") + countPath(reqs, "/s_1.m3u8")
	if sound := countPath(reqs, "/s_2.m3u8"); loads < 3 || loads > 2+5*4 || sound > 1+5*4 || countPath(reqs, "/master.m3u8") != 1 {
		t.Errorf("the video playlists were read %d times, the sound's %d, the multivariant playlist %d, for 4 chunks", loads, sound, countPath(reqs, "/master.m3u8"))
	}
}

// liveDASH is ffmpeg's live DASH packager into dir: 2 s segments, a
// SegmentTemplate with (useTimeline "1") or without a SegmentTimeline,
// video and sound in their own AdaptationSets, live.mpd.
func liveDASH(dir, useTimeline string) []string {
	return []string{"-f", "dash", "-use_timeline", useTimeline, "-use_template", "1", "-seg_duration", "2", "-window_size", "10",
		"-adaptation_sets", "id=0,streams=v id=1,streams=a", filepath.Join(dir, "live.mpd")}
}

// liveHLS is ffmpeg's live HLS packager into dir: 2 s fMP4 segments, the
// two video renditions (s_0.m3u8, s_1.m3u8) sharing the sound (s_2.m3u8),
// master.m3u8.
func liveHLS(dir string) []string {
	return []string{"-f", "hls", "-hls_time", "2", "-hls_list_size", "10", "-hls_segment_type", "fmp4",
		"-master_pl_name", "master.m3u8", "-var_stream_map", "v:0,agroup:a v:1,agroup:a a:0,agroup:a,default:yes", filepath.Join(dir, "s_%v.m3u8")}
}

// liveFFmpeg runs ffmpeg until the test ends, encoding seconds of a test
// pattern and a tone in real time (two video renditions and the sound)
// to output, a live packager's options and file; it returns once the
// files in ready are in dir.
func liveFFmpeg(t *testing.T, dir string, seconds int, ready []string, output ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ff := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-nostdin", "-v", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=f=440", "-t", strconv.Itoa(seconds),
		"-map", "0:v", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-b:v:0", "200k", "-b:v:1", "500k", "-s:v:1", "480x270",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000"}, output...)...)
	var ffErr bytes.Buffer
	ff.Stderr = &ffErr
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		ff.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range ready {
		for {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ffmpeg wrote no %s in 30 s: %s", name, ffErr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestPlayLiveFollowsTheServersClock: a live origin whose clock is 20 s
// off this machine's (either way) names its clock in UTCTiming; play reads
// it, joins by it (two seconds behind the edge, as the MPD suggests) and
// asks for no segment before the server has it.
func TestPlayLiveFollowsTheServersClock(t *testing.T) {
	for _, skew := range []time.Duration{-20 * time.Second, 20 * time.Second} {
		t.Run(skew.String(), func(t *testing.T) {
			serverNow := func() time.Time { return time.Now().Add(skew) }
			ast := serverNow().Add(-30 * time.Second).Truncate(time.Second)
			var early, served atomic.Int64
			mux := http.NewServeMux()
			mux.HandleFunc("/live.mpd", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011" availabilityStartTime="%s" suggestedPresentationDelay="PT2S" minBufferTime="PT2S">`+
					`<Period id="p" start="PT0S"><AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate timescale="1000" duration="1000" startNumber="1" media="$RepresentationID$/v$Number$.m4s"/>`+
					`<Representation id="lo" bandwidth="200000"/><Representation id="hi" bandwidth="400000"/></AdaptationSet></Period>`+
					`<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="time"/></MPD>`, ast.UTC().Format(time.RFC3339))
			})
			mux.HandleFunc("/time", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, serverNow().UTC().Format(time.RFC3339Nano))
			})
			mux.HandleFunc("/{rep}/{segment}", func(w http.ResponseWriter, r *http.Request) {
				var n int
				if _, err := fmt.Sscanf(r.PathValue("segment"), "v%d.m4s", &n); err != nil {
					http.NotFound(w, r)
					return
				}
				// Segment n is published at its end, n seconds in.
				if wait := ast.Add(time.Duration(n) * time.Second).Sub(serverNow()); wait > 50*time.Millisecond {
					early.Add(1)
					http.NotFound(w, r)
					return
				}
				served.Add(1)
				w.Header().Set("Content-Length", "20000")
				w.Write(make([]byte, 20000))
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			var out, errb bytes.Buffer
			report := filepath.Join(t.TempDir(), "play.json")
			code := run([]string{"play", "-duration", "4s", "-json", report, srv.URL + "/live.mpd"}, &out, &errb)
			if code != 0 {
				t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
			}
			if l := liveLatencyOf(t, report); l.StartSeconds < 1 || l.StartSeconds > 4 || early.Load() != 0 {
				t.Errorf("joined %.2f s behind the server's live edge (want 2 to 3), %d requests for segments not yet published", l.StartSeconds, early.Load())
			}
			if served.Load() < 4 {
				t.Errorf("%d segments served for 4 chunks", served.Load())
			}
		})
	}
}

// liveLatency is play -json's liveLatency.
type liveLatency struct{ StartSeconds, EndSeconds float64 }

// liveLatencyOf reads the liveLatency of the play -json report at path,
// and fails the test when it has none.
func liveLatencyOf(t *testing.T, path string) liveLatency {
	t.Helper()
	var summary struct {
		LiveLatency *liveLatency `json:"liveLatency"`
	}
	data, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(data, &summary) != nil || summary.LiveLatency == nil {
		t.Fatalf("play -json: %v\n%s", err, data)
	}
	return *summary.LiveLatency
}

// TestPlayEndsWithTheLiveStream: ffmpeg's live stream ends (it writes a
// static MPD, or EXT-X-ENDLIST) before the length play was asked for;
// play plays it to its last segment and ends there, saying so, rather
// than fail. DASH with a template of fixed duration, whose MPD says
// nothing of the end until play re-reads it (on a segment not found), and
// with a SegmentTimeline; HLS.
func TestPlayEndsWithTheLiveStream(t *testing.T) {
	for _, c := range []struct {
		name, ready, playlist string
		output                func(dir string) []string
		segment               *regexp.Regexp // a video segment's name: its number
	}{
		{"DASH template", "chunk-stream0-00003.m4s", "live.mpd", func(dir string) []string { return liveDASH(dir, "0") }, regexp.MustCompile(`^chunk-stream[01]-(\d+)\.m4s$`)},
		{"DASH timeline", "chunk-stream0-00003.m4s", "live.mpd", func(dir string) []string { return liveDASH(dir, "1") }, regexp.MustCompile(`^chunk-stream[01]-(\d+)\.m4s$`)},
		{"HLS", "s_03.m4s", "master.m3u8", liveHLS, regexp.MustCompile(`^s_[01](\d+)\.m4s$`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// A 16 s stream, joined once three segments are out (on a
			// loaded machine ffmpeg runs behind the clock, and fewer are
			// left to play).
			liveFFmpeg(t, dir, 16, []string{c.ready}, c.output(dir)...)
			log := &rangeLog{}
			srv := httptest.NewServer(log.wrap(http.FileServer(http.Dir(dir))))
			defer srv.Close()
			var out, errb bytes.Buffer
			report := filepath.Join(t.TempDir(), "play.json")
			if code := run([]string{"play", "-duration", "30s", "-json", report, srv.URL + "/" + c.playlist}, &out, &errb); code != 0 {
				t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), "live: the stream ended after") {
				t.Errorf("play's summary does not say the stream ended:\n%s", out.String())
			}
			var r struct {
				Chunks      int  `json:"chunks"`
				StreamEnded bool `json:"streamEnded"`
			}
			if data, err := os.ReadFile(report); err != nil || json.Unmarshal(data, &r) != nil || !r.StreamEnded {
				t.Errorf("play -json: %s (%v)", data, err)
			}
			// Played to the stream's last segment, each once.
			last := 0
			files, _ := os.ReadDir(dir)
			for _, f := range files {
				if g := c.segment.FindStringSubmatch(f.Name()); g != nil {
					n, _ := strconv.Atoi(g[1])
					last = max(last, n)
				}
			}
			played := segmentsServed(log, c.segment)
			if len(played) != r.Chunks || len(played) == 0 || played[len(played)-1] != last {
				t.Errorf("video segments played %v (%d chunks), want consecutive ones to the last, %d", played, r.Chunks, last)
			}
			for i, n := range played {
				if n != played[0]+i {
					t.Errorf("video segments played %v are not consecutive", played)
					break
				}
			}
		})
	}
}

// TestPlayJumpsToTheLiveEdge: ffmpeg's live DASH (an MPD keeping 8 s of
// segments, the files deleted as they leave it; a template of fixed
// duration and a SegmentTimeline) and HLS (playlists of
// four segments, deleted as they slide off), played over a link that is
// fast for 3 s, then 40 kbit/s until 25 s, then fast again. A chunk takes
// about 20 s on the slow link, and the next has left the stream by then.
// play jumps ahead to the live edge, as hls.js and dash.js do, says so,
// and plays on there, rather than fail on a segment that is gone; and it
// ends about as far behind the edge as it joined, not 20 s further.
func TestPlayJumpsToTheLiveEdge(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "slow-start.txt")
	if err := os.WriteFile(trace, []byte("0 50\n3 50\n3.01 0.04\n25 0.04\n25.01 50\n600 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, ready, playlist string
		output                func(dir string) []string
		segment               *regexp.Regexp // a video segment's name: its number
	}{
		{"DASH template", "chunk-stream0-00003.m4s", "live.mpd", func(dir string) []string { return shortWindowDASH(dir, "0") }, regexp.MustCompile(`^chunk-stream[01]-(\d+)\.m4s$`)},
		{"DASH timeline", "chunk-stream0-00003.m4s", "live.mpd", func(dir string) []string { return shortWindowDASH(dir, "1") }, regexp.MustCompile(`^chunk-stream[01]-(\d+)\.m4s$`)},
		{"HLS", "s_03.m4s", "master.m3u8", func(dir string) []string {
			return []string{"-f", "hls", "-hls_time", "2", "-hls_list_size", "4", "-hls_flags", "delete_segments", "-hls_segment_type", "fmp4",
				"-master_pl_name", "master.m3u8", "-var_stream_map", "v:0,agroup:a v:1,agroup:a a:0,agroup:a,default:yes", filepath.Join(dir, "s_%v.m3u8")}
		}, regexp.MustCompile(`^s_[01](\d+)\.m4s$`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			liveFFmpeg(t, dir, 60, []string{c.ready}, c.output(dir)...)
			log := &rangeLog{}
			srv := httptest.NewServer(log.wrap(http.FileServer(http.Dir(dir))))
			defer srv.Close()
			var out, errb bytes.Buffer
			report := filepath.Join(t.TempDir(), "play.json")
			if code := run([]string{"play", "-abr", "throughput", "-trace", trace, "-duration", "10s", "-json", report, srv.URL + "/" + c.playlist}, &out, &errb); code != 0 {
				t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
			}
			t.Log(out.String())
			if !strings.Contains(out.String(), "s to the live edge") || !strings.Contains(out.String(), "live: fell behind the stream's time-shift buffer") {
				t.Errorf("play does not say it jumped to the live edge:\n%s", out.String())
			}
			var r struct {
				Chunks         int     `json:"chunks"`
				Rejoins        int     `json:"rejoins"`
				SkippedSeconds float64 `json:"skippedSeconds"`
				LiveLatency    struct {
					Start float64 `json:"startSeconds"`
					End   float64 `json:"endSeconds"`
				} `json:"liveLatency"`
			}
			if data, err := os.ReadFile(report); err != nil || json.Unmarshal(data, &r) != nil || r.Chunks != 5 || r.Rejoins < 1 || r.SkippedSeconds < 4 {
				t.Errorf("play -json: %s (%v), want 5 chunks and a jump of at least two segments", data, err)
			}
			// Joined three segments (6 s) behind the edge or less, and
			// back there after the jump.
			if r.LiveLatency.End > r.LiveLatency.Start+4 || r.LiveLatency.Start > 10 {
				t.Errorf("live latency %.1fs when playback began, %.1fs at the end: want it back near the start", r.LiveLatency.Start, r.LiveLatency.End)
			}
			played := segmentsServed(log, c.segment)
			jumps := 0
			for i := 1; i < len(played); i++ {
				if d := played[i] - played[i-1]; d > 1 {
					jumps++
				} else if d < 1 {
					t.Errorf("video segments played %v: not in order", played)
				}
			}
			// A chunk whose sound left the stream while its video came in
			// is fetched again at the live edge: its video is one more.
			if len(played) < 5 || jumps != r.Rejoins {
				t.Errorf("video segments played %v, want 5 (and one for each chunk dropped) with %d jumps", played, r.Rejoins)
			}
		})
	}
}

// segmentsServed is the numbers of the segments log served whole (GET,
// 200) whose names segment matches (its first group: the number), in
// order.
func segmentsServed(log *rangeLog, segment *regexp.Regexp) []int {
	var out []int
	for _, q := range log.take() {
		if g := segment.FindStringSubmatch(strings.TrimPrefix(q.path, "/")); g != nil && q.method == http.MethodGet && q.status == http.StatusOK {
			n, _ := strconv.Atoi(g[1])
			out = append(out, n)
		}
	}
	return out
}

// shortWindowDASH is ffmpeg's live DASH packager into dir keeping 8 s of
// segments (four), each file deleted as it leaves the MPD.
func shortWindowDASH(dir, useTimeline string) []string {
	return []string{"-f", "dash", "-use_timeline", useTimeline, "-use_template", "1", "-seg_duration", "2", "-window_size", "4", "-extra_window_size", "0",
		"-adaptation_sets", "id=0,streams=v id=1,streams=a", filepath.Join(dir, "live.mpd")}
}

// TestPlayLiveEveryAlgorithm: every ABR algorithm plays a live stream
// (ffmpeg's live HLS, two renditions) over loopback at the top rendition
// once it has started. A live buffer cannot grow past the distance to the
// live edge (here about 6 s): buffer-based rules tuned for a 60 s buffer
// (bola, bba) sank to the lowest rendition there whatever the bandwidth.
func TestPlayLiveEveryAlgorithm(t *testing.T) {
	dir := t.TempDir()
	liveFFmpeg(t, dir, 60, []string{"master.m3u8", "s_03.m4s"}, liveHLS(dir)...)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close) // after the parallel subtests
	for _, abr := range player.Algorithms() {
		t.Run(abr, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "chunks.csv")
			var stdout, stderr bytes.Buffer
			if code := run([]string{"play", "-abr", abr, "-duration", "12s", "-quiet", "-out", out, srv.URL + "/master.m3u8"}, &stdout, &stderr); code != 0 {
				t.Fatalf("deepcast play: exit %d\n%s%s", code, stdout.String(), stderr.String())
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var renditions []string
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
				renditions = append(renditions, strings.Split(line, ",")[2])
			}
			// Startup may take a chunk or two at the lowest. BBA's rule
			// puts the top at two segments of buffer (a reservoir of one,
			// which a stall leaves, and a step per rendition), which is all
			// a player three segments behind the edge can hold when it asks
			// for the next: it reaches the top, and falls back whenever a
			// segment comes late.
			missed, want := slices.ContainsFunc(renditions[2:], func(r string) bool { return r != "1" }), "from the third chunk on"
			if abr == "bba" {
				missed, want = !slices.Contains(renditions[2:], "1"), "after the second chunk"
			}
			if len(renditions) != 6 || missed {
				t.Errorf("renditions %v over loopback, want the top (1) %s", renditions, want)
			}
		})
	}
}

// TestPlayCatchesUpWithTheLiveEdge: a slow stretch of the link stalls
// three players of one live stream (ffmpeg's DASH) alike. The one at
// normal speed ends as much further behind the live edge as it stalled;
// those with -catchup 1.5, at a fixed rate or as the lag goes (the
// sigmoid law), play faster until they are back about where they began,
// stall no more, and say, chunk by chunk and at the end, how much they
// had to win back and won. -out's per-chunk latency follows it all, and
// -live-delay sets where they join.
func TestPlayCatchesUpWithTheLiveEdge(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "slow-stretch.txt")
	if err := os.WriteFile(trace, []byte("0 50\n3 50\n3.01 0.04\n14 0.04\n14.01 50\n600 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	liveFFmpeg(t, dir, 80, []string{"live.mpd", "chunk-stream0-00004.m4s"}, liveDASH(dir, "0")...)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	type outcome struct {
		out                      string
		code                     int
		start, end, caught, stal float64
		mean, max                float64 // over the chunks, from -json
		// latencies is the -out log's last column, chunk by chunk.
		latencies []float64
		// rows are the -out log's rows, as numbers.
		rows [][]float64
	}
	runs := map[string]*outcome{"normal": {}, "catchup": {}, "sigmoid": {}}
	var wg sync.WaitGroup
	for name, o := range runs {
		wg.Go(func() {
			// ffmpeg's MPD suggests joining one segment behind the edge,
			// where a segment written a little late stalls a player that
			// caught up to there (9.15 s of stalls against 7.00 s, once):
			// the players join three behind, as dash.js does by default.
			args := []string{"play", "-abr", "throughput", "-trace", trace, "-duration", "40s", "-live-delay", "6s"}
			switch name {
			case "catchup":
				args = append(args, "-catchup", "1.5")
			case "sigmoid":
				// Scored by LoL+'s QoE, which prices the latency.
				args = append(args, "-catchup", "1.5", "-catchup-law", "sigmoid", "-qoe", "lolp")
			}
			report, chunkLog := filepath.Join(t.TempDir(), "play.json"), filepath.Join(t.TempDir(), "chunks.csv")
			var out, errb bytes.Buffer
			o.code = run(append(args, "-json", report, "-out", chunkLog, srv.URL+"/live.mpd"), &out, &errb)
			o.out = out.String() + errb.String()
			if data, err := os.ReadFile(chunkLog); err == nil {
				lines := strings.Split(strings.TrimSpace(string(data)), "\n")
				if !strings.HasSuffix(lines[0], ","+player.LiveColumn) {
					o.out += "\n-out's columns: " + lines[0]
					return
				}
				for _, line := range lines[1:] {
					var row []float64
					for _, f := range strings.Split(line, ",") {
						v, _ := strconv.ParseFloat(f, 64)
						row = append(row, v)
					}
					o.rows = append(o.rows, row)
					o.latencies = append(o.latencies, row[len(row)-1])
				}
			}
			var r struct {
				StallSeconds    float64 `json:"stallSeconds"`
				CaughtUpSeconds float64 `json:"caughtUpSeconds"`
				LiveLatency     struct {
					Start float64 `json:"startSeconds"`
					End   float64 `json:"endSeconds"`
					Mean  float64 `json:"meanSeconds"`
					Max   float64 `json:"maxSeconds"`
				} `json:"liveLatency"`
			}
			if data, err := os.ReadFile(report); err == nil && json.Unmarshal(data, &r) == nil {
				o.start, o.end, o.caught, o.stal = r.LiveLatency.Start, r.LiveLatency.End, r.CaughtUpSeconds, r.StallSeconds
				o.mean, o.max = r.LiveLatency.Mean, r.LiveLatency.Max
			}
		})
	}
	wg.Wait()
	for name, o := range runs {
		t.Logf("%s: exit %d, latency %.2f s → %.2f s, stalled %.2f s, caught up %.2f s\n%s", name, o.code, o.start, o.end, o.stal, o.caught, o.out)
		if o.code != 0 {
			t.Fatalf("%s: deepcast play: exit %d", name, o.code)
		}
		if o.stal < 3 {
			t.Fatalf("%s stalled %.2f s: the slow stretch tests nothing", name, o.stal)
		}
		// Joined 6 s behind: the segment that holds that point, so up to
		// a segment (2 s) more, and the startup.
		if o.start < 5.5 || o.start > 8.5 {
			t.Errorf("%s: began %.2f s behind the live edge, with -live-delay 6s", name, o.start)
		}
		// The per-chunk latency in -out runs from the start's to the end's,
		// up by the stalls on the way, as each chunk line says.
		n := len(o.latencies)
		if n == 0 || math.Abs(o.latencies[0]-o.start) > 0.5 || math.Abs(o.latencies[n-1]-o.end) > 0.01 ||
			slices.Max(o.latencies) < o.start+o.stal-1.5 || !regexp.MustCompile(`chunk +\d+ .*  latency \d+\.\ds\n`).MatchString(o.out) {
			t.Errorf("%s: -out's latency by chunk %v, want from %.2f s to %.2f s and up by the %.2f s stalled, as the chunk lines say", name, o.latencies, o.start, o.end, o.stal)
		}
		// -json's mean and maximum are those of the chunks' (to -out's
		// millisecond), and the summary says them.
		if n > 0 {
			var sum float64
			for _, l := range o.latencies {
				sum += l
			}
			if math.Abs(o.mean-sum/float64(n)) > 0.001 || math.Abs(o.max-slices.Max(o.latencies)) > 0.001 ||
				!strings.Contains(o.out, fmt.Sprintf("%.2fs on average over the chunks, %.2fs at most", o.mean, o.max)) {
				t.Errorf("%s: -json's latency mean %.3f s, max %.3f s; the chunks' %.3f s, %.3f s", name, o.mean, o.max, sum/float64(n), slices.Max(o.latencies))
			}
		}
	}
	// Under -qoe lolp each chunk's term is its bitrate times its 2 s, less
	// the switch, R_max per stalled second and 0.1·R_max per second behind
	// the edge (here always more than 1.1 s), less R_min per unit of rate
	// above 1, which at up to 1.5× leaves the rest within R_min/2.
	{
		rows := runs["sigmoid"].rows
		col := func(name string) int { return slices.Index(player.LogColumns, name) }
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, r := range rows {
			lo, hi = min(lo, r[col("bitrate_kbps")]/1000), max(hi, r[col("bitrate_kbps")]/1000)
		}
		if len(rows) == 0 || lo == hi {
			t.Fatalf("-qoe lolp: %d chunks between %.3f and %.3f Mbit/s: the slow stretch should have played both renditions", len(rows), lo, hi)
		}
		for i, r := range rows {
			br, last := r[col("bitrate_kbps")]/1000, r[col("bitrate_kbps")]/1000
			if i > 0 {
				last = rows[i-1][col("bitrate_kbps")] / 1000
			}
			rest := r[col("qoe")] - (2*br - math.Abs(br-last) - hi*r[col("rebuffer_s")] - 0.1*hi*r[len(r)-1])
			if rest > 0.01 || rest < -lo/2-0.01 {
				t.Errorf("-qoe lolp, chunk %d: term %.3f at %.0f kbit/s, %.3f s stalled, %.3f s behind: %.3f beyond the bitrate, stall and latency terms, want 0 to -R_min/2 (%.3f)",
					i+1, r[col("qoe")], br*1000, r[col("rebuffer_s")], r[len(r)-1], rest, -lo/2)
			}
		}
	}
	normal := runs["normal"]
	if normal.caught != 0 || normal.end < normal.start+normal.stal-1.5 {
		t.Errorf("at normal speed: latency %.2f s → %.2f s after %.2f s of stalls, caught up %.2f s", normal.start, normal.end, normal.stal, normal.caught)
	}
	for _, law := range []string{"catchup", "sigmoid"} {
		fast := runs[law]
		// It plays faster only above a chunk of buffer: that much is left
		// for the next download, so catching up adds no stall here.
		if fast.stal > normal.stal+1 {
			t.Errorf("%s: catching up stalled %.2f s, at normal speed %.2f s", law, fast.stal, normal.stal)
		}
		if fast.end > fast.start+1.5 || fast.caught < fast.stal-1.5 || !strings.Contains(fast.out, "live: caught up") || !strings.Contains(fast.out, "s to catch up") {
			t.Errorf("%s: latency %.2f s → %.2f s after %.2f s of stalls, caught up %.2f s; want back within 1.5 s of the start", law, fast.start, fast.end, fast.stal, fast.caught)
		}
	}
	// A sigmoid with no rate to follow, or a join delay out of range, is a
	// usage error, before any request.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-catchup-law", "sigmoid"}, "-catchup-law sigmoid needs -catchup"},
		{[]string{"-live-delay", "-2s"}, "-live-delay -2s: want 0"},
		{[]string{"-live-delay", "2h"}, "-live-delay 2h0m0s: want 0"},
	} {
		var out, errb bytes.Buffer
		if code := run(append(append([]string{"play"}, c.args...), srv.URL+"/live.mpd"), &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("play %v: exit %d, %s", c.args, code, errb.String())
		}
	}
}
