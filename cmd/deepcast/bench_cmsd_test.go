package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/deepcast/deepcast/player"
	"gonum.org/v1/gonum/stat"
)

// TestBenchCMSDFairShare measures what an edge's CMSD advice does for
// viewers who share its link. An enter-deep edge runs in a network
// namespace of its own whose way out is a 4 Mbit/s link (tbf; the
// origin's fills come in unshaped), with -egress-limit 4M. Four players
// (deepcast play: dash.js's dynamic rule, CMCD on) start 2 s apart and
// play a 40-s clip through it (2000k, 1000k and 350k renditions, sound at
// 128k), three ways: keeping to the node's suggestion, split by the
// ladder (the default); keeping to an equal split (-cmsd-share equal);
// ignoring it (-cmsd=false); rounds interleaved, a fresh edge for each
// run. Four players at 1000k (with their sound) do not fit the link, four
// at 350k do, with half the link unused: an equal share (90 % of the
// limit, 900 kbit/s each) is the 350k rendition, while the ladder's split
// raises two sessions to 1000k.
func TestBenchCMSDFairShare(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	if why := labNamespacesSupported(); why != "" {
		t.Skip(why)
	}
	const (
		viewers = 4
		link    = "4mbit" // tc's spelling
		limit   = "4M"    // the edge's
	)
	// DEEPCAST_CMSD_CLIP and DEEPCAST_CMSD_ROUNDS change the clip's length
	// and the rounds: a longer clip lets the players reach the steady
	// state (full buffers) in which the split by ladder raises sessions.
	clip, rounds := 40*time.Second, 3
	if v := os.Getenv("DEEPCAST_CMSD_CLIP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second || d > 10*time.Minute {
			t.Fatalf("DEEPCAST_CMSD_CLIP=%q: want a duration from 10s to 10m", v)
		}
		clip = d
	}
	if v := os.Getenv("DEEPCAST_CMSD_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			t.Fatalf("DEEPCAST_CMSD_ROUNDS=%q: want 1 to 20", v)
		}
		rounds = n
	}
	lib := packageClip(t, clip, "640x360@2000k,480x270@1000k,320x180@350k")
	nw := newLabNet(t, []string{"deep"}, map[string]string{})
	h := nw.host("deep")
	// Only the node's way out is shaped, with a small burst, so that the
	// link's rate is what the players measure.
	nw.run("tc", "-n", h.NS, "qdisc", "add", "dev", fmt.Sprintf("%sn%d", nw.id, h.idx), "root", "tbf", "rate", link, "burst", "32kb", "latency", "100ms")
	o := startOrigin(t, lib)
	ln, err := net.Listen("tcp", labPrefix+".250.2:0")
	if err != nil {
		t.Fatal(err)
	}
	osrv := &http.Server{Handler: o, ReadHeaderTimeout: 5 * time.Second}
	go osrv.Serve(ln)
	t.Cleanup(func() { osrv.Close() })
	bin := buildBinary(t)
	edgeURL := "http://" + h.IP + ":9100"

	type mode struct {
		name  string
		share string // the edge's -cmsd-share
		obey  bool
	}
	modes := []mode{{"keep to mb, by ladder", "ladder", true}, {"keep to mb, equal", "equal", true}, {"ignore (-cmsd=false)", "ladder", false}}
	type run struct {
		mode    int
		results []player.Result
	}
	var runs []run
	for round := range rounds {
		for k := range modes {
			m := (k + round) % len(modes) // each mode goes first once
			obey := modes[m].obey
			n := runProcess(t, nw.command(h, bin, "edge", "-profile", "enter-deep", "-upstream", "http://"+ln.Addr().String(),
				"-listen", h.IP+":9100", "-egress-limit", limit, "-cmsd-share", modes[m].share, "-mem", "256MiB"))
			awaitListening(t, n, h.IP+":9100", "edge")
			stop := func() {
				// Gone before the next run's node takes the address; the
				// test's cleanup still finds it ended.
				n.cmd.Process.Signal(os.Interrupt)
				err := <-n.done
				n.done <- err
			}
			results := make([]player.Result, viewers)
			var wg sync.WaitGroup
			errs := make(chan error, viewers)
			for i := range viewers {
				wg.Go(func() {
					time.Sleep(time.Duration(i) * 2 * time.Second)
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+3*clip)
					defer cancel()
					r, err := play(ctx, edgeURL+"/vod/clip/manifest.mpd", playOptions{ABR: "dynamic", QoE: "lin", CMCD: true,
						IgnoreServerCap: !obey, Out: io.Discard})
					if err != nil {
						errs <- fmt.Errorf("viewer %d (%s): %w", i+1, modes[m].name, err)
					}
					results[i] = r
				})
			}
			wg.Wait()
			stop()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for i, r := range results {
				t.Logf("round %d, %s, viewer %d: %d stalls (%.2f s), %d switches, %.0f kbit/s, %d capped", round+1, modes[m].name, i+1,
					r.RebufferCount, r.Rebuffer.Seconds(), r.Switches, r.MeanBitrate, r.Capped)
			}
			runs = append(runs, run{mode: m, results: results})
		}
	}
	fmt.Printf("%d viewers (dynamic rule, CMCD) through one enter-deep edge whose way out is %s, -egress-limit %s; a %v clip at 2000k/1000k/350k + 128k sound; %d rounds interleaved\n",
		viewers, link, limit, clip, rounds)
	fmt.Printf("%-22s %9s %12s %9s %13s %9s %13s %9s\n", "players", "stalls", "stalled (s)", "switches", "mean kbit/s", "fairness", "QoE (lin)", "capped")
	for m, md := range modes {
		var stalls, switches, capped int
		var stalled, qoe float64
		var means []float64
		var fair float64
		n := 0
		for _, r := range runs {
			if r.mode != m {
				continue
			}
			var ms []float64
			for _, res := range r.results {
				stalls += res.RebufferCount
				stalled += res.Rebuffer.Seconds()
				switches += res.Switches
				qoe += res.QoE
				capped += res.Capped
				ms = append(ms, res.MeanBitrate)
			}
			means = append(means, ms...)
			fair += jain(ms)
			n++
		}
		name := md.name
		per := float64(n * viewers)
		fmt.Printf("%-22s %9.2f %12.2f %9.2f %13.0f %9.3f %13.2f %9.1f\n", name, float64(stalls)/per, stalled/per, float64(switches)/per,
			stat.Mean(means, nil), fair/float64(n), qoe/per, float64(capped)/per)
	}
	fmt.Println("(per viewer and run; fairness is Jain's index of the viewers' mean bitrates in a run, 1 when equal)")
}

// jain is Jain's fairness index of xs: 1 when all are equal, 1/n when one
// has everything.
func jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}
