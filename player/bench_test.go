package player

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestBenchSweep prints simulated media seconds per wall second for each
// algorithm, the wall time of the full sweep (all traces × all algorithms,
// Pensieve mode, envivio-4s-48), and the mean QoE_lin per set. Run by
// `make bench` (DEEPCAST_BENCH=1); it measures, it does not judge.
func TestBenchSweep(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	v := loadEnvivio(t)
	sets := map[string][]*Trace{}
	var all []*Trace
	for _, set := range []string{"fcc", "hsdpa"} {
		ts, err := LoadTraces([]string{testdata("traces", set)})
		if err != nil {
			t.Fatal(err)
		}
		sets[set] = ts
		all = append(all, ts...)
	}
	ctx := context.Background()
	fmt.Printf("simulation speed, one core, Pensieve mode, %d traces:\n", len(all))
	for _, a := range Algorithms() {
		start := time.Now()
		res, err := Simulate(ctx, SimOptions{Video: v, Traces: all, Algorithms: []string{a}, Pensieve: true, Jobs: 1})
		if err != nil {
			t.Fatal(err)
		}
		var media time.Duration
		for _, r := range res {
			media += r.PlayTime
		}
		fmt.Printf("  %-10s %12.0f media-s per wall-s\n", a, media.Seconds()/time.Since(start).Seconds())
	}
	var best time.Duration
	for range 3 {
		start := time.Now()
		if _, err := Simulate(ctx, SimOptions{Video: v, Traces: all, Algorithms: Algorithms(), Pensieve: true}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	fmt.Printf("  full sweep: %d traces x %d algorithms in %s (best of 3; target < 2 s)\n", len(all), len(Algorithms()), best.Round(time.Millisecond))
	for _, set := range []string{"fcc", "hsdpa"} {
		res, _ := Simulate(ctx, SimOptions{Video: v, Traces: sets[set], Algorithms: Algorithms(), Pensieve: true})
		fmt.Printf("  mean QoE_lin on %s (%d traces):", set, len(sets[set]))
		means := map[string]float64{}
		for _, s := range Summarize(res) {
			means[s.ABR] = s.MeanQoE
			fmt.Printf(" %s %.2f", s.ABR, s.MeanQoE)
		}
		fmt.Printf("; deepcast vs robustmpc %+.1f%%\n", 100*(means["deepcast"]/means["robustmpc"]-1))
	}
}
