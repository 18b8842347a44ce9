package media_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media"
)

// encodedLadder encodes a 30 s 720p sample into a 4-rung ladder once, for
// the segmenting benchmarks.
func encodedLadder(tb testing.TB) (*media.Encoded, string) {
	tb.Helper()
	dir := tb.TempDir()
	src := filepath.Join(dir, "src.mp4")
	ctx := context.Background()
	if err := media.MakeSample(ctx, src, media.SampleOptions{Duration: 30 * time.Second, Width: 1280, Height: 720}); err != nil {
		tb.Fatal(err)
	}
	p, err := media.ProbeFile(ctx, src)
	if err != nil {
		tb.Fatal(err)
	}
	enc, err := media.Encode(ctx, p, dir, media.EncodeOptions{Ladder: media.DefaultLadder(1280, 720), SegmentDur: 2 * time.Second, Preset: "ultrafast"})
	if err != nil {
		tb.Fatal(err)
	}
	return enc, dir
}

func BenchmarkSegmentFiles(b *testing.B) {
	enc, dir := encodedLadder(b)
	var bytes int64
	for _, f := range append(slices.Clone(enc.Video), enc.Audio...) {
		st, _ := os.Stat(f)
		bytes += st.Size()
	}
	b.SetBytes(bytes)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		out := filepath.Join(dir, fmt.Sprint("out", i))
		os.Mkdir(out, 0o755)
		if _, err := media.SegmentFiles(context.Background(), enc.Video, enc.Audio, nil, 2*time.Second, out, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
}

// TestBenchSegmentVsFFmpeg compares our segmenting with ffmpeg's DASH remux
// of the same renditions, interleaved in one run. It runs under `make bench`
// (DEEPCAST_BENCH=1) only: it measures, it does not judge.
func TestBenchSegmentVsFFmpeg(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	enc, dir := encodedLadder(t)
	ours := func(round int) time.Duration {
		out := filepath.Join(dir, fmt.Sprint("ours", round))
		os.Mkdir(out, 0o755)
		defer os.RemoveAll(out)
		start := time.Now()
		if _, err := media.SegmentFiles(context.Background(), enc.Video, enc.Audio, nil, 2*time.Second, out, nil); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	theirs := func(round int) time.Duration {
		out := filepath.Join(dir, fmt.Sprint("ffmpeg", round))
		os.Mkdir(out, 0o755)
		defer os.RemoveAll(out)
		args := []string{"-hide_banner", "-nostdin", "-v", "error", "-y"}
		files := append(slices.Clone(enc.Video), enc.Audio...)
		for _, f := range files {
			args = append(args, "-i", f)
		}
		for i := range files {
			args = append(args, "-map", fmt.Sprint(i))
		}
		args = append(args, "-c", "copy", "-f", "dash", "-seg_duration", "2", "-use_timeline", "1", "-use_template", "1", filepath.Join(out, "manifest.mpd"))
		start := time.Now()
		if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	var a, b []time.Duration
	for round := range 7 {
		a = append(a, ours(round))
		b = append(b, theirs(round))
	}
	slices.Sort(a)
	slices.Sort(b)
	ma, mb := a[len(a)/2], b[len(b)/2]
	fmt.Printf("segmenting 30s 720p ladder (4 video renditions + audio), median of %d interleaved rounds:\n", len(a))
	fmt.Printf("  deepcast SegmentFiles    %8.1f ms\n", float64(ma.Microseconds())/1000)
	fmt.Printf("  ffmpeg -c copy -f dash   %8.1f ms\n", float64(mb.Microseconds())/1000)
	fmt.Printf("  ratio ffmpeg/deepcast    %8.2fx (target >= 2x)\n", float64(mb)/float64(ma))
}
