package media

import (
	"strings"
	"testing"
	"time"
)

func TestReadFFmpegProgress(t *testing.T) {
	in := "frame=10\nfps=0.0\nout_time_us=1500000\nspeed=1.5x\nprogress=continue\n" +
		"out_time_us=N/A\nspeed=N/A\nprogress=continue\n" +
		"out_time_ms=3000000\nspeed= 2.25x\nprogress=end\n"
	var got []ffmpegProgress
	if err := readFFmpegProgress(strings.NewReader(in), func(p ffmpegProgress) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	want := []ffmpegProgress{
		{OutTime: 1500 * time.Millisecond, Frame: 10, Speed: 1.5},
		{OutTime: 1500 * time.Millisecond, Frame: 10, Speed: 1.5}, // N/A keeps the last value
		{OutTime: 3 * time.Second, Frame: 10, Speed: 2.25, End: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d blocks, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestProgressETA(t *testing.T) {
	p := Progress{Done: 10 * time.Second, Total: 30 * time.Second, Speed: 2}
	if p.ETA() != 10*time.Second || p.Fraction() < 0.33 || p.Fraction() > 0.34 {
		t.Errorf("ETA %s fraction %f", p.ETA(), p.Fraction())
	}
	if (Progress{Done: 1, Total: 0}).Fraction() != 0 || (Progress{Done: 5, Total: 10}).ETA() != 0 {
		t.Error("unknown totals and speeds must give zero")
	}
}

func FuzzReadFFmpegProgress(f *testing.F) {
	f.Add("out_time_us=1\nspeed=1x\nprogress=end\n")
	f.Add("=\n==\nprogress=\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = readFFmpegProgress(strings.NewReader(s), func(p ffmpegProgress) {
			if p.OutTime < 0 || p.Speed < 0 {
				t.Fatalf("negative progress %+v", p)
			}
		})
	})
}
