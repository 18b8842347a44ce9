package media

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// SampleOptions describe a synthetic source video.
type SampleOptions struct {
	Duration time.Duration
	Width    int
	Height   int
	FPS      int // 30 when zero
	Progress ProgressFunc
}

// MakeSample writes a synthetic source to path with ffmpeg's lavfi sources:
// a moving, detailed test pattern with a burned-in clock and frame number,
// and a stereo tone as AAC. The file appears only when complete.
func MakeSample(ctx context.Context, path string, opt SampleOptions) error {
	if opt.FPS == 0 {
		opt.FPS = 30
	}
	if opt.Duration <= 0 || opt.Width < 16 || opt.Height < 16 || opt.Width%2 != 0 || opt.Height%2 != 0 {
		return fmt.Errorf("sample: need a positive duration and an even size of at least 16x16")
	}
	size := fmt.Sprintf("%dx%d", opt.Width, opt.Height)
	secs := strconv.FormatFloat(opt.Duration.Seconds(), 'f', 3, 64)
	fontSize := max(12, opt.Height/14)
	// testsrc2 moves; the noise layer keeps the encoder busy so the rungs of a
	// ladder differ visibly; the text proves which frame is on screen.
	video := fmt.Sprintf("testsrc2=size=%s:rate=%d,noise=alls=12:allf=t+u,"+
		"drawtext=text='%%{pts\\:hms} frame %%{frame_num}':x=(w-tw)/2:y=h-2*th:fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.6",
		size, opt.FPS, fontSize)
	audio := "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo"
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".part.mp4")
	args := []string{"-hide_banner", "-nostdin", "-y", "-v", "error", "-nostats", "-progress", "pipe:1",
		"-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio, "-t", secs,
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", tmp}
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(interruptSignal) }
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("sample: ffmpeg not found on PATH (install ffmpeg)")
		}
		return fmt.Errorf("sample: %w", err)
	}
	_ = readFFmpegProgress(stdout, func(p ffmpegProgress) {
		if opt.Progress != nil {
			opt.Progress(Progress{Stage: "sample", Done: p.OutTime, Total: opt.Duration, Speed: p.Speed, Elapsed: time.Since(start)})
		}
	})
	if err := cmd.Wait(); err != nil {
		os.Remove(tmp)
		if ctx.Err() != nil {
			return fmt.Errorf("sample: %w", ctx.Err())
		}
		return fmt.Errorf("sample: ffmpeg failed (%v): %s", err, stderr.lastLines(3))
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sample: %w", err)
	}
	return nil
}
