//go:build !js

package player

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WritePlots draws, into dir: qoe_cdf.png (the CDF of session QoE per
// algorithm), with several trace families one qoe_cdf_<family>.png each,
// and, for up to sessions traces, session_<trace>.png with
// bitrate (over the trace's bandwidth), buffer and throughput estimate over
// time for every algorithm, and, for a live simulation, how far behind the
// live edge each played. Results must carry their logs for the session
// plots; traces, when given, are drawn under the bitrates.
func WritePlots(dir string, results []SimResult, sessions int, traces []*Trace) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plot dir: %w", err)
	}
	if err := cdfPlot(filepath.Join(dir, "qoe_cdf.png"), "", results); err != nil {
		return err
	}
	// Each trace family apart too, when there are several.
	if fams := Families(results); len(fams) > 1 {
		for _, f := range fams {
			if err := cdfPlot(filepath.Join(dir, "qoe_cdf_"+safeFile(f)+".png"), f, OfFamily(results, f)); err != nil {
				return err
			}
		}
	}
	var names []string
	for _, r := range results {
		if len(names) == sessions {
			break
		}
		if !slices.Contains(names, r.Trace) && len(r.Log) > 0 {
			names = append(names, r.Trace)
		}
	}
	for _, name := range names {
		var tr *Trace
		for _, t := range traces {
			if t.Name == name {
				tr = t
			}
		}
		if err := sessionPlot(dir, name, tr, results); err != nil {
			return err
		}
	}
	return nil
}

// palette gives each algorithm its own colour (Tableau 10): no two series
// of a plot share one, up to ten.
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

// algorithmsOf lists the algorithms of results, in their first order: the
// i-th keeps the i-th colour in every plot.
func algorithmsOf(results []SimResult) []string {
	return distinct(results, func(r SimResult) string { return r.ABR })
}

func cdfPlot(path, family string, results []SimResult) error {
	p := plot.New()
	p.Title.Text = "Session QoE, CDF per algorithm (further right is better)"
	if family != "" {
		p.Title.Text = family + " traces: session QoE, CDF per algorithm (further right is better)"
	}
	p.X.Label.Text = "session QoE"
	p.Y.Label.Text = "fraction of sessions"
	algs := algorithmsOf(results)
	legend := plot.NewLegend()
	var all []float64
	for i, abr := range algs {
		var qoes []float64
		for _, r := range results {
			if r.ABR == abr {
				qoes = append(qoes, r.QoE)
			}
		}
		slices.Sort(qoes)
		all = append(all, qoes...)
		pts := make(plotter.XYs, 0, len(qoes)+1)
		for k, q := range qoes {
			if k == 0 {
				pts = append(pts, plotter.XY{X: q, Y: 0})
			}
			pts = append(pts, plotter.XY{X: q, Y: float64(k+1) / float64(len(qoes))})
		}
		line, err := addLine(p, pts, palette[i%len(palette)], 1.6, plotter.PostStep)
		if err != nil {
			return err
		}
		legend.Add(abr, line)
	}
	// A few sessions with long outages score far below the rest and would
	// squeeze every curve into a sliver: the axis starts three
	// interquartile ranges below the median (never above the 1st
	// percentile), and the title says how many sessions lie left of it.
	slices.Sort(all)
	if len(all) > 1 {
		lo := max(quantile(all, 0.01), quantile(all, 0.5)-3*(quantile(all, 0.75)-quantile(all, 0.25)))
		p.X.Min, p.X.Max = lo, all[len(all)-1]+0.02*(all[len(all)-1]-lo)
		if below := countBelow(all, lo); below > 0 {
			p.Title.Text += fmt.Sprintf("\n%d of %d sessions below %s, off the left edge", below, len(all), strconv.FormatFloat(math.Round(lo*10)/10, 'f', -1, 64))
		}
	}
	p.Y.Min, p.Y.Max = 0, 1
	p.X.Tick.Marker, p.Y.Tick.Marker = cleanTicks{}, cleanTicks{}
	p.Add(plotter.NewGrid())
	return saveWithLegend(path, [][]*plot.Plot{{p}}, legend, 8*vg.Inch, 4.5*vg.Inch)
}

func countBelow(sorted []float64, x float64) int {
	n := 0
	for _, v := range sorted {
		if v < x {
			n++
		}
	}
	return n
}

func sessionPlot(dir, name string, tr *Trace, results []SimResult) error {
	type panel struct {
		title string
		value func(ChunkLog) float64
		x     func(ChunkLog) float64
		step  plotter.StepKind
		// fromZero: the axis reads from zero (the estimate's range is its own).
		fromZero bool
	}
	panels := []panel{
		// The rendition chosen for each chunk holds from its download's
		// start until the next one's: steps, not slopes.
		{"video bitrate chosen (kbit/s)", func(l ChunkLog) float64 { return l.BitrateKbps },
			func(l ChunkLog) float64 { return (l.Time - l.DownloadTime).Seconds() }, plotter.PostStep, true},
		{"buffer (s)", func(l ChunkLog) float64 { return l.Buffer.Seconds() },
			func(l ChunkLog) float64 { return l.Time.Seconds() }, plotter.NoStep, true},
		{"throughput estimate (kbit/s)", func(l ChunkLog) float64 { return l.Estimate },
			func(l ChunkLog) float64 { return l.Time.Seconds() }, plotter.NoStep, false},
	}
	// A live session's distance from the edge, chunk by chunk.
	if slices.ContainsFunc(results, func(r SimResult) bool { return r.Trace == name && r.Latency > 0 }) {
		panels = append(panels, panel{"behind the live edge (s)", func(l ChunkLog) float64 { return l.Latency.Seconds() },
			func(l ChunkLog) float64 { return l.Time.Seconds() }, plotter.NoStep, true})
	}
	algs := algorithmsOf(results)
	legend := plot.NewLegend()
	plots := make([][]*plot.Plot, len(panels))
	end := 0.0
	for _, r := range results {
		if r.Trace == name && len(r.Log) > 0 {
			end = max(end, r.Log[len(r.Log)-1].Time.Seconds())
		}
	}
	for pi, panel := range panels {
		p := plot.New()
		p.Title.Text = panel.title
		if pi == 0 {
			p.Title.Text = name + ": " + panel.title
		}
		p.X.Label.Text = "session time (s)"
		if pi == 0 && tr != nil {
			band, err := traceLine(tr, end)
			if err != nil {
				return err
			}
			p.Add(band)
			// A link far faster than the video would flatten the bitrates
			// chosen against the axis: the bandwidth runs off the top
			// instead, and the title says where.
			if ceiling := bandwidthCeiling(band.XYs, results, name); ceiling > 0 {
				p.Y.Max = ceiling
				p.Title.Text += fmt.Sprintf("; trace bandwidth above %.0f off the top", ceiling)
			}
			legend.Add("trace bandwidth", band)
		}
		for _, r := range results {
			if r.Trace != name {
				continue
			}
			i := slices.Index(algs, r.ABR)
			pts := make(plotter.XYs, len(r.Log))
			for k, l := range r.Log {
				pts[k] = plotter.XY{X: panel.x(l), Y: panel.value(l)}
			}
			line, err := addLine(p, pts, palette[i%len(palette)], 1.3, panel.step)
			if err != nil {
				return err
			}
			if pi == 0 {
				legend.Add(r.ABR, line)
				if err := markAbandoned(p, r.Log, palette[i%len(palette)]); err != nil {
					return err
				}
			}
		}
		if pi == 0 && slices.ContainsFunc(results, func(r SimResult) bool { return r.Trace == name && r.Abandoned > 0 }) {
			p.Title.Text += "; × where a download was given up"
		}
		p.X.Min, p.X.Max = 0, end
		if panel.fromZero {
			p.Y.Min = 0
		}
		p.X.Tick.Marker, p.Y.Tick.Marker = cleanTicks{}, cleanTicks{}
		p.Add(plotter.NewGrid())
		plots[pi] = []*plot.Plot{p}
	}
	return saveWithLegend(filepath.Join(dir, "session_"+safeFile(name)+".png"), plots, legend, 9*vg.Inch, vg.Length(3*len(panels))*vg.Inch)
}

// markAbandoned crosses, on the bitrate panel, each chunk whose download
// was given up (sim -abandon): at the start of its first download, at the
// rendition it was fetched at in the end.
func markAbandoned(p *plot.Plot, log []ChunkLog, c color.Color) error {
	pts := abandonedAt(log)
	if len(pts) == 0 {
		return nil
	}
	marks, err := plotter.NewScatter(pts)
	if err != nil {
		return err
	}
	marks.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(4), Shape: draw.CrossGlyph{}}
	p.Add(marks)
	return nil
}

// abandonedAt is where markAbandoned crosses: (session time, kbit/s).
func abandonedAt(log []ChunkLog) plotter.XYs {
	var pts plotter.XYs
	for _, l := range log {
		if l.Abandoned > 0 {
			pts = append(pts, plotter.XY{X: (l.Time - l.DownloadTime).Seconds(), Y: l.BitrateKbps})
		}
	}
	return pts
}

// bandwidthCeiling is the top of the bitrate panel when the trace's
// bandwidth (pts, kbit/s) goes past three times the highest bitrate a
// session of trace name chose; 0 when the axis can show it all.
func bandwidthCeiling(pts plotter.XYs, results []SimResult, name string) float64 {
	top := 0.0
	for _, r := range results {
		if r.Trace == name {
			for _, l := range r.Log {
				top = max(top, l.BitrateKbps)
			}
		}
	}
	peak := 0.0
	for _, p := range pts {
		peak = max(peak, p.Y)
	}
	if top <= 0 || peak <= 3*top {
		return 0
	}
	return 3 * top
}

// traceLine is a trace's bandwidth in kbit/s over [0, end] s, repeated as
// the simulator loops it, as a light filled step line. Row k holds for
// (Time[k-1], Time[k]] as the simulator reads it, so each point's value is
// drawn over the interval before it (a pre-step: drawn after it, every
// rate would show one row late, 5 s on fcc).
func traceLine(tr *Trace, end float64) (*plotter.Line, error) {
	var pts plotter.XYs
	if len(tr.Time) == 0 {
		return nil, fmt.Errorf("plot: trace %s is empty", tr.Name)
	}
	period := tr.Time[len(tr.Time)-1] - tr.Time[0]
	for loop := 0.0; period > 0; loop += period {
		for k := range tr.Time {
			x := loop + tr.Time[k] - tr.Time[0]
			if x > end {
				break
			}
			pts = append(pts, plotter.XY{X: x, Y: tr.Mbps[k] * 1000})
		}
		if loop+period > end || len(pts) > 100_000 {
			break
		}
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	line.StepStyle = plotter.PreStep
	line.Color = color.RGBA{170, 170, 170, 255}
	line.FillColor = color.RGBA{225, 225, 225, 255}
	line.Width = vg.Points(0.8)
	return line, nil
}

// addLine draws pts on p in colour c.
func addLine(p *plot.Plot, pts plotter.XYs, c color.Color, width float64, step plotter.StepKind) (*plotter.Line, error) {
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	line.Color = c
	line.Width = vg.Points(width)
	line.StepStyle = step
	p.Add(line)
	return line, nil
}

// saveWithLegend draws plots in a column and the legend to their right,
// where it covers no data, and writes the PNG.
func saveWithLegend(path string, plots [][]*plot.Plot, legend plot.Legend, w, h vg.Length) error {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	const legendWidth = 1.5 * vg.Inch
	plotArea := draw.Crop(dc, 0, -legendWidth, 0, 0)
	canvases := plot.Align(plots, draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(8)}, plotArea)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	legend.Top, legend.Left = true, true
	legend.XOffs, legend.YOffs = vg.Points(6), -vg.Points(24)
	legend.Draw(draw.Crop(dc, w-legendWidth, 0, 0, 0))
	f, err := os.Create(path)
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

// cleanTicks are gonum's default tick positions labelled the short way:
// 25 not 25.00, 0.2 not 0.20, 1200 not 1200.00.
type cleanTicks struct{}

func (cleanTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}
