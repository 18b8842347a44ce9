package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media/mediatest"
)

// TestPlayCrossesLivePeriods: a live stream that starts a new Period
// every 4 s (two segments), as livesim2 does with its periods setting
// and as a packager does at every splice of a server-side ad insertion.
// ffmpeg encodes and packages it in real time; the server in front of it
// writes the MPD as that packager would: each Period under its own path,
// with its own initialization segments, numbering and timeline offset,
// the MPD listing the Periods of its time-shift buffer and the one under
// way (none ahead) and asking to be re-read every 2 s. From the third
// Period on comes a long break of advertisements of the lower rendition
// alone: deepcast play joins during the programme, before the break, and
// the re-reads made once the break outlasts the programme in the MPD
// (12 s of Periods listed) must keep laying the Periods onto the ladder
// the session plays with, not the advertisements'. It plays on across the
// Periods that begin while it plays: it asks for every segment through
// the Period that holds it (the server refuses it through any other, and
// the top rendition in an advertisement), fetches each new Period's
// initialization segment before its first segment, plays consecutive
// segments of video and sound, and says that the advertisements'
// rendition stood in for the ladder.
func TestPlayCrossesLivePeriods(t *testing.T) {
	const periodSegments, segment = 2, 2 * time.Second
	period := periodSegments * segment
	dir := t.TempDir()
	liveFFmpeg(t, dir, 60, []string{"chunk-stream0-00003.m4s"}, liveDASH(dir, "0")...)
	doc, err := os.ReadFile(filepath.Join(dir, "live.mpd"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`availabilityStartTime="([^"]+)"`).FindSubmatch(doc)
	if m == nil || !bytes.Contains(doc, []byte(`timescale="1000000" duration="2000000"`)) || !bytes.Contains(doc, []byte(`minimumUpdatePeriod="PT500S"`)) {
		t.Fatalf("not a live MPD:\n%s", doc)
	}
	ast, err := time.Parse(time.RFC3339Nano, string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	periodRE := regexp.MustCompile(`(?s)<Period[^>]*>(.*)</Period>`)
	// The advertisements, of the lower rendition alone.
	isAd := func(k int64) bool { return k >= 2 }
	topRendition := regexp.MustCompile(`(?s)<Representation id="1".*?</Representation>`)
	var wrongPeriod atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live.mpd", func(w http.ResponseWriter, r *http.Request) {
		doc, err := os.ReadFile(filepath.Join(dir, "live.mpd"))
		g := periodRE.FindSubmatchIndex(doc)
		if err != nil || g == nil {
			http.Error(w, "no MPD yet", http.StatusServiceUnavailable)
			return
		}
		inner := string(doc[g[2]:g[3]])
		// The Periods of the last 12 s, to the one under way: from 12 s
		// on, more of advertisements than of the programme.
		var periods strings.Builder
		now, depth := int64(time.Since(ast)/period), int64(12*time.Second/period)
		for k := max(now-depth+1, 0); k <= now; k++ {
			p := strings.ReplaceAll(inner, `startNumber="1"`, fmt.Sprintf(`startNumber="%d" presentationTimeOffset="%d"`, k*periodSegments+1, k*period.Microseconds()))
			if isAd(k) {
				p = topRendition.ReplaceAllString(p, "")
			}
			fmt.Fprintf(&periods, `<Period id="p%d" start="PT%dS"><BaseURL>p%d/</BaseURL>%s</Period>`, k, k*int64(period/time.Second), k, p)
		}
		out := string(doc[:g[0]]) + periods.String() + string(doc[g[1]:])
		out = strings.Replace(out, `minimumUpdatePeriod="PT500S"`, `minimumUpdatePeriod="PT2S"`, 1)
		w.Header().Set("Content-Type", "application/dash+xml")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(out))
	})
	mux.HandleFunc("GET /{period}/{file}", func(w http.ResponseWriter, r *http.Request) {
		var k, rep, n int
		file := r.PathValue("file")
		if _, err := fmt.Sscanf(r.PathValue("period"), "p%d", &k); err != nil {
			http.NotFound(w, r)
			return
		}
		if _, err := fmt.Sscanf(file, "chunk-stream%d-%d.m4s", &rep, &n); err == nil && ((n-1)/periodSegments != k || rep == 1 && isAd(int64(k))) {
			wrongPeriod.Add(1)
			http.Error(w, fmt.Sprintf("segment %d of stream %d is not in Period %d", n, rep, k), http.StatusNotFound)
			return
		}
		http.ServeFile(w, r, filepath.Join(dir, filepath.Base(file)))
	})
	log := &rangeLog{}
	srv := httptest.NewServer(log.wrap(mux))
	defer srv.Close()

	var out, errb bytes.Buffer
	report := filepath.Join(t.TempDir(), "play.json")
	if code := run([]string{"play", "-duration", "12s", "-json", report, srv.URL + "/live.mpd"}, &out, &errb); code != 0 {
		t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if n := wrongPeriod.Load(); n != 0 {
		t.Errorf("%d segments asked for through a Period that does not hold them", n)
	}
	reqs := log.take()
	media := regexp.MustCompile(`^/p(\d+)/chunk-stream(\d)-(\d+)\.m4s$`)
	inits := regexp.MustCompile(`^/p(\d+)/init-stream(\d)\.m4s$`)
	initAt := map[string]time.Time{} // "period/stream": when first fetched
	numbers := map[string][]int{}    // video or sound: the segments played
	periods := map[int]bool{}
	for _, r := range reqs {
		if r.method != http.MethodGet || r.status != http.StatusOK {
			continue
		}
		if g := inits.FindStringSubmatch(r.path); g != nil {
			if _, ok := initAt[g[1]+"/"+g[2]]; !ok {
				initAt[g[1]+"/"+g[2]] = r.at
			}
			continue
		}
		g := media.FindStringSubmatch(r.path)
		if g == nil {
			continue
		}
		k, _ := strconv.Atoi(g[1])
		n, _ := strconv.Atoi(g[3])
		kind := "video"
		if g[2] == "2" {
			kind = "sound"
		} else {
			periods[k] = true
		}
		numbers[kind] = append(numbers[kind], n)
		// The Period's initialization segment of this stream came first.
		if at, ok := initAt[g[1]+"/"+g[2]]; !ok || at.After(r.at) {
			t.Errorf("%s came before the initialization segment of its Period and stream", r.path)
		}
	}
	for kind, ns := range numbers {
		for i, n := range ns {
			if n != ns[0]+i {
				t.Errorf("%s segments played %v are not consecutive", kind, ns)
				break
			}
		}
	}
	if len(numbers["video"]) != 6 || len(numbers["sound"]) < 6 {
		t.Errorf("segments played: %v, want 6 of video and as many of sound\n%s", numbers, out.String())
	}
	// 12 s of 4-s Periods: three of them at least, two joined on the way,
	// one of them an advertisement.
	if len(periods) < 3 {
		t.Errorf("played segments of Periods %v, want three or more", periods)
	}
	if !strings.Contains(out.String(), `has another video ladder: its renditions of the nearest bandwidth stand in (0 for 0, 0 for 1)`) {
		t.Errorf("play does not say that advertisements stood in for the ladder:\n%s", out.String())
	}
	// The session joined during the programme and read the MPD again
	// once the break outlasted it (the Periods listed from 12 s on):
	// else this test tells nothing of the ladder re-reads keep.
	var reads []time.Duration
	for _, r := range reqs {
		if r.path == "/live.mpd" {
			reads = append(reads, r.at.Sub(ast))
		}
	}
	if len(reads) == 0 || reads[0] >= 12*time.Second || reads[len(reads)-1] < 12500*time.Millisecond {
		t.Errorf("the MPD was read at %v from its start: want the first before 12 s and one after 12.5 s", reads)
	}
	if mpds := countPath(reqs, "/live.mpd"); mpds < 3 || mpds > 1+6*4 {
		t.Errorf("the MPD was read %d times for 6 chunks", mpds)
	}
}

// TestPlayCrossesAnAdvertisementsLadder: an on-demand presentation of
// three Periods, a programme of two renditions (300k, 900k), an
// advertisement of one (500k, not conditioned to the programme's ladder)
// and the programme again, as a server-side ad insertion writes it. play
// plays it through: each chunk of the advertisement from its one
// rendition, whichever of the ladder's the ABR chose, with its own
// initialization segment first, and says that the advertisement's
// renditions stood in for the ladder's.
func TestPlayCrossesAnAdvertisementsLadder(t *testing.T) {
	dir := t.TempDir()
	encode := func(sub string, seconds int, ladder ...string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		args := []string{"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=f=440", "-t", strconv.Itoa(seconds)}
		for range ladder {
			args = append(args, "-map", "0:v")
		}
		args = append(args, "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast")
		for i, rate := range ladder {
			args = append(args, fmt.Sprintf("-b:v:%d", i), rate)
		}
		args = append(args, "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000",
			"-f", "dash", "-use_template", "1", "-use_timeline", "0", "-seg_duration", "2", filepath.Join(dir, sub, "m.mpd"))
		mediatest.FFmpeg(t, args...)
		doc, err := os.ReadFile(filepath.Join(dir, sub, "m.mpd"))
		if err != nil {
			t.Fatal(err)
		}
		g := regexp.MustCompile(`(?s)<Period[^>]*>(.*)</Period>`).FindSubmatch(doc)
		if g == nil {
			t.Fatalf("no Period in %s", doc)
		}
		return string(g[1])
	}
	programme := encode("prog", 8, "300k", "900k")
	ad := encode("ad", 4, "500k")
	mpd := `<?xml version="1.0" encoding="utf-8"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-live:2011" mediaPresentationDuration="PT20S" minBufferTime="PT4S">` +
		`<Period id="programme" start="PT0S"><BaseURL>prog/</BaseURL>` + programme + `</Period>` +
		`<Period id="ad" start="PT8S"><BaseURL>ad/</BaseURL>` + ad + `</Period>` +
		`<Period id="programme-2" start="PT12S"><BaseURL>prog/</BaseURL>` + programme + `</Period></MPD>`
	if err := os.WriteFile(filepath.Join(dir, "spliced.mpd"), []byte(mpd), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &rangeLog{}
	srv := httptest.NewServer(log.wrap(http.FileServer(http.Dir(dir))))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"play", srv.URL + "/spliced.mpd"}, &out, &errb); code != 0 {
		t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), `note: period "ad" has another video ladder: its renditions of the nearest bandwidth stand in (0 for 0, 0 for 1)`) ||
		!strings.Contains(out.String(), "chunk  10") {
		t.Errorf("deepcast play:\n%s", out.String())
	}
	var played []string
	adInit := time.Time{}
	for _, r := range log.take() {
		if r.method != http.MethodGet {
			continue
		}
		if r.status != http.StatusOK {
			t.Errorf("%s", r)
		}
		switch {
		case r.path == "/ad/init-stream0.m4s":
			adInit = r.at
		case strings.HasPrefix(r.path, "/ad/chunk-stream0-") && (adInit.IsZero() || adInit.After(r.at)):
			t.Errorf("%s came before the advertisement's initialization segment", r.path)
		}
		if strings.Contains(r.path, "/chunk-stream") && !strings.Contains(r.path, "stream2-") && !strings.Contains(r.path, "/ad/chunk-stream1-") {
			played = append(played, strings.TrimSuffix(strings.TrimPrefix(r.path, "/"), ".m4s"))
		}
	}
	// Video: the programme's four, the advertisement's two (of its one
	// rendition), the programme's four again.
	var periods []string
	for _, p := range played {
		dir, _, _ := strings.Cut(p, "/")
		periods = append(periods, dir)
	}
	want := []string{"prog", "prog", "prog", "prog", "ad", "ad", "prog", "prog", "prog", "prog"}
	if !slices.Equal(periods, want) || played[4] != "ad/chunk-stream0-00001" || played[5] != "ad/chunk-stream0-00002" {
		t.Errorf("video segments fetched: %q", played)
	}
}

// TestPlayFollowsALiveHLSDiscontinuity: live HLS spliced as a server-side
// ad insertion splices it: from the first segment published after the
// player joined, the media playlists mark a discontinuity and name
// another initialization segment (EXT-X-MAP). deepcast play, learning of
// the splice only by reloading the playlists, fetches the new
// initialization segment of each stream before that stream's first
// segment after the splice, and plays consecutive segments across it.
func TestPlayFollowsALiveHLSDiscontinuity(t *testing.T) {
	dir := t.TempDir()
	liveFFmpeg(t, dir, 60, []string{"master.m3u8", "s_03.m4s"}, liveHLS(dir)...)
	segLine := regexp.MustCompile(`(?m)^s_[0-2](\d+)\.m4s$`)
	mapLine := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`)
	var spliceAt atomic.Int64 // the first segment number after the splice, once known
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{file}", func(w http.ResponseWriter, r *http.Request) {
		file := r.PathValue("file")
		if !strings.HasSuffix(file, ".m3u8") || file == "master.m3u8" {
			http.ServeFile(w, r, filepath.Join(dir, file))
			return
		}
		doc, err := os.ReadFile(filepath.Join(dir, file))
		lines := segLine.FindAllSubmatchIndex(doc, -1)
		if err != nil || len(lines) == 0 {
			http.Error(w, "no playlist yet", http.StatusServiceUnavailable)
			return
		}
		last, _ := strconv.Atoi(string(doc[lines[len(lines)-1][2]:lines[len(lines)-1][3]]))
		spliceAt.CompareAndSwap(0, int64(last+1)) // the first read: the join
		out := string(doc)
		for _, g := range lines {
			if n, _ := strconv.Atoi(string(doc[g[2]:g[3]])); int64(n) == spliceAt.Load() {
				// The EXTINF line before the segment's URI.
				extinf := strings.LastIndex(string(doc[:g[0]]), "#EXTINF")
				m := mapLine.FindSubmatch(doc)
				if extinf < 0 || m == nil {
					http.Error(w, "a playlist without EXT-X-MAP or EXTINF", http.StatusInternalServerError)
					return
				}
				out = string(doc[:extinf]) + "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"splice/" + string(m[1]) + "\"\n" + string(doc[extinf:])
			}
		}
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Write([]byte(out))
	})
	mux.HandleFunc("GET /splice/{file}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, r.PathValue("file")))
	})
	log := &rangeLog{}
	srv := httptest.NewServer(log.wrap(mux))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"play", "-duration", "10s", srv.URL + "/master.m3u8"}, &out, &errb); code != 0 {
		t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
	}
	splice := int(spliceAt.Load())
	segment := regexp.MustCompile(`^/s_([0-2])(\d+)\.m4s$`)
	spliceInit := regexp.MustCompile(`^/splice/init_([0-2])\.mp4$`)
	initAt := map[string]time.Time{} // stream: when its new initialization segment was first fetched
	numbers := map[string][]int{}    // video or sound: the segments played
	after := 0                       // video segments played after the splice
	for _, r := range log.take() {
		if r.method != http.MethodGet || r.status != http.StatusOK {
			continue
		}
		if g := spliceInit.FindStringSubmatch(r.path); g != nil {
			if _, ok := initAt[g[1]]; !ok {
				initAt[g[1]] = r.at
			}
			continue
		}
		g := segment.FindStringSubmatch(r.path)
		if g == nil {
			continue
		}
		n, _ := strconv.Atoi(g[2])
		kind := map[string]string{"0": "video", "1": "video", "2": "sound"}[g[1]]
		numbers[kind] = append(numbers[kind], n)
		if n < splice {
			continue
		}
		if kind == "video" {
			after++
		}
		if at, ok := initAt[g[1]]; !ok || at.After(r.at) {
			t.Errorf("%s, after the splice at segment %d, came before the stream's new initialization segment", r.path, splice)
		}
	}
	for kind, ns := range numbers {
		for i, n := range ns {
			if n != ns[0]+i {
				t.Errorf("%s segments played %v are not consecutive (splice at %d)\n%s", kind, ns, splice, out.String())
				break
			}
		}
	}
	if len(numbers["video"]) != 5 || len(numbers["sound"]) < 5 || after < 2 {
		t.Errorf("segments played: %v, want 5 of video and as many of sound, two or more after the splice at %d\n%s", numbers, splice, out.String())
	}
}
