package player

import (
	"context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPlayheadPlay: the playhead plays faster only while it is behind and
// the buffer holds more than the floor, wins back no more than it lags,
// and a stall adds to the lag.
func TestPlayheadPlay(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	for _, c := range []struct {
		name                 string
		rate                 float64
		behind, buffer, wall time.Duration
		left, stall          time.Duration
		behindAfter, won     time.Duration
	}{
		{"normal speed", 0, 3 * s, 5 * s, 2 * s, 3 * s, 0, 3 * s, 0},
		{"normal speed runs dry", 0, 0, s, 3 * s, 0, 2 * s, 2 * s, 0},
		{"fast for the whole wait", 1.5, 10 * s, 5 * s, 2 * s, 2 * s, 0, 9 * s, s},
		{"fast until caught up", 1.5, 200 * ms, 5 * s, 2 * s, 2800 * ms, 0, 0, 200 * ms},
		{"fast down to the floor, then a stall", 1.5, 10 * s, 2500 * ms, 4 * s, 0, 2 * s, 11500 * ms, 500 * ms},
		{"below the floor: normal speed", 1.25, 5 * s, 800 * ms, 500 * ms, 300 * ms, 0, 5 * s, 0},
		{"not behind: normal speed", 1.25, 0, 5 * s, 2 * s, 3 * s, 0, 0, 0},
		{"rate 1 is off", 1, 5 * s, 5 * s, 2 * s, 3 * s, 0, 5 * s, 0},
	} {
		p := playhead{rate: c.rate, floor: time.Second, behind: c.behind}
		left, stall := p.play(c.buffer, c.wall)
		if left != c.left || stall != c.stall || p.behind != c.behindAfter || p.caughtUp != c.won {
			t.Errorf("%s: left %v stall %v behind %v won %v; want %v %v %v %v", c.name, left, stall, p.behind, p.caughtUp,
				c.left, c.stall, c.behindAfter, c.won)
		}
	}
}

// TestPlayheadSigmoid: under the sigmoid law the playhead wins back
// what a step-by-step integration of dash.js's rate 1 + (R−1)·tanh(2.5·lag)
// does, stops playing faster at the buffer's floor, and handles lags of
// milliseconds and of a quarter of an hour alike.
func TestPlayheadSigmoid(t *testing.T) {
	s, ms := time.Second, time.Millisecond
	for _, c := range []struct {
		name                 string
		rate                 float64
		behind, buffer, wall time.Duration
	}{
		{"a few seconds behind, a deep buffer", 1.5, 3 * s, 20 * s, 2 * s},
		{"down to the floor, then a stall", 1.5, 10 * s, 2500 * ms, 4 * s},
		{"a quarter of an hour behind: nearly the full rate", 1.5, 900 * s, 30 * s, 10 * s},
		{"ten milliseconds behind: barely faster", 1.25, 10 * ms, 8 * s, 2 * s},
		{"gentle rate, long wait", 1.1, 2 * s, 60 * s, 30 * s},
	} {
		p := playhead{rate: c.rate, floor: time.Second, behind: c.behind, sigmoid: true}
		left, stall := p.play(c.buffer, c.wall)
		// The reference: 10 µs steps of the same law and floor.
		const h = 10e-6
		lag, buf, floor, stalled, won := c.behind.Seconds(), c.buffer.Seconds(), 1.0, 0.0, 0.0
		for t := 0.0; t < c.wall.Seconds()-h/2; t += h {
			rate := 1.0
			if lag > 0 && buf > floor {
				rate = 1 + (c.rate-1)*math.Tanh(2.5*lag)
			}
			if buf <= 0 {
				stalled += h
				lag += h
				continue
			}
			buf -= rate * h
			lag -= (rate - 1) * h
			won += (rate - 1) * h
		}
		near := func(got time.Duration, want float64) bool { return math.Abs(got.Seconds()-want) < 2e-3 }
		if !near(left, max(buf, 0)) || !near(stall, stalled) || !near(p.behind, lag) || !near(p.caughtUp, won) {
			t.Errorf("%s: left %v stall %v behind %v won %v; integrated %.4f %.4f %.4f %.4f", c.name, left, stall, p.behind, p.caughtUp,
				max(buf, 0), stalled, lag, won)
		}
		if p.caughtUp > c.behind || p.behind < 0 {
			t.Errorf("%s: won %v of a lag of %v", c.name, p.caughtUp, c.behind)
		}
	}
	if err := CheckCatchUpLaw("linear"); err == nil || !strings.Contains(err.Error(), "want fixed or sigmoid") {
		t.Errorf("law linear: %v", err)
	}
}

// TestSimLiveCatchUp: live sessions that catch up end closer to the live
// edge than the same sessions at normal speed, never closer than they
// joined, with the latency their startup, stalls and catch-up add up to;
// the optimum, which plays by the same rule, stays the ceiling; and a
// rate out of range or without a live stream is refused.
func TestSimLiveCatchUp(t *testing.T) {
	v, traces := liveSample(t)
	const delay = 12 * time.Second
	algs := append(Algorithms(), Optimal)
	run := func(rate float64, law string) []SimResult {
		t.Helper()
		res, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Algorithms: algs, Pensieve: true, Live: delay,
			CatchUp: rate, CatchUpLaw: law, KeepLogs: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	mean := func(rs []SimResult) map[string]float64 {
		m := map[string]float64{}
		for _, s := range Summarize(rs) {
			m[s.ABR] = s.Latency
		}
		return m
	}
	normal := run(0, "")
	for _, law := range []string{CatchUpFixed, CatchUpSigmoid} {
		fast := run(1.25, law)
		checkCeiling(t, fast)
		caught := 0
		for i, r := range fast {
			if want := delay + r.Startup + r.Rebuffer - r.CaughtUp; r.Latency != want {
				t.Errorf("%s, %s, %s: latency %v, want %v", law, r.Trace, r.ABR, r.Latency, want)
			}
			// The playhead's distance from the edge, measured chunk by
			// chunk, is the join's plus the lag the session's playhead keeps.
			for _, l := range r.Log {
				if d := l.Latency - (delay + l.Behind); d < -time.Microsecond || d > time.Microsecond {
					t.Fatalf("%s, %s, %s, chunk %d: %v behind the edge, but joined %v behind and fell %v further", law, r.Trace, r.ABR, l.Chunk, l.Latency, delay, l.Behind)
				}
			}
			if last := r.Log[len(r.Log)-1]; last.Latency != r.Latency {
				t.Errorf("%s, %s, %s: last chunk %v behind the edge, the session %v", law, r.Trace, r.ABR, last.Latency, r.Latency)
			}
			if r.Latency < delay {
				t.Errorf("%s, %s, %s: ended %v behind the edge, closer than the %v it joined at", law, r.Trace, r.ABR, r.Latency, delay)
			}
			if normal[i].CaughtUp != 0 {
				t.Fatalf("%s, %s: caught up %v at normal speed", r.Trace, r.ABR, normal[i].CaughtUp)
			}
			if r.CaughtUp > 0 {
				caught++
			}
		}
		if caught < len(fast)/2 {
			t.Errorf("%s: only %d of %d sessions caught up anything", law, caught, len(fast))
		}
		was, now := mean(normal), mean(fast)
		for _, a := range algs {
			if now[a] >= was[a] {
				t.Errorf("%s, %s: mean latency %.2f s catching up, %.2f s at normal speed", law, a, now[a], was[a])
			}
		}
	}
	for _, c := range []struct {
		opt  SimOptions
		want string
	}{
		{SimOptions{Live: delay, CatchUp: 2}, "want 1 (off) to 1.5"},
		{SimOptions{Live: delay, CatchUp: 0.5}, "want 1 (off) to 1.5"},
		{SimOptions{Live: delay, CatchUp: math.NaN()}, "want 1 (off) to 1.5"},
		{SimOptions{CatchUp: 1.1}, "for a live stream"},
		{SimOptions{Live: delay, CatchUp: 1.1, CatchUpLaw: "linear"}, "want fixed or sigmoid"},
	} {
		c.opt.Video, c.opt.Traces, c.opt.Algorithms = v, traces, []string{"bba"}
		if _, err := Simulate(context.Background(), c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("live %v, catch-up %g: %v, want %q", c.opt.Live, c.opt.CatchUp, err, c.want)
		}
	}
}

// TestLiveLogAndPlotShowTheLatency: each chunk's log says how much further
// behind the edge than its join a live session plays (the startup after
// the first, the join's distance less the latency at the end after the
// last), its -log CSV ends each row with the latency, and a live
// simulation's session plots gain a panel of it: a third taller than
// VOD's.
func TestLiveLogAndPlotShowTheLatency(t *testing.T) {
	v, traces := liveSample(t)
	const delay = 12 * time.Second
	height := func(opt SimOptions) int {
		t.Helper()
		opt.Video, opt.Traces, opt.Algorithms, opt.Pensieve, opt.KeepLogs = v, traces[:2], []string{"bola", "robustmpc"}, true, true
		res, err := Simulate(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if opt.Live == 0 {
				continue
			}
			if first, last := r.Log[0], r.Log[len(r.Log)-1]; first.Behind != r.Startup || delay+last.Behind != r.Latency {
				t.Errorf("%s, %s: behind %v after the first chunk (startup %v), %v after the last (latency %v)", r.Trace, r.ABR,
					first.Behind, r.Startup, last.Behind, r.Latency)
			}
		}
		dir := t.TempDir()
		if err := WritePlots(dir, res, 1, traces); err != nil {
			t.Fatal(err)
		}
		// The per-chunk CSV: a live one ends each row with the latency.
		if err := WriteLogs(filepath.Join(dir, "logs"), res[:1]); err != nil {
			t.Fatal(err)
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.csv"))
		data, err := os.ReadFile(logs[0])
		if err != nil {
			t.Fatal(err)
		}
		rows := strings.Split(strings.TrimSpace(string(data)), "\n")
		head, last := strings.Split(rows[0], ","), strings.Split(rows[len(rows)-1], ",")
		switch {
		case opt.Live == 0 && len(head) != len(LogColumns):
			t.Errorf("VOD log header %s", rows[0])
		case opt.Live > 0 && (head[len(head)-1] != LiveColumn || last[len(last)-1] != f3(res[0].Latency.Seconds())):
			t.Errorf("live log header %s, last row %s: want it to end with the latency %v", rows[0], rows[len(rows)-1], res[0].Latency)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "session_*.png"))
		if len(files) != 1 {
			t.Fatalf("session plots: %v", files)
		}
		f, err := os.Open(files[0])
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cfg, err := png.DecodeConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Height
	}
	vod, live := height(SimOptions{}), height(SimOptions{Live: delay, CatchUp: 1.25})
	if 3*live != 4*vod {
		t.Errorf("session plot %d px high live, %d px VOD: want a fourth panel", live, vod)
	}
}

// TestSimLoLPScoresLatencyAndRate: under LoL+'s QoE (-qoe lolp) every
// chunk's term, in a live session catching up at 1.5×, is the model's
// formula of what the log says of it: its bitrate over its seconds, the
// switch, the stall at the top bitrate's price, its distance from the
// live edge (0.1·R_max a second, this far behind) and the rate it played
// on at (R_min per unit above 1), which is 1.5 only while behind and above
// the floor. The optimum stays the ceiling, and a summary whose optimum
// scores below zero gives no of_optimal.
func TestSimLoLPScoresLatencyAndRate(t *testing.T) {
	v, traces := liveSample(t)
	res, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Algorithms: append(Algorithms(), Optimal), Pensieve: true,
		Live: 12 * time.Second, CatchUp: 1.5, QoE: "lolp", KeepLogs: true})
	if err != nil {
		t.Fatal(err)
	}
	checkCeiling(t, res)
	lo, hi := v.Bitrates[0]/1000, v.Bitrates[len(v.Bitrates)-1]/1000
	floor := max(v.ChunkDuration, time.Second)
	fast := 0
	for _, r := range res {
		var qoe float64
		for i, l := range r.Log {
			if l.Rate != 1 && l.Rate != 1.5 || l.Rate > 1 && (l.Behind <= 0 || l.Buffer <= floor) {
				t.Fatalf("%s, %s, chunk %d: playing on at %g×, %v behind with %v buffered", r.Trace, r.ABR, l.Chunk, l.Rate, l.Behind, l.Buffer)
			}
			if l.Rate > 1 {
				fast++
			}
			want := 0.0 // Pensieve's mode scores no first chunk
			if i > 0 {
				br, last := l.BitrateKbps/1000, r.Log[i-1].BitrateKbps/1000
				weight := 0.1 * hi
				if l.Latency <= 1100*time.Millisecond {
					weight = 0.05 * lo
				}
				want = v.ChunkDur(l.Chunk-1).Seconds()*br - math.Abs(br-last) - hi*l.Rebuffer.Seconds() - weight*l.Latency.Seconds() - lo*(l.Rate-1)
			}
			if math.Abs(l.QoE-want) > 1e-9 {
				t.Fatalf("%s, %s, chunk %d: QoE term %.9f, want %.9f from %+v", r.Trace, r.ABR, l.Chunk, l.QoE, want, l)
			}
			qoe += l.QoE
		}
		if math.Abs(qoe-r.QoE) > 1e-6 {
			t.Errorf("%s, %s: QoE %.6f, its chunks' %.6f", r.Trace, r.ABR, r.QoE, qoe)
		}
	}
	if fast == 0 {
		t.Error("no chunk played on faster: the sample tests no catch-up")
	}
	var b strings.Builder
	WriteSummary(&b, Summarize([]SimResult{{Trace: "a", ABR: "bola", Result: Result{QoE: -30}}, {Trace: "a", ABR: Optimal, Result: Result{QoE: -10}}}))
	if lines := strings.Split(strings.TrimSpace(b.String()), "\n"); len(lines) != 3 || !strings.Contains(lines[0], "of_optimal") ||
		!strings.Contains(lines[1], "  -") || !strings.Contains(lines[2], "  -") {
		t.Errorf("a summary whose optimum scores -10:\n%s", b.String())
	}
}
