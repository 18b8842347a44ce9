package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/atomicfile"
	"github.com/deepcast/deepcast/player"
	"github.com/deepcast/deepcast/player/learn"
)

func trainCommand() command {
	return command{
		name:    "train",
		summary: "train a learned ABR policy by imitating the offline optimum over bandwidth traces (DAgger); writes model.json",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			video := fs.String("video", "", "video: a CSV like envivio-4s-48.csv, an asset folder or MPD; required")
			traces := fs.String("traces", "", "training trace files or folders, comma-separated (two-column, mahimahi or Sabre JSON, each maybe gzipped); required")
			out := fs.String("o", "", "model file to write (JSON); required")
			qoe := fs.String("qoe", "lin", "QoE model the optimum maximises: "+strings.Join(player.QoEModels(), ", "))
			pensieve := fs.Bool("pensieve", true, "Pensieve's simulator assumptions (as sim -pensieve)")
			rtt := fs.Duration("rtt", 0, "round trip added to each download (with -pensieve=false)")
			seed := fs.Uint64("seed", 1, "seed of the initial weights and batch order: the same seed and data give the same model")
			rounds := fs.Int("rounds", 4, "DAgger rounds (collect with the current policy, label with the optimum, fit)")
			epochs := fs.Int("epochs", 30, "passes over the data per round")
			hidden := fs.String("hidden", "32,16", "hidden layer widths, comma-separated")
			grid := fs.Duration("teacher-grid", 500*time.Millisecond, "buffer resolution of the optimum that labels the states")
			rollout := fs.Bool("rollout", false, "label each candidate by playing it and then the hedged MPC to the end (a continuation a player can achieve) instead of the optimum's")
			jobs := fs.Int("j", 0, "parallel sessions (default: number of CPUs)")
			scale := fs.String("scale", "", "LO,HI: multiply each training trace's bandwidth by a factor drawn between LO and HI (log-uniform, from -seed), so the policy learns more than the traces' own regime; e.g. 0.5,2")
			sample := fs.Int("sample", 0, "train on at most this many of the traces, evenly spaced in their order (0: all)")
			return func(ctx context.Context, args []string) error {
				if *video == "" || *traces == "" || *out == "" {
					return fmt.Errorf("-video, -traces and -o are required: %w", errUsage)
				}
				widths, err := parseWidths(*hidden)
				if err != nil {
					return err
				}
				bounds, err := parseScale(*scale)
				if err != nil {
					return err
				}
				if err := checkJobs(*jobs); err != nil {
					return err
				}
				if *rounds < 1 || *rounds > 50 || *epochs < 1 || *epochs > 1000 {
					return fmt.Errorf("-rounds 1…50 and -epochs 1…1000: %w", errUsage)
				}
				if err := writable(filepath.Dir(*out)); err != nil {
					return fmt.Errorf("-o %s: %w", *out, err)
				}
				if _, err := player.NewQoE(*qoe); err != nil {
					return err
				}
				v, err := player.LoadVideo(ctx, *video, nil)
				if err != nil {
					return err
				}
				ts, err := player.LoadTraces(splitList(*traces))
				if err != nil {
					return err
				}
				if *sample < 0 {
					return fmt.Errorf("-sample %d: %w", *sample, errUsage)
				}
				ts = learn.Sample(ts, *sample)
				opt := learn.Options{Sim: player.SimOptions{Video: v, Traces: ts, QoE: *qoe, Pensieve: *pensieve, RTT: *rtt, Jobs: *jobs},
					Hidden: widths, Rounds: *rounds, Epochs: *epochs, TeacherGrid: *grid, Rollout: *rollout, Seed: *seed, Scale: bounds, Progress: trainProgress()}
				fmt.Fprintf(stdout, "training on %d traces of %s: %d rounds of DAgger, network %d→%s→1, seed %d\n",
					len(ts), v.Name, *rounds, len(player.PolicyFeatures), *hidden, *seed)
				model, rep, err := learn.Train(ctx, opt)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "the hedged MPC (deepcast-mpc) it starts from: mean QoE %.2f\n", rep.StartQoE)
				fmt.Fprintln(stdout, "round  decisions  loss    agreement  regret  own sessions' mean QoE")
				for i, r := range rep.Rounds {
					mark := ""
					if i+1 == rep.Chosen {
						mark = "  ← kept"
					}
					fmt.Fprintf(stdout, "%5d  %9d  %.4f  %9.3f  %6.3f  %8.2f%s\n", i+1, r.Decisions, r.Loss, r.Agreement, r.Regret, r.MeanQoE, mark)
				}
				data, err := json.Marshal(model)
				if err != nil {
					return err
				}
				// A model half written would fail to load: write it whole.
				if err := atomicfile.Write(*out, data, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "model: %s (%d bytes) in %s; use it with sim -model %s\n", *out, len(data), rep.Elapsed.Round(time.Second), *out)
				return nil
			}
		},
	}
}

// parseScale reads "LO,HI" (empty: no scaling).
func parseScale(s string) ([2]float64, error) {
	if s == "" {
		return [2]float64{}, nil
	}
	lo, hi, ok := strings.Cut(s, ",")
	a, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
	b, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
	if !ok || err1 != nil || err2 != nil || !(a > 0) || !(b >= a) || b > 100 {
		return [2]float64{}, fmt.Errorf("-scale %q: want LO,HI with 0 < LO <= HI <= 100: %w", s, errUsage)
	}
	return [2]float64{a, b}, nil
}

// parseWidths reads "32,16".
func parseWidths(s string) ([]int, error) {
	var out []int
	for p := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 512 {
			return nil, fmt.Errorf("-hidden %q: widths 1…512, comma-separated: %w", s, errUsage)
		}
		out = append(out, n)
	}
	if len(out) > 4 {
		return nil, fmt.Errorf("-hidden %q: at most 4 layers: %w", s, errUsage)
	}
	return out, nil
}

// trainProgress draws a bar per stage on a terminal, and a line per
// finished stage otherwise.
func trainProgress() func(stage string, done, total int) {
	tty := isTerminal(os.Stderr)
	var bar *progressbar.ProgressBar
	cur := ""
	start := time.Now()
	return func(stage string, done, total int) {
		if stage != cur {
			cur, start = stage, time.Now()
			if tty {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription(stage),
					progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
			}
		}
		if tty {
			_ = bar.Set(done)
			return
		}
		if done == total {
			fmt.Fprintf(os.Stderr, "%s: %d/%d in %s\n", stage, done, total, time.Since(start).Round(time.Millisecond))
		}
	}
}
