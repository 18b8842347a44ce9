package media

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// Progress is a snapshot of a long-running media job.
type Progress struct {
	Stage   string        // "encode", "segment", ...
	Done    time.Duration // media time processed so far
	Total   time.Duration // media time to process
	Speed   float64       // media seconds per wall second; 0 when unknown
	Elapsed time.Duration
	// Bytes and TotalBytes count a stage that moves bytes, not media
	// time (publishing to an object store); TotalBytes is 0 otherwise.
	Bytes, TotalBytes int64
}

// Fraction returns the completed share in [0, 1].
func (p Progress) Fraction() float64 {
	if p.TotalBytes > 0 {
		return min(1, max(0, float64(p.Bytes)/float64(p.TotalBytes)))
	}
	if p.Total <= 0 {
		return 0
	}
	return min(1, max(0, float64(p.Done)/float64(p.Total)))
}

// ETA estimates the wall time left from the current speed, 0 when unknown.
func (p Progress) ETA() time.Duration {
	if p.TotalBytes > 0 {
		if p.Bytes <= 0 || p.Bytes >= p.TotalBytes || p.Elapsed <= 0 {
			return 0
		}
		return time.Duration(float64(p.Elapsed) * float64(p.TotalBytes-p.Bytes) / float64(p.Bytes))
	}
	if p.Speed <= 0 || p.Done >= p.Total {
		return 0
	}
	return time.Duration(float64(p.Total-p.Done) / p.Speed)
}

// ProgressFunc receives progress snapshots; it must return quickly.
type ProgressFunc func(Progress)

// ffmpegProgress is one block of ffmpeg's `-progress` key=value output.
type ffmpegProgress struct {
	OutTime time.Duration
	// Frame is the frames written of the first video output.
	Frame int64
	Speed float64
	End   bool
}

// readFFmpegProgress parses ffmpeg's -progress stream, calling fn at the end of each block.
// Unknown keys and malformed values are skipped: the stream is advisory.
func readFFmpegProgress(r io.Reader, fn func(ffmpegProgress)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	var cur ffmpegProgress
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch key {
		case "out_time_us", "out_time_ms": // ffmpeg's out_time_ms is in microseconds too
			if us, err := strconv.ParseInt(val, 10, 64); err == nil && us >= 0 {
				cur.OutTime = time.Duration(us) * time.Microsecond
			}
		case "frame":
			if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
				cur.Frame = n
			}
		case "speed":
			if s, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), "x"), 64); err == nil && s >= 0 {
				cur.Speed = s
			}
		case "progress":
			cur.End = val == "end"
			fn(cur)
		}
	}
	return sc.Err()
}
