package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/deepcast/deepcast/media"
)

// progressPrinter shows media.Progress on w: one rewritten line on a
// terminal, or a line every 10% otherwise (logs stay readable).
type progressPrinter struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	stage    string
	lastPct  int
	lastDraw time.Time
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressPrinter{w: w, tty: tty, lastPct: -1}
}

func (p *progressPrinter) update(pr media.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.Stage != p.stage {
		if p.stage != "" && p.tty {
			fmt.Fprintln(p.w)
		}
		p.stage, p.lastPct = pr.Stage, -1
	}
	pct := int(pr.Fraction() * 100)
	var line string
	if pr.TotalBytes > 0 {
		rate := 0.0
		if pr.Elapsed > 0 {
			rate = float64(pr.Bytes) / pr.Elapsed.Seconds() / 1e6
		}
		line = fmt.Sprintf("%-8s %3d%%  %.1f/%.1f MB  %.1f MB/s  ETA %s", pr.Stage, pct,
			float64(pr.Bytes)/1e6, float64(pr.TotalBytes)/1e6, rate, pr.ETA().Round(time.Second))
	} else if pr.Stage == "segment" {
		line = fmt.Sprintf("%-8s %3d%%  %d/%d renditions  %s", pr.Stage, pct, int(pr.Done), int(pr.Total), pr.Elapsed.Round(time.Millisecond))
	} else {
		line = fmt.Sprintf("%-8s %3d%%  %s/%s  speed %.2fx  ETA %s", pr.Stage, pct,
			pr.Done.Round(time.Second), pr.Total.Round(time.Second), pr.Speed, pr.ETA().Round(time.Second))
	}
	if p.tty {
		if time.Since(p.lastDraw) < 100*time.Millisecond && pct < 100 {
			return
		}
		p.lastDraw = time.Now()
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if pct >= 100 && (pr.Stage == "segment" || pr.TotalBytes > 0) {
			fmt.Fprintln(p.w)
			p.stage = ""
		}
		return
	}
	if pct/10 != p.lastPct/10 || p.lastPct < 0 {
		p.lastPct = pct
		fmt.Fprintln(p.w, line)
	}
}
