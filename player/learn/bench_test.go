package learn

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/deepcast/deepcast/player"
)

// TestBenchCrossValidation is the out-of-sample check of deepcast's two
// ABRs: a policy is trained on two trace families (fcc+hsdpa; then
// oboe+puffer-2021, 200 of their traces) and measured, beside the hedged
// MPC and the baselines, on the two it never saw, against the optimum.
// The hedged MPC's constants were chosen on fcc and hsdpa, so only its
// oboe and puffer-2021 figures are out of sample. Run by `make bench`
// (about 20 minutes on 2 cores); it measures, it does not judge.
func TestBenchCrossValidation(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	ctx := context.Background()
	v, err := player.LoadVideo(ctx, testdata("videos", "envivio-4s-48.csv"), nil)
	if err != nil {
		t.Fatal(err)
	}
	load := func(fams ...string) []*player.Trace {
		var out []*player.Trace
		for _, f := range fams {
			ts, err := player.LoadTraces([]string{testdata("traces", f)})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ts...)
		}
		return out
	}
	folds := []struct {
		train, test []string
		sample      int
	}{
		{[]string{"fcc", "hsdpa"}, []string{"oboe", "puffer-2021"}, 0},
		{[]string{"oboe", "puffer-2021"}, []string{"fcc", "hsdpa"}, 200},
	}
	fmt.Println("cross-validation, Pensieve mode, envivio, QoE_lin: mean QoE (of_optimal); gap_closed over the best baseline")
	for _, f := range folds {
		start := time.Now()
		model, rep, err := Train(ctx, Options{Sim: player.SimOptions{Video: v, Traces: Sample(load(f.train...), f.sample), Pensieve: true}, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("trained on %v (%v traces) in %s, round %d kept\n", f.train, model.Training["traces"], time.Since(start).Round(time.Second), rep.Chosen)
		for _, fam := range f.test {
			algs := append(slices.Clone(player.Baselines), player.DeepcastMPC, "fold", player.Optimal)
			res, err := player.Simulate(ctx, player.SimOptions{Video: v, Traces: load(fam), Algorithms: algs, Pensieve: true,
				Policies: map[string]*player.PolicyModel{"fold": model}})
			if err != nil {
				t.Fatal(err)
			}
			sums := player.Summarize(res)
			fmt.Printf("  %-12s", fam)
			for _, s := range sums {
				name := s.ABR
				if name == "fold" {
					name = "learned"
				}
				fmt.Printf("  %s %.2f (%.3f)", name, s.MeanQoE, s.OfOptimal)
			}
			gm, best, _ := player.GapClosed(sums, player.DeepcastMPC)
			gl, _, _ := player.GapClosed(sums, "fold")
			fmt.Printf("\n  %-12s  best baseline %s; gap_closed: hedged MPC %.3f, learned %.3f\n", "", best, gm, gl)
		}
	}
}
