package player

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// ResultColumns are the columns of `sim -out`, a contract for scripts.
// The last, optimal_qoe, is the offline optimum's QoE on the row's trace,
// empty when the optimum was not run.
var ResultColumns = []string{"trace", "abr", "chunks", "mean_bitrate_kbps", "rebuffer_s", "rebuffer_count", "switches", "startup_s", "qoe", "optimal_qoe"}

// LiveColumn ends the columns of `sim -live`: how far behind the live
// edge the session ended (SimResult.Latency) in -out, and, in -log, where
// it stood once each chunk was in.
const LiveColumn = "latency_s"

// AbandonColumn ends the columns of a run with an abandonment rule
// (sim -abandon, play -abandon), after LiveColumn if there is one: the
// downloads given up for a lower rendition, in -out per session, in a
// per-chunk log before the chunk's download that played.
const AbandonColumn = "abandoned"

// WriteResults writes one CSV row per (trace, abr); live ones end with
// LiveColumn, and runs with an abandonment rule with AbandonColumn.
func WriteResults(w io.Writer, results []SimResult) error {
	cw := csv.NewWriter(w)
	live := slices.ContainsFunc(results, func(r SimResult) bool { return r.Latency > 0 })
	abandon := slices.ContainsFunc(results, func(r SimResult) bool { return r.AbandonRule != "" })
	head := slices.Clone(ResultColumns)
	if live {
		head = append(head, LiveColumn)
	}
	if abandon {
		head = append(head, AbandonColumn)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	best := optimalByTrace(results)
	for _, r := range results {
		opt := ""
		if q, ok := best[r.Trace]; ok {
			opt = f3(q)
		}
		row := []string{r.Trace, r.ABR, strconv.Itoa(r.Chunks), f3(r.MeanBitrate), f3(r.Rebuffer.Seconds()),
			strconv.Itoa(r.RebufferCount), strconv.Itoa(r.Switches), f3(r.Startup.Seconds()), f3(r.QoE), opt}
		if live {
			row = append(row, f3(r.Latency.Seconds()))
		}
		if abandon {
			row = append(row, strconv.Itoa(r.Abandoned))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// LogColumns are the columns of a per-chunk session log.
var LogColumns = []string{"time_s", "chunk", "rendition", "bitrate_kbps", "bytes", "download_s", "estimate_kbps", "buffer_s", "rebuffer_s", "qoe"}

// WriteLog writes a session's per-chunk log as CSV; with live, the log of
// a live session, each row ends with how far behind the live edge it
// played once the chunk was in (LiveColumn, ChunkLog.Latency); with
// abandon, a session with an abandonment rule, then with the downloads
// of the chunk it gave up (AbandonColumn, ChunkLog.Abandoned).
func WriteLog(w io.Writer, log []ChunkLog, live, abandon bool) error {
	cw := csv.NewWriter(w)
	head := slices.Clone(LogColumns)
	if live {
		head = append(head, LiveColumn)
	}
	if abandon {
		head = append(head, AbandonColumn)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, l := range log {
		row := []string{f3(l.Time.Seconds()), strconv.Itoa(l.Chunk), strconv.Itoa(l.Rendition), f3(l.BitrateKbps),
			strconv.FormatInt(l.Bytes, 10), f3(l.DownloadTime.Seconds()), f3(l.Estimate), f3(l.Buffer.Seconds()),
			f3(l.Rebuffer.Seconds()), f3(l.QoE)}
		if live {
			row = append(row, f3(l.Latency.Seconds()))
		}
		if abandon {
			row = append(row, strconv.Itoa(l.Abandoned))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteLogs writes DIR/<trace>__<abr>.csv for every session; a live
// one's rows end with the latency (LiveColumn), and one with an
// abandonment rule's with AbandonColumn.
func WriteLogs(dir string, results []SimResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	for _, r := range results {
		f, err := os.Create(filepath.Join(dir, safeFile(r.Trace)+"__"+r.ABR+".csv"))
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		err = WriteLog(f, r.Log, r.Latency > 0, r.AbandonRule != "")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
	}
	return nil
}

func safeFile(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

// Summary aggregates an algorithm's sessions.
type Summary struct {
	ABR           string
	Sessions      int
	MeanQoE       float64
	P10, P50, P90 float64
	MeanBitrate   float64 // kbit/s
	RebufferRatio float64
	Switches      float64 // mean per session
	// OfOptimal is the mean QoE as a fraction of the offline optimum's on
	// the same traces; NaN when the optimum was not run, or its mean QoE
	// is not above zero (as LoL+'s can be far behind the live edge), where
	// a fraction of it means nothing: GapClosed still compares.
	OfOptimal float64
	// Latency is, live, the mean distance to the live edge at the end
	// (seconds); NaN for VOD.
	Latency float64
	// Abandoned is the mean number of downloads a session gave up for a
	// lower rendition; NaN when its sessions ran with no abandonment rule.
	Abandoned float64
}

// optimalByTrace is the optimum's QoE per trace, where it was run.
func optimalByTrace(results []SimResult) map[string]float64 {
	m := map[string]float64{}
	for _, r := range results {
		if r.ABR == Optimal {
			m[r.Trace] = r.QoE
		}
	}
	return m
}

// Summarize groups results by algorithm, in the order algorithms appear.
func Summarize(results []SimResult) []Summary {
	byABR := map[string][]SimResult{}
	var order []string
	for _, r := range results {
		if _, ok := byABR[r.ABR]; !ok {
			order = append(order, r.ABR)
		}
		byABR[r.ABR] = append(byABR[r.ABR], r)
	}
	optimal := optimalByTrace(results)
	var out []Summary
	for _, a := range order {
		rs := byABR[a]
		s := Summary{ABR: a, Sessions: len(rs), OfOptimal: math.NaN(), Latency: math.NaN(), Abandoned: math.NaN()}
		var mine, best float64
		matched := 0
		for _, r := range rs {
			if q, ok := optimal[r.Trace]; ok {
				mine += r.QoE
				best += q
				matched++
			}
		}
		if matched > 0 && best > 0 {
			s.OfOptimal = mine / best
		}
		qoes := make([]float64, len(rs))
		var stall, play, latency float64
		for i, r := range rs {
			latency += r.Latency.Seconds()
			qoes[i] = r.QoE
			s.MeanQoE += r.QoE
			s.MeanBitrate += r.MeanBitrate
			s.Switches += float64(r.Switches)
			stall += r.Rebuffer.Seconds()
			play += r.PlayTime.Seconds()
		}
		n := float64(len(rs))
		s.MeanQoE /= n
		s.MeanBitrate /= n
		s.Switches /= n
		if play > 0 {
			s.RebufferRatio = stall / play
		}
		if latency > 0 {
			s.Latency = latency / n
		}
		if slices.ContainsFunc(rs, func(r SimResult) bool { return r.AbandonRule != "" }) {
			abandoned := 0
			for _, r := range rs {
				abandoned += r.Abandoned
			}
			s.Abandoned = float64(abandoned) / n
		}
		slices.Sort(qoes)
		s.P10, s.P50, s.P90 = quantile(qoes, 0.1), quantile(qoes, 0.5), quantile(qoes, 0.9)
		out = append(out, s)
	}
	return out
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	lo := int(pos)
	hi := min(lo+1, len(sorted)-1)
	f := pos - float64(lo)
	return sorted[lo]*(1-f) + sorted[hi]*f
}

// Families lists the trace families of results, in their first order.
func Families(results []SimResult) []string {
	return distinct(results, func(r SimResult) string { return r.Family })
}

// distinct lists the values of field over results, in their first order.
func distinct(results []SimResult, field func(SimResult) string) []string {
	var out []string
	for _, r := range results {
		if v := field(r); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// OfFamily is the results of one trace family.
func OfFamily(results []SimResult, family string) []SimResult {
	var out []SimResult
	for _, r := range results {
		if r.Family == family {
			out = append(out, r)
		}
	}
	return out
}

// WriteSummary prints the per-algorithm table; of_optimal when the
// optimum was run ("-" where it means nothing).
func WriteSummary(w io.Writer, sums []Summary) {
	withOptimal := slices.ContainsFunc(sums, func(s Summary) bool { return s.ABR == Optimal })
	live := slices.ContainsFunc(sums, func(s Summary) bool { return !math.IsNaN(s.Latency) })
	abandon := slices.ContainsFunc(sums, func(s Summary) bool { return !math.IsNaN(s.Abandoned) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "abr\tsessions\tmean QoE\tp10\tp50\tp90\tmean kbit/s\trebuffer %\tswitches\t"
	if withOptimal {
		head += "of_optimal\t"
	}
	if live {
		head += "latency s\t"
	}
	if abandon {
		head += "abandoned\t"
	}
	fmt.Fprintln(tw, head)
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.2f\t%.1f\t", s.ABR, s.Sessions, s.MeanQoE, s.P10, s.P50, s.P90,
			s.MeanBitrate, 100*s.RebufferRatio, s.Switches)
		switch {
		case withOptimal && math.IsNaN(s.OfOptimal):
			fmt.Fprint(tw, "-\t")
		case withOptimal:
			fmt.Fprintf(tw, "%.3f\t", s.OfOptimal)
		}
		if live {
			fmt.Fprintf(tw, "%.2f\t", s.Latency)
		}
		switch {
		case abandon && math.IsNaN(s.Abandoned):
			fmt.Fprint(tw, "-\t") // the optimum, which never abandons
		case abandon:
			fmt.Fprintf(tw, "%.2f\t", s.Abandoned)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// Baselines are the algorithms deepcast's own is measured against.
var Baselines = []string{"robustmpc", "bola", "dynamic", "bba", "throughput"}

// GapClosed is the share of the gap between the best baseline and the
// optimum that algorithm abr closes, on the sessions in sums:
// (abr - best) / (optimal - best). ok is false unless abr, the optimum
// and a baseline are all there.
func GapClosed(sums []Summary, abr string) (gap float64, best string, ok bool) {
	mean := map[string]float64{}
	for _, s := range sums {
		mean[s.ABR] = s.MeanQoE
	}
	mine, has := mean[abr]
	opt, hasOpt := mean[Optimal]
	if !has || !hasOpt {
		return 0, "", false
	}
	for _, b := range Baselines {
		if q, ok := mean[b]; ok && (best == "" || q > mean[best]) {
			best = b
		}
	}
	if best == "" || opt == mean[best] {
		return 0, best, false
	}
	return (mine - mean[best]) / (opt - mean[best]), best, true
}

// WriteGapClosed prints the gap_closed line of abr, if it can be made.
func WriteGapClosed(w io.Writer, sums []Summary, abr string) {
	if gap, best, ok := GapClosed(sums, abr); ok {
		fmt.Fprintf(w, "gap_closed %s: %.3f of the gap between the best baseline (%s) and the optimum\n", abr, gap, best)
	}
}
