package player

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOptimalIsTheCeiling: on every fcc and hsdpa trace, with every QoE
// model, the optimum scores at least as much as every algorithm, and its
// sequence replayed by the real session scores what the planner said.
func TestOptimalIsTheCeiling(t *testing.T) {
	v := loadEnvivio(t)
	traces, err := LoadTraces([]string{testdata("traces", "fcc"), testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	for _, qoe := range []string{"lin", "log", "hd", "yin"} {
		// Every third trace for QoE_lin, every tenth for the others: the
		// whole set takes a minute under -race (`make bench` runs it all).
		var ts []*Trace
		step := map[bool]int{true: 3, false: 10}[qoe == "lin"]
		for i := 0; i < len(traces); i += step {
			ts = append(ts, traces[i])
		}
		algs := append(Algorithms(), Optimal)
		res, err := Simulate(context.Background(), SimOptions{Video: v, Traces: ts, Algorithms: algs, QoE: qoe, Pensieve: true})
		if err != nil {
			t.Fatal(err)
		}
		best := optimalByTrace(res)
		for _, r := range res {
			if r.QoE > best[r.Trace]+1e-9 {
				t.Errorf("qoe %s, trace %s: %s scores %.3f, above the optimum's %.3f", qoe, r.Trace, r.ABR, r.QoE, best[r.Trace])
			}
		}
		if len(best) != len(ts) {
			t.Errorf("qoe %s: the optimum ran on %d of %d traces", qoe, len(best), len(ts))
		}
	}
}

// TestOptimalModelMatchesTheSession: the planner's own stepping of the
// session (which it optimizes) gives exactly what Session.Run gives for
// the sequence it returns, in both simulator modes.
func TestOptimalModelMatchesTheSession(t *testing.T) {
	v := loadEnvivio(t)
	traces, err := LoadTraces([]string{testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		pensieve bool
		live     time.Duration // a live stream joined this far behind its edge
		catchUp  float64
		law      string
		qoe      string
	}{{true, 0, 0, "", "lin"}, {false, 0, 0, "", "lin"}, {true, 8 * time.Second, 0, "", "lin"}, {false, 12 * time.Second, 0, "", "lin"},
		{true, 8 * time.Second, 1.25, "", "lin"}, {false, 12 * time.Second, 1.1, "", "lin"}, {true, 12 * time.Second, 1.5, CatchUpSigmoid, "lin"},
		// LoL+'s QoE scores the latency and the rate each chunk played at.
		{false, 0, 0, "", "lolp"}, {true, 8 * time.Second, 1.25, "", "lolp"}, {false, 12 * time.Second, 1.5, CatchUpSigmoid, "lolp"}} {
		qoe, err := NewQoE(mode.qoe)
		if err != nil {
			t.Fatal(err)
		}
		lv := *v
		lv.LiveDelay = mode.live
		opt := SimOptions{Video: &lv, Pensieve: mode.pensieve, RTT: 40 * time.Millisecond, Live: mode.live, CatchUp: mode.catchUp, CatchUpLaw: mode.law}
		for _, tr := range traces[:5] {
			cfg, link := simSetup(opt, tr)
			m := newOptModel(&lv, qoe, cfg)
			seq, predicted, err := planOptimal(context.Background(), m, *link, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg, link = simSetup(opt, tr) // a live session waits on its own link
			s := &Session{Video: &lv, ABR: &replay{seq: seq}, QoE: qoe, Clock: link, Fetcher: link, Config: cfg}
			res, err := s.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(res.QoE-predicted) > 1e-9 {
				t.Errorf("%+v %s: planner %.6f, session %.6f", mode, tr.Name, predicted, res.QoE)
			}
		}
	}
}

// TestSimLive: a simulated live stream joined 12 s behind its edge. No
// session's buffer ever holds more than its distance to the edge (which
// VOD's does, with the same traces), every stall adds to that distance,
// the optimum stays the ceiling, and a join closer than one chunk is
// refused.
func TestSimLive(t *testing.T) {
	v, traces := liveSample(t)
	const delay = 12 * time.Second
	algs := append(Algorithms(), Optimal)
	live, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Algorithms: algs, Pensieve: true, KeepLogs: true, Live: delay})
	if err != nil {
		t.Fatal(err)
	}
	checkCeiling(t, live)
	stalled := 0
	for _, r := range live {
		if want := delay + r.Startup + r.Rebuffer; r.Latency != want {
			t.Errorf("%s, %s: latency %v, want %v", r.Trace, r.ABR, r.Latency, want)
		}
		var stalls time.Duration
		for _, l := range r.Log {
			stalls += l.Rebuffer
			// The buffer after chunk l came: media from the playhead to the
			// chunk's end, which was published, so within the distance.
			if lat := delay + r.Startup + stalls; l.Buffer > lat+time.Millisecond {
				t.Fatalf("%s, %s, chunk %d: buffer %v, more than the %v to the live edge", r.Trace, r.ABR, l.Chunk, l.Buffer, lat)
			}
		}
		if r.Rebuffer > 0 {
			stalled++
		}
	}
	if stalled == 0 {
		t.Error("no live session stalled: the traces test nothing")
	}
	vod, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Algorithms: Algorithms(), Pensieve: true, KeepLogs: true})
	if err != nil {
		t.Fatal(err)
	}
	deepest := time.Duration(0)
	for _, r := range vod {
		for _, l := range r.Log {
			deepest = max(deepest, l.Buffer)
		}
	}
	if deepest < delay+8*time.Second {
		t.Errorf("VOD buffers reached only %v: the live bound is not what held the live ones", deepest)
	}
	for _, s := range Summarize(live) {
		if math.IsNaN(s.Latency) || s.Latency < delay.Seconds() {
			t.Errorf("%s: mean latency %.2f s", s.ABR, s.Latency)
		}
	}
	var csv strings.Builder
	if err := WriteResults(&csv, live[:2]); err != nil {
		t.Fatal(err)
	}
	if head, _, _ := strings.Cut(csv.String(), "\n"); head != strings.Join(append(slices.Clone(ResultColumns), LiveColumn), ",") {
		t.Errorf("sim -live -out columns: %s", head)
	}
	if _, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Algorithms: []string{"bba"}, Live: time.Second}); err == nil || !strings.Contains(err.Error(), "want one chunk") {
		t.Errorf("a live join 1 s behind the edge of 4 s chunks: %v", err)
	}
}

// liveSample is the envivio video and every sixth fcc and hsdpa trace: a
// sample the live simulations run in seconds.
func liveSample(t *testing.T) (*Video, []*Trace) {
	t.Helper()
	all, err := LoadTraces([]string{testdata("traces", "fcc"), testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	var traces []*Trace
	for i := 0; i < len(all); i += 6 {
		traces = append(traces, all[i])
	}
	return loadEnvivio(t), traces
}

// checkCeiling fails the test where a session scores above the optimum's
// on its trace.
func checkCeiling(t *testing.T, res []SimResult) {
	t.Helper()
	best := optimalByTrace(res)
	for _, r := range res {
		if r.QoE > best[r.Trace]+1e-9 {
			t.Errorf("%s, %s: %.3f above the optimum's %.3f", r.Trace, r.ABR, r.QoE, best[r.Trace])
		}
	}
}

// TestPlanTerminalValue: a plan over a short horizon ends with at least as
// much buffer when the buffer it leaves is valued, more on some trace, and
// without a terminal value it is the plain optimum of those chunks.
func TestPlanTerminalValue(t *testing.T) {
	v := loadEnvivio(t)
	traces, err := LoadTraces([]string{testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	qoe, _ := NewQoE("lin")
	opt := SimOptions{Video: v, Pensieve: true}
	ends := func(m *optModel, tr *Trace) (time.Duration, float64) {
		cfg, link := simSetup(opt, tr)
		m.cfg = cfg
		seq, predicted, err := planFrom(context.Background(), m, optState{link: *link, last: -1}, 0, 250*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := optState{link: *link, last: -1}
		for k, q := range seq {
			if s, err = m.step(context.Background(), &s, k, q); err != nil {
				t.Fatal(err)
			}
		}
		return s.buffer, predicted
	}
	more := 0
	for _, tr := range traces[:10] {
		plain := &optModel{video: v, qoe: qoe, chunks: 4}
		valued := &optModel{video: v, qoe: qoe, chunks: 4, terminal: func(b time.Duration) float64 { return 10 * b.Seconds() }}
		b0, q0 := ends(plain, tr)
		b1, q1 := ends(valued, tr)
		if b1 < b0 {
			t.Errorf("%s: %v of buffer left with it valued, %v without", tr.Name, b1, b0)
		}
		if q1 > q0+1e-9 {
			t.Errorf("%s: QoE %.3f with a terminal value, above the plain optimum %.3f", tr.Name, q1, q0)
		}
		if b1 > b0 {
			more++
		}
	}
	if more == 0 {
		t.Error("valuing the buffer left never changed a plan")
	}
}

// TestOptimalGridConverges: refining the buffer grid moves the optimum's
// mean QoE by less than 0.5 % (the bound; 0.03 % is measured
// from 0.1 s to 0.025 s on all 127 traces).
func TestOptimalGridConverges(t *testing.T) {
	v := loadEnvivio(t)
	traces, err := LoadTraces([]string{testdata("traces", "fcc"), testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	var sample []*Trace
	for i := 0; i < len(traces); i += 12 {
		sample = append(sample, traces[i])
	}
	mean := func(grid time.Duration) float64 {
		res, err := Simulate(context.Background(), SimOptions{Video: v, Traces: sample, Algorithms: []string{Optimal}, Pensieve: true, OptimalGrid: grid})
		if err != nil {
			t.Fatal(err)
		}
		return Summarize(res)[0].MeanQoE
	}
	coarse, def, fine := mean(400*time.Millisecond), mean(DefaultOptimalGrid), mean(40*time.Millisecond)
	if d := math.Abs(def-fine) / math.Abs(fine); d > 0.005 {
		t.Errorf("grid %s: mean QoE %.4f, grid 40ms: %.4f (%.2f %% apart, want < 0.5 %%)", DefaultOptimalGrid, def, fine, 100*d)
	}
	t.Logf("%d traces: mean QoE %.4f (400 ms grid), %.4f (%s), %.4f (40 ms)", len(sample), coarse, def, DefaultOptimalGrid, fine)
}

func TestOptimalNamesAndColumns(t *testing.T) {
	if _, err := NewABR(Optimal); err == nil || !strings.Contains(err.Error(), "sim only") {
		t.Errorf("NewABR(optimal): %v", err)
	}
	got, err := ParseABRList("all,optimal")
	if err != nil || !slices.Equal(got, append(Algorithms(), Optimal)) {
		t.Errorf("all,optimal: %v %v", got, err)
	}
	if got, _ := ParseABRList("all"); slices.Contains(got, Optimal) {
		t.Error("all includes the optimum")
	}
	if ResultColumns[len(ResultColumns)-1] != "optimal_qoe" || len(ResultColumns) != 10 {
		t.Errorf("columns %v", ResultColumns)
	}
	res := []SimResult{{Trace: "a", ABR: "bba", Result: Result{QoE: 10}}, {Trace: "a", ABR: Optimal, Result: Result{QoE: 40}},
		{Trace: "b", ABR: "bba", Result: Result{QoE: 30}}, {Trace: "b", ABR: Optimal, Result: Result{QoE: 40}}}
	var table strings.Builder
	WriteSummary(&table, Summarize(res))
	if !strings.Contains(table.String(), "of_optimal") || !strings.Contains(table.String(), "0.500") {
		t.Errorf("summary:\n%s", table.String())
	}
	var csvOut strings.Builder
	if err := WriteResults(&csvOut, res); err != nil || !strings.Contains(csvOut.String(), "a,bba,0,0.000,0.000,0,0,0.000,10.000,40.000") {
		t.Errorf("results:\n%s", csvOut.String())
	}
	table.Reset()
	WriteSummary(&table, Summarize(res[:1]))
	if strings.Contains(table.String(), "of_optimal") {
		t.Errorf("of_optimal without the optimum:\n%s", table.String())
	}
	sums := []Summary{{ABR: "deepcast", MeanQoE: 30}, {ABR: "robustmpc", MeanQoE: 20}, {ABR: "bola", MeanQoE: 25}, {ABR: Optimal, MeanQoE: 35}}
	if gap, best, ok := GapClosed(sums, "deepcast"); !ok || best != "bola" || math.Abs(gap-0.5) > 1e-12 {
		t.Errorf("gap_closed %.3f over %s (%v)", gap, best, ok)
	}
}
