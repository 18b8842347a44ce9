// Package mediatest gives tests of every package real packaged content and
// an independent client (ffmpeg) to check it with. It makes its content once
// per test binary with the real ffmpeg and packager, kept small so the whole
// suite stays fast on two cores.
package mediatest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media"
)

// AssetName is the name of the packaged test asset.
const AssetName = "clip"

// Test content: short, small, two rungs and audio.
const (
	Duration = 6 * time.Second
	Width    = 640
	Height   = 360
	Ladder   = "640x360@800k,320x180@250k"
	FPS      = 30
)

var (
	once    sync.Once
	dir     string
	onceErr error
)

// setup makes the sample and packages it, once per test binary.
func setup() {
	dir, onceErr = os.MkdirTemp("", "deepcast-mediatest-")
	if onceErr != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src := filepath.Join(dir, "source.mp4")
	if onceErr = media.MakeSample(ctx, src, media.SampleOptions{Duration: Duration, Width: Width, Height: Height, FPS: FPS}); onceErr != nil {
		return
	}
	ladder, err := media.ParseLadder(Ladder)
	if err != nil {
		onceErr = err
		return
	}
	_, onceErr = media.Package(ctx, []string{src}, media.PackageOptions{Library: filepath.Join(dir, "library"), Name: AssetName, Ladder: ladder})
}

// Source returns the path of the synthetic source video.
func Source(tb testing.TB) string {
	tb.Helper()
	once.Do(setup)
	if onceErr != nil {
		tb.Fatalf("mediatest: %v", onceErr)
	}
	return filepath.Join(dir, "source.mp4")
}

// Library returns a library folder holding the packaged asset AssetName.
// Tests must not modify it; use CopyLibrary for that.
func Library(tb testing.TB) string {
	Source(tb)
	return filepath.Join(dir, "library")
}

// CopyLibrary copies the packaged library into a fresh test folder (symlinks kept).
func CopyLibrary(tb testing.TB) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), "library")
	out, err := exec.Command("cp", "-a", Library(tb), dst).CombinedOutput()
	if err != nil {
		tb.Fatalf("copy library: %v: %s", err, out)
	}
	return dst
}

// Main runs a package's tests and then removes the per-process content:
// use it as the package's TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// CountFrames counts the video packets of a file with ffprobe.
func CountFrames(tb testing.TB, path string) int {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe %s: %v", path, err)
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(out)))
	if err != nil {
		tb.Fatalf("ffprobe %s: %q", path, out)
	}
	return n
}

// StreamCount is what ffmpeg reported for one input stream.
type StreamCount struct {
	Index   int
	Kind    string // "video" or "audio"
	Packets int
	Frames  int
}

var streamLine = regexp.MustCompile(`Input stream #0:(\d+) \((video|audio)\): (\d+) packets read \(\d+ bytes\); (\d+) frames decoded`)

// Decode plays url (a path or an http URL of an MPD) with ffmpeg, mapping
// every stream, and returns the per-stream counts from its verbose log.
// ffmpeg's exit status is not trusted: it exits 0 even when segments 404.
// Input options (such as -ca_file for https URLs) go before -i.
func Decode(ctx context.Context, url string, inputOpts ...string) ([]StreamCount, string, error) {
	args := append([]string{"-hide_banner", "-nostdin", "-v", "verbose"}, inputOpts...)
	cmd := exec.CommandContext(ctx, "ffmpeg", append(args, "-i", url, "-map", "0", "-f", "null", "-")...)
	var log bytes.Buffer
	cmd.Stderr = &log
	err := cmd.Run()
	var counts []StreamCount
	for _, m := range streamLine.FindAllStringSubmatch(log.String(), -1) {
		idx, _ := strconv.Atoi(m[1])
		p, _ := strconv.Atoi(m[3])
		f, _ := strconv.Atoi(m[4])
		counts = append(counts, StreamCount{Index: idx, Kind: m[2], Packets: p, Frames: f})
	}
	if err != nil {
		return counts, log.String(), fmt.Errorf("ffmpeg: %w", err)
	}
	return counts, log.String(), nil
}

// CheckDecodesAll fails the test unless ffmpeg decodes, for every video
// stream of the MPD at url, exactly wantFrames frames, and some audio.
// Input options go to ffmpeg before -i.
func CheckDecodesAll(tb testing.TB, url string, wantVideoStreams, wantFrames int, inputOpts ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	counts, log, err := Decode(ctx, url, inputOpts...)
	if err != nil {
		tb.Fatalf("decode %s: %v\n%s", url, err, tail(log))
	}
	videos, audio := 0, 0
	for _, c := range counts {
		switch c.Kind {
		case "video":
			videos++
			if c.Frames != wantFrames {
				tb.Errorf("decode %s: stream %d decoded %d frames, source has %d", url, c.Index, c.Frames, wantFrames)
			}
		case "audio":
			audio++
			if c.Frames == 0 {
				tb.Errorf("decode %s: audio stream %d decoded nothing", url, c.Index)
			}
		}
	}
	if videos != wantVideoStreams || audio == 0 {
		tb.Fatalf("decode %s: %d video and %d audio streams, want %d and 1\n%s", url, videos, audio, wantVideoStreams, tail(log))
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}
