package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPlayCrossesLivePeriods: a live stream that starts a new Period
// every 4 s (two segments), as livesim2 does with its periods setting
// and as a packager does at every splice of a server-side ad insertion.
// ffmpeg encodes and packages it in real time; the server in front of it
// writes the MPD as that packager would: each Period under its own path,
// with its own initialization segments, numbering and timeline offset,
// the MPD listing the Periods of its time-shift buffer and the one under
// way (none ahead) and asking to be re-read every 2 s. deepcast play
// joins it and plays on across the Periods that begin while it plays: it
// asks for every segment through the Period that holds it (the server
// refuses it through any other), fetches each new Period's
// initialization segment before its first segment, and plays consecutive
// segments of video and sound.
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
		// The Periods of ffmpeg's 20 s time-shift buffer, to the one
		// under way.
		var periods strings.Builder
		now, depth := int64(time.Since(ast)/period), int64(20*time.Second/period)
		for k := max(now-depth+1, 0); k <= now; k++ {
			p := strings.ReplaceAll(inner, `startNumber="1"`, fmt.Sprintf(`startNumber="%d" presentationTimeOffset="%d"`, k*periodSegments+1, k*period.Microseconds()))
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
		if _, err := fmt.Sscanf(file, "chunk-stream%d-%d.m4s", &rep, &n); err == nil && (n-1)/periodSegments != k {
			wrongPeriod.Add(1)
			http.Error(w, fmt.Sprintf("segment %d is not in Period %d", n, k), http.StatusNotFound)
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
	// 12 s of 4-s Periods: three of them at least, two joined on the way.
	if len(periods) < 3 {
		t.Errorf("played segments of Periods %v, want three or more", periods)
	}
	if mpds := countPath(reqs, "/live.mpd"); mpds < 3 || mpds > 1+6*4 {
		t.Errorf("the MPD was read %d times for 6 chunks", mpds)
	}
}
