package player

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// planScenariosExhaustive is planScenarios as it was before its branch
// and bound: every sequence scored, the last best kept. The search must
// choose exactly what it chooses.
func planScenariosExhaustive(s *State, h int, bw, weight []float64, value, target float64) int {
	br := s.Bitrates()
	n := len(br)
	k := len(bw)
	last := max(s.Last, 0)
	chunkSec := s.ChunkSeconds()
	ceiling := s.planCeiling()
	t := s.planTerms()
	worth := value * (t.stall / linStallPrice)
	best, bestFirst := math.Inf(-1), 0
	bufs := make([][]float64, h+1)
	stalled := make([][]float64, h+1)
	for i := range bufs {
		bufs[i], stalled[i] = make([]float64, k), make([]float64, k)
	}
	for j := range k {
		bufs[0][j] = s.Buffer.Seconds()
	}
	rews := make([]float64, h+1)
	var walk func(step, prev, first int)
	walk = func(step, prev, first int) {
		if step == h {
			v := rews[step]
			for j := range k {
				if target <= 0 {
					break
				}
				v += weight[j] * worth * math.Min(bufs[step][j], target) / chunkSec * br[0] / 1000
			}
			if v >= best {
				best, bestFirst = v, first
			}
			return
		}
		for q := range n {
			f := first
			if step == 0 {
				f = q
			}
			kbits := float64(s.Video.Size(s.Chunk+step, q)) * 8 / 1000
			exp := t.util[q] - t.switching[prev*n+q]
			for j := range k {
				dl := math.Inf(1)
				if bw[j] > 0 {
					dl = kbits / bw[j]
				}
				b, st := bufs[step][j], stalled[step][j]
				if b < dl {
					exp -= weight[j] * t.stall * (dl - b)
					st += dl - b
					b = 0
				} else {
					b -= dl
				}
				if t.lag != 0 {
					exp -= weight[j] * t.lag * st
				}
				bufs[step+1][j], stalled[step+1][j] = min(b+chunkSec, ceiling), st
			}
			rews[step+1] = rews[step] + exp
			walk(step+1, q, f)
		}
	}
	walk(0, last, 0)
	return bestFirst
}

// TestPlanScenariosMatchesExhaustiveSearch plays deepcast over bundled
// traces under every QoE model, on demand and live, with and without the
// stall abandonment rule, and at every decision holds the branch and
// bound search to the exhaustive walk (BenchmarkDeepcastSession measures
// what the bound saves).
func TestPlanScenariosMatchesExhaustiveSearch(t *testing.T) {
	v := loadEnvivio(t)
	var traces []*Trace
	for _, fam := range []string{"fcc", "hsdpa", "oboe", "puffer-2021"} {
		ts, err := LoadTraces([]string{testdata("traces", fam)})
		if err != nil {
			t.Fatal(err)
		}
		// About one trace in sixteen of each family: the exhaustive walk
		// is what costs here (12 ms a session, several times that under
		// -race).
		step := 16
		if testing.Short() {
			step = 40
		}
		for i := 0; i < len(ts); i += step {
			traces = append(traces, ts[i])
		}
	}
	live := *v
	live.LiveDelay = 12 * time.Second
	cases := []struct {
		qoe       string
		video     *Video
		abandon   string
		ownClient bool // sim -pensieve=false: a 60 s buffer, no fixed start
	}{
		{"lin", v, "", false}, {"hd", v, "", false}, {"log", v, "", false}, {"yin", v, "", false},
		{"lin", v, "stall", false}, {"lolp", &live, "", false}, {"lin", &live, "", false}, {"lin", v, "", true},
	}
	decisions, differ := 0, 0
	for _, c := range cases {
		qoe, err := NewQoE(c.qoe)
		if err != nil {
			t.Fatal(err)
		}
		for i, tr := range traces {
			// QoE_lin on demand on every trace; each other case on a third.
			if (c.qoe != "lin" || c.video != v || c.abandon != "" || c.ownClient) && i%3 != 0 {
				continue
			}
			opt := SimOptions{Video: c.video, Pensieve: !c.ownClient, QoE: c.qoe, Abandon: c.abandon}
			cfg, link := simSetup(opt, tr)
			d := &Deepcast{}
			d.plan = func(s *State, h int, bw, weight []float64, value, target float64) int {
				got := planScenarios(s, h, bw, weight, value, target)
				want := planScenariosExhaustive(s, h, bw, weight, value, target)
				decisions++
				if got != want {
					differ++
					if differ <= 5 {
						t.Errorf("%s, %s, live %v, abandon %q, pensieve %v, chunk %d, buffer %v: the search chooses %d, every sequence scored %d",
							tr.Name, c.qoe, c.video.LiveDelay, c.abandon, !c.ownClient, s.Chunk, s.Buffer, got, want)
					}
				}
				return got
			}
			s := &Session{Video: c.video, ABR: d, QoE: qoe, Clock: link, Fetcher: link, Config: cfg}
			if _, err := s.Run(context.Background()); err != nil {
				t.Fatalf("%s: %v", tr.Name, err)
			}
		}
	}
	if differ > 0 || decisions < 1000 {
		t.Errorf("%d of %d decisions differ from the exhaustive walk's (want none, of at least 1000)", differ, decisions)
	}
	t.Logf("%d decisions over %d traces, all the exhaustive walk's", decisions, len(traces))
}

// TestPlanBoundHoldsEveryPrefix checks the bound itself, on random
// states under every QoE model: for every prefix of every sequence, what
// walk takes as the most the prefix can still reach is at least the best
// score of the sequences that begin with it. A bound that fell short
// would drop a prefix holding the best sequence only when some state
// makes it matter, which playing traces may never meet.
func TestPlanBoundHoldsEveryPrefix(t *testing.T) {
	v := loadEnvivio(t)
	rng := rand.New(rand.NewPCG(18, 5))
	leaves := 0
	for _, name := range QoEModels() {
		qoe, err := NewQoE(name)
		if err != nil {
			t.Fatal(err)
		}
		for trial := range 40 {
			s := &State{Video: v, Chunks: v.Chunks, Chunk: rng.IntN(v.Chunks - 5), QoE: qoe, MaxBuffer: 60 * time.Second,
				Buffer: time.Duration(rng.Float64() * 40 * float64(time.Second)), Last: rng.IntN(len(v.Bitrates))}
			bw := []float64{100 + rng.Float64()*8000, 300 + rng.Float64()*20000, 200 + rng.Float64()*12000}
			weight := []float64{0.45, 0.45, 0.1}
			h := 1 + rng.IntN(5)
			p := newScenarioPlan(s, h, bw, weight, deepcastBufferValue, deepcastBufferTarget*rng.Float64())
			if !p.prune {
				t.Fatalf("%s: the bound is off for a model whose terms allow it", name)
			}
			// best returns the best leaf under the prefix at step, checking
			// the bound at each prefix on the way.
			var best func(step, prev int) float64
			best = func(step, prev int) float64 {
				if step == h {
					leaves++
					return p.score()
				}
				bound := p.bound(step)
				m := math.Inf(-1)
				for q := range p.n {
					p.advance(step, prev, q)
					m = math.Max(m, best(step+1, q))
				}
				if bound < m-1e-9*(1+math.Abs(m)) {
					t.Errorf("%s, trial %d, step %d of %d: bound %v below the best sequence's %v", name, trial, step, h, bound, m)
				}
				return m
			}
			best(0, p.last)
		}
	}
	if leaves < 10000 {
		t.Errorf("only %d sequences scored", leaves)
	}
}

// BenchmarkDeepcastSessionExhaustive is BenchmarkDeepcastSession's session
// planned by scoring every sequence, as before the branch and bound: what
// the bound saves is the ratio of the two.
func BenchmarkDeepcastSessionExhaustive(b *testing.B) {
	v := loadEnvivio(b)
	traces, err := LoadTraces([]string{testdata("traces", "fcc")})
	if err != nil {
		b.Fatal(err)
	}
	opt := SimOptions{Video: v, Pensieve: true}
	qoe, err := NewQoE("lin")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cfg, link := simSetup(opt, traces[0])
		s := &Session{Video: v, ABR: &Deepcast{plan: planScenariosExhaustive}, QoE: qoe, Clock: link, Fetcher: link, Config: cfg}
		if _, err := s.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
