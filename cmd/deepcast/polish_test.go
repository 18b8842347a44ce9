package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge/routing"
)

// TestWhatANewUserTrippedOver: each of the rough edges a new user met on
// the command line, now fixed.
func TestWhatANewUserTrippedOver(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name     string
		args     []string
		code     int
		want     string // in stderr
		unwanted string // not in stderr
	}{
		{"bare deepcast fails with the help", nil, 2, "Commands:", ""},
		{"one prefix per error", []string{"sample", "-o", "/nonexistent/dir/x.mp4", "-duration", "1s", "-size", "64x64"}, 1, "deepcast sample: ", "sample: sample:"},
		{"sample names the container", []string{"sample", "-o", filepath.Join(dir, "x.mkv")}, 2, "name it .mp4", ""},
		{"a size is quoted as given", []string{"edge", "-upstream", "http://127.0.0.1:1", "-mem", "12XB"}, 2, `"12XB"`, `"12X"`},
		{"enter-deep has no disk", []string{"edge", "-profile", "enter-deep", "-upstream", "http://127.0.0.1:1", "-disk", dir, "-listen", "127.0.0.1:0"}, 1, "memory only", ""},
		{"play wants a URL, at once", []string{"play", "lib/demo/manifest.mpd"}, 2, "not an http(s):// URL", "unsupported protocol scheme"},
		{"the library named once", []string{"origin", "-library", filepath.Join(dir, "nolib"), "-listen", "127.0.0.1:0"}, 1, "library " + filepath.Join(dir, "nolib") + ": open", "nolib: library"},
		{"a health check every nanosecond", []string{"edge", "-upstream", "http://127.0.0.1:1", "-check", "1ns"}, 2, "-check 1ns: want 50ms to 1h0m0s", ""},
		{"a fetch bound already past", []string{"edge", "-upstream", "http://127.0.0.1:1", "-fetch-timeout", "-1s"}, 2, "-fetch-timeout -1s: want", ""},
		{"a stream bound past any fetch", []string{"edge", "-upstream", "http://127.0.0.1:1", "-stream-after", "11m"}, 2, "-stream-after 11m0s: want 0s to 10m0s", ""},
		{"a range wait past any fetch", []string{"edge", "-upstream", "http://127.0.0.1:1", "-range-ahead", "11m"}, 2, "-range-ahead 11m0s: want 0s to 10m0s", ""},
		{"prefetch as a word", []string{"edge", "-upstream", "http://127.0.0.1:1", "-prefetch", "yess"}, 2, `-prefetch "yess": want true or false`, ""},
		{"a negative connection bound", []string{"router", "-edges", filepath.Join(dir, "edges.yaml"), "-max-conns", "-5"}, 2, "-max-conns -5", ""},
		{"an origin re-checking every nanosecond", []string{"origin", "-library", dir, "-check", "1ns"}, 2, "-check 1ns", ""},
		{"an upload stall bound no upload meets", []string{"origin", "-library", dir, "-upload-stall", "1ns"}, 2, "-upload-stall 1ns: want 1s to 1h0m0s", ""},
		{"a store read bound no store meets", []string{"origin", "-library", dir, "-store-timeout", "1ns"}, 2, "-store-timeout 1ns: want 100ms to 10m0s", ""},
		{"a memory tier of nothing", []string{"edge", "-upstream", "http://127.0.0.1:1", "-mem", "0"}, 2, "-mem 0: want at least 1MiB (leave -mem out for the profile's default)", ""},
		{"a disk tier of a few bytes", []string{"edge", "-upstream", "http://127.0.0.1:1", "-disk-size", "100"}, 2, "-disk-size 100: want at least 1MiB", ""},
		{"uploads of nothing", []string{"origin", "-library", dir, "-max-upload", "0"}, 2, "-max-upload 0: want at least 64KiB (to take no uploads, leave -admin-token out)", ""},
		{"a catalogue in one byte", []string{"origin", "-library", dir, "-catalog-memory", "1B"}, 2, "-catalog-memory 1: want at least 1MiB", ""},
		{"an upstream with a query", []string{"edge", "-upstream", "http://u:pw0rd@127.0.0.1:1/?x=1", "-listen", "127.0.0.1:0"}, 1, "with no query or fragment", "pw0rd"},
		{"a demo session of negative length", []string{"demo", "-dir", filepath.Join(dir, "demo"), "-play", "-1s"}, 2, "-play -1s: want", ""},
		{"a token for a relative path", []string{"token", "-securelink", "-key", filepath.Join(dir, "secret"), "-uri", "vod/a/1.m4s"}, 2, `-uri "vod/a/1.m4s": want a path from the root`, ""},
		{"a true/false flag's value apart", []string{"origin", "-library", dir, "-hsts", "true"}, 2, `unexpected argument "true": origin takes flags only`, "is required"},
		{"a stray argument to sim", []string{"sim", "-video", "v.csv", "-traces", "t", "extra"}, 2, `unexpected argument "extra"`, "are required"},
		{"flags after the input", []string{"package", "-o", filepath.Join(dir, "lib"), filepath.Join(dir, "missing.mp4"), "-name", "late"}, 1, "missing.mp4", "2 inputs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			start := time.Now()
			code := run(c.args, &out, &errb)
			if code != c.code || !strings.Contains(errb.String(), c.want) || c.unwanted != "" && strings.Contains(errb.String(), c.unwanted) {
				t.Errorf("deepcast %v: exit %d (want %d), stderr:\n%s", c.args, code, c.code, errb.String())
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("deepcast %v took %v", c.args, time.Since(start))
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.mkv")); err == nil {
		t.Error("sample wrote x.mkv")
	}
	// The player page lists an edge's upstreams: links without a password.
	if got := withoutUser("http://cdn:pw0rd@origin.example:8080/p"); got != "http://origin.example:8080/p" {
		t.Errorf("page link %q", got)
	}
	if got := redactURLs([]string{"http://cdn:pw0rd@o:1", "http://o:2"}); strings.Join(got, " ") != "http://cdn:xxxxx@o:1 http://o:2" {
		t.Errorf("logged upstreams %q", got)
	}
	// -h: one default per flag.
	var out, errb bytes.Buffer
	run([]string{"play", "-h"}, &out, &errb)
	if m := regexp.MustCompile(`\(default[^\n]*\(default`).FindString(errb.String()); m != "" {
		t.Errorf("play -h shows two defaults: %s", m)
	}
}

// TestLadderRungAboveTheSourceIsWarned: a rung larger than the source is
// dropped (never upscaled), and said so.
func TestLadderRungAboveTheSourceIsWarned(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "s.mp4")
	var out, errb bytes.Buffer
	if code := run([]string{"sample", "-o", src, "-duration", "2s", "-size", "320x180"}, &out, &errb); code != 0 {
		t.Fatalf("sample: %s", errb.String())
	}
	errb.Reset()
	if code := run([]string{"package", "-o", filepath.Join(dir, "lib"), src, "-ladder", "640x360@800k,320x180@300k", "-name", "s"}, &out, &errb); code != 0 {
		t.Fatalf("package: %s", errb.String())
	}
	if !strings.Contains(errb.String(), "ladder rung dropped") || !strings.Contains(errb.String(), "640x360@800k") {
		t.Errorf("no warning for the dropped rung:\n%s", errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "lib", "s", "180p-300k")); err != nil {
		t.Errorf("the flags after the input were not applied: %v", err)
	}
}

// TestEdgesFileErrorsInTheFilesWords: YAML errors name the file's shapes
// and lines, not Go types.
func TestEdgesFileErrorsInTheFilesWords(t *testing.T) {
	_, err := routing.ParseEdges([]byte("edges:\n  - name: a\n    url: http://x\n    colour: red\n    addresses: 5\n"))
	if err == nil || strings.Contains(err.Error(), "routing.") || !strings.Contains(err.Error(), "line 4: field colour not found in an edge") ||
		!strings.Contains(err.Error(), "line 5: cannot unmarshal !!int `5` into a list of strings") {
		t.Errorf("error: %v", err)
	}
}

// TestSimSaysWhatIsWrongFirst: sim checks its outputs before it
// simulates, and names what it wanted when given a video file as a trace
// or as the video.
func TestSimSaysWhatIsWrongFirst(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(repoRoot(), "testdata", "videos", "envivio-4s-48.csv")
	traces := filepath.Join(repoRoot(), "testdata", "traces", "fcc")
	binary := filepath.Join(dir, "clip.mp4")
	os.WriteFile(binary, append([]byte{0, 0, 0, 0x20, 'f', 't', 'y', 'p', 0xff, 0xfe}, bytes.Repeat([]byte{0}, 100)...), 0o644)
	for _, c := range []struct {
		name     string
		args     []string
		want     string
		unwanted string
	}{
		{"out in a missing folder", []string{"-video", video, "-traces", traces, "-out", "/nonexistent/r.csv"}, "-out /nonexistent/r.csv: folder /nonexistent does not exist", "sessions"},
		{"a video as a trace", []string{"-video", video, "-traces", binary}, "binary data, not a bandwidth trace", "\x00"},
		{"a video file as the video", []string{"-video", binary, "-traces", traces}, "want a video CSV", "outside the root"},
		{"a bandwidth factor of zero", []string{"-video", video, "-traces", traces, "-scale", "1,0"}, "want up to 16 distinct factors 0 < F <= 100", "traces x"},
		{"a negative -j", []string{"-video", video, "-traces", traces, "-j", "-3"}, "-j -3: want 1…1024", "traces x"},
		{"too many bandwidth factors", []string{"-video", video, "-traces", traces, "-scale", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"}, "want up to 16 distinct factors", "traces x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			start := time.Now()
			code := run(append([]string{"sim"}, c.args...), &out, &errb)
			if code == 0 || !strings.Contains(errb.String(), c.want) || strings.Contains(errb.String()+out.String(), c.unwanted) {
				t.Errorf("exit %d\nstderr: %q\nstdout: %q", code, errb.String(), out.String())
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v: the check did not come first", time.Since(start))
			}
		})
	}
}

// TestPlaySaysWhatIsWrongFirst: play checks its flags and outputs before
// its first request, where it used to fetch the manifest first (and write
// -out only after the whole session).
func TestPlaySaysWhatIsWrongFirst(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	binary := filepath.Join(dir, "clip.mp4")
	os.WriteFile(binary, append([]byte{0, 0, 0, 0x20, 'f', 't', 'y', 'p'}, bytes.Repeat([]byte{0}, 100)...), 0o644)
	sabre := filepath.Join(dir, "bus.json")
	os.WriteFile(sabre, []byte(`[{"duration_ms": 1000, "bandwidth_kbps": 5000, "latency_ms": 20}]`), 0o644)
	mpd := srv.URL + "/vod/a/manifest.mpd"
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown ABR", []string{"-abr", "nope"}, `unknown ABR "nope"`},
		{"an unknown QoE model", []string{"-qoe", "nope"}, `unknown QoE model "nope"`},
		{"a video as the trace", []string{"-trace", binary}, "not a bandwidth trace"},
		{"a negative round trip", []string{"-rtt", "-5ms"}, "neither can be negative"},
		{"a round trip and a trace's own latency", []string{"-rtt", "40ms", "-trace", sabre}, "trace bus.json carries its own latency (Sabre's format)"},
		{"a negative duration", []string{"-duration", "-1s"}, "neither can be negative"},
		{"-out in a missing folder", []string{"-out", "/nonexistent/log.csv"}, "-out /nonexistent/log.csv: folder /nonexistent does not exist"},
		{"-json in a missing folder", []string{"-json", "/nonexistent/s.json"}, "-json /nonexistent/s.json: folder /nonexistent does not exist"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := requests.Load()
			var out, errb bytes.Buffer
			code := run(append(append([]string{"play"}, c.args...), mpd), &out, &errb)
			if code == 0 || !strings.Contains(errb.String(), c.want) {
				t.Errorf("exit %d\nstderr: %q", code, errb.String())
			}
			if n := requests.Load() - before; n != 0 {
				t.Errorf("%d requests before the error", n)
			}
		})
	}
	// The same URL with good flags does reach the server (the checks above
	// are not passing because nothing ever asks it).
	var out, errb bytes.Buffer
	if code := run([]string{"play", "-abr", "bola", mpd}, &out, &errb); code == 0 || requests.Load() == 0 {
		t.Errorf("exit %d after %d requests: %s", code, requests.Load(), errb.String())
	}
}

// TestSimScalesTheTraces: -scale plays every trace at each bandwidth
// factor, each factor other than 1 a family of its own; on half the
// bandwidth the throughput rule fetches less.
func TestSimScalesTheTraces(t *testing.T) {
	out, err := exec.Command(buildBinary(t), "sim", "-video", filepath.Join(repoRoot(), "testdata", "videos", "envivio-4s-48.csv"),
		"-traces", filepath.Join(repoRoot(), "testdata", "traces", "hsdpa"), "-abr", "throughput", "-pensieve", "-scale", "0.5,1").CombinedOutput()
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	kbps := map[string]float64{}
	family := ""
	for line := range strings.Lines(string(out)) {
		if f, ok := strings.CutPrefix(line, "family "); ok {
			family, _, _ = strings.Cut(f, " ")
		}
		if f := strings.Fields(line); family != "" && len(f) > 6 && f[0] == "throughput" {
			kbps[family], _ = strconv.ParseFloat(f[6], 64)
		}
	}
	if !strings.Contains(string(out), "136 sessions (136 traces x 1 algorithms)") || len(kbps) != 2 || !(kbps["hsdpa-x0.5"] > 0 && kbps["hsdpa-x0.5"] < kbps["hsdpa"]) {
		t.Errorf("mean kbit/s per family %v, want hsdpa-x0.5 below hsdpa:\n%s", kbps, out)
	}
}

// TestSimReadsMahimahiTraces: sim takes a folder of traces in mahimahi's
// packet-delivery format as it is; a fast link plays higher renditions
// than a slow one.
func TestSimReadsMahimahiTraces(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lte")
	os.MkdirAll(dir, 0o755)
	// 12 Mbit/s as mahimahi's README writes it (a packet every ms, the
	// one line repeated), and 0.48 Mbit/s for two minutes.
	os.WriteFile(filepath.Join(dir, "fast.down"), []byte("1\n"), 0o644)
	var slow strings.Builder
	for ms := 25; ms <= 120_000; ms += 25 {
		slow.WriteString(strconv.Itoa(ms) + "\n")
	}
	os.WriteFile(filepath.Join(dir, "slow.down"), []byte(slow.String()), 0o644)
	results := filepath.Join(t.TempDir(), "r.csv")
	var out, errb bytes.Buffer
	code := run([]string{"sim", "-video", filepath.Join(repoRoot(), "testdata", "videos", "envivio-4s-48.csv"), "-traces", dir,
		"-abr", "throughput", "-pensieve", "-out", results}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "2 sessions (2 traces x 1 algorithms)") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	data, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	kbps := map[string]float64{} // mean_bitrate_kbps by trace
	for line := range strings.Lines(string(data)) {
		f := strings.Split(line, ",")
		if len(f) > 3 {
			kbps[f[0]], _ = strconv.ParseFloat(f[3], 64)
		}
	}
	// envivio's top rendition is 4300 kbit/s, its lowest 300.
	if !(kbps["fast.down"] > 3000 && kbps["slow.down"] > 0 && kbps["slow.down"] < 500) {
		t.Errorf("mean bitrates %v:\n%s", kbps, data)
	}
}

// TestSimReadsSabreInputs: sim runs on Sabre's own inputs, its video
// manifest and its network traces (with their latency), the optimum
// included.
func TestSimReadsSabreInputs(t *testing.T) {
	dir := t.TempDir()
	traces := filepath.Join(dir, "4g")
	os.MkdirAll(traces, 0o755)
	os.WriteFile(filepath.Join(traces, "fast.json"), []byte(`[{"duration_ms": 1000, "bandwidth_kbps": 40000, "latency_ms": 20},
		{"duration_ms": 1000, "bandwidth_kbps": 30000, "latency_ms": 25}]`), 0o644)
	os.WriteFile(filepath.Join(traces, "slow.json"), []byte(`[{"duration_ms": 5000, "bandwidth_kbps": 600, "latency_ms": 300}]`), 0o644)
	// Four 3 s segments at 1, 2.5 and 5 Mbit/s, sizes in bits.
	video := filepath.Join(dir, "clip.json")
	os.WriteFile(video, []byte(`{"segment_duration_ms": 3000, "bitrates_kbps": [1000, 2500, 5000], "segment_sizes_bits": [
		[3000000, 7500000, 15000000], [3100000, 7400000, 15100000], [2900000, 7600000, 14900000], [3000000, 7500000, 15000000]]}`), 0o644)
	results := filepath.Join(dir, "r.csv")
	var out, errb bytes.Buffer
	code := run([]string{"sim", "-video", video, "-traces", traces, "-abr", "bola,optimal", "-out", results}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "4 sessions (2 traces x 2 algorithms)") ||
		!strings.Contains(out.String(), "note: 2 of 2 traces carry their own latency (Sabre's format); their requests wait it in place of -rtt's 0s") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	data, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	kbps := map[string]float64{} // the optimum's mean_bitrate_kbps by trace
	for line := range strings.Lines(string(data)) {
		if f := strings.Split(line, ","); len(f) > 3 && f[1] == "optimal" {
			kbps[f[0]], _ = strconv.ParseFloat(f[3], 64)
		}
	}
	if !(kbps["fast.json"] == 5000 && kbps["slow.json"] == 1000) {
		t.Errorf("the optimum's mean bitrates %v:\n%s", kbps, data)
	}
}

// TestSimSaysAPolicyWasTrainedForAnotherQoE: a learned policy plays as it
// was trained, whatever -qoe says (the planners re-plan for it): sim says
// so when the two differ.
func TestSimSaysAPolicyWasTrainedForAnotherQoE(t *testing.T) {
	traces, _ := filepath.Glob(filepath.Join(repoRoot(), "testdata", "traces", "fcc", "*"))
	for _, c := range []struct {
		qoe  string
		note bool
	}{{"hd", true}, {"lin", false}} {
		var out, errb bytes.Buffer
		code := run([]string{"sim", "-video", filepath.Join(repoRoot(), "testdata", "videos", "envivio-4s-48.csv"), "-traces", traces[0],
			"-abr", "deepcast-learned,robustmpc", "-model", filepath.Join(repoRoot(), "player", "model.json"), "-qoe", c.qoe}, &out, &errb)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		for _, name := range []string{"deepcast-learned", "model"} {
			want := "note: " + name + " was trained to score well by QoE lin, and is scored here by QoE hd"
			if got := strings.Contains(out.String(), want); got != c.note {
				t.Errorf("-qoe %s: note for %s %v, want %v:\n%s", c.qoe, name, got, c.note, out.String())
			}
		}
		if strings.Contains(out.String(), "note: robustmpc") {
			t.Errorf("a note for a planner:\n%s", out.String())
		}
	}
}

// TestSimSummarisesEachFamily: with traces from several folders, sim
// prints the summary of each family after the overall one.
func TestSimSummarisesEachFamily(t *testing.T) {
	traces := filepath.Join(repoRoot(), "testdata", "traces")
	out, err := exec.Command(buildBinary(t), "sim", "-video", filepath.Join(repoRoot(), "testdata", "videos", "envivio-4s-48.csv"),
		"-traces", filepath.Join(traces, "fcc")+","+filepath.Join(traces, "hsdpa"), "-abr", "bba", "-pensieve").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "family fcc (59 sessions)") || !strings.Contains(string(out), "family hsdpa (68 sessions)") {
		t.Errorf("%v:\n%s", err, out)
	}
}
