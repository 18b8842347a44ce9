package player

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WritePlots draws, into dir: qoe_cdf.png (the CDF of session QoE per
// algorithm) and, for up to sessions traces, session_<trace>.png with
// bitrate, buffer and throughput estimate over time for every algorithm.
// Results must carry their logs for the session plots.
func WritePlots(dir string, results []SimResult, sessions int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plot dir: %w", err)
	}
	sums := Summarize(results)
	p := plot.New()
	p.Title.Text = "Session QoE, CDF per algorithm"
	p.X.Label.Text = "QoE"
	p.Y.Label.Text = "fraction of sessions"
	p.Legend.Top = true
	p.Legend.Left = true
	for i, s := range sums {
		var qoes []float64
		for _, r := range results {
			if r.ABR == s.ABR {
				qoes = append(qoes, r.QoE)
			}
		}
		slices.Sort(qoes)
		pts := make(plotter.XYs, len(qoes))
		for k, q := range qoes {
			pts[k] = plotter.XY{X: q, Y: float64(k+1) / float64(len(qoes))}
		}
		line, err := addLine(p, pts, i, 1.5)
		if err != nil {
			return err
		}
		p.Legend.Add(s.ABR, line)
	}
	// A few catastrophic sessions (long outages) would squeeze the rest into
	// a sliver: start the axis at the 2nd percentile of all sessions.
	var all []float64
	for _, r := range results {
		all = append(all, r.QoE)
	}
	slices.Sort(all)
	if len(all) > 0 {
		p.X.Min = quantile(all, 0.02)
		p.X.Max = all[len(all)-1]
	}
	p.Add(plotter.NewGrid())
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, "qoe_cdf.png")); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	var traces []string
	for _, r := range results {
		if len(traces) == sessions {
			break
		}
		if !slices.Contains(traces, r.Trace) && len(r.Log) > 0 {
			traces = append(traces, r.Trace)
		}
	}
	for _, t := range traces {
		if err := sessionPlot(dir, t, results); err != nil {
			return err
		}
	}
	return nil
}

func sessionPlot(dir, trace string, results []SimResult) error {
	panels := []struct {
		title string
		value func(ChunkLog) float64
	}{
		{"video bitrate (kbit/s)", func(l ChunkLog) float64 { return l.BitrateKbps }},
		{"buffer (s)", func(l ChunkLog) float64 { return l.Buffer.Seconds() }},
		{"throughput estimate (kbit/s)", func(l ChunkLog) float64 { return l.Estimate }},
	}
	plots := make([][]*plot.Plot, len(panels))
	for pi, panel := range panels {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %s", trace, panel.title)
		p.X.Label.Text = "time (s)"
		i := 0
		for _, r := range results {
			if r.Trace != trace {
				continue
			}
			pts := make(plotter.XYs, len(r.Log))
			for k, l := range r.Log {
				pts[k] = plotter.XY{X: l.Time.Seconds(), Y: panel.value(l)}
			}
			line, err := addLine(p, pts, i, 1.2)
			if err != nil {
				return err
			}
			if pi == 0 {
				p.Legend.Add(r.ABR, line)
			}
			i++
		}
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		plots[pi] = []*plot.Plot{p}
	}
	img := vgimg.New(8*vg.Inch, 9*vg.Inch)
	dc := draw.New(img)
	canvases := plot.Align(plots, draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Points(6)}, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(filepath.Join(dir, "session_"+safeFile(trace)+".png"))
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// addLine draws pts as the i-th series of p: a colour per series, dashed
// from the fifth series on.
func addLine(p *plot.Plot, pts plotter.XYs, i int, width float64) (*plotter.Line, error) {
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	line.Color = plotutil.Color(i)
	line.Dashes = plotutil.Dashes(i / 4)
	line.Width = vg.Points(width)
	p.Add(line)
	return line, nil
}
