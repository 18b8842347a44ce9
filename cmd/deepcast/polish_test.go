package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
