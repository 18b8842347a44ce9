package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
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
	skipUnlessLabBench(t)
	const (
		viewers = 4
		link    = "4mbit" // tc's spelling
		limit   = "4M"    // the edge's
	)
	clip, rounds := cmsdBenchLength(t, 3)
	lib := packageClip(t, clip, "640x360@2000k,480x270@1000k,320x180@350k")
	nw := newLabNet(t, []string{"deep"}, map[string]string{})
	h := nw.host("deep")
	nw.shape(h, link)
	originURL := labOrigin(t, lib)
	bin := buildBinary(t)
	edgeURL := "http://" + h.IP + ":9100"

	type mode struct {
		name  string
		share string // the edge's -cmsd-share
		obey  bool
	}
	modes := []mode{{"keep to mb, by ladder", "ladder", true}, {"keep to mb, equal", "equal", true}, {"ignore (-cmsd=false)", "ladder", false}}
	var runs []viewerRun
	for round := range rounds {
		for k := range modes {
			m := (k + round) % len(modes) // each mode goes first once
			obey := modes[m].obey
			n := runProcess(t, nw.command(h, bin, "edge", "-profile", "enter-deep", "-upstream", originURL,
				"-listen", h.IP+":9100", "-egress-limit", limit, "-cmsd-share", modes[m].share, "-mem", "256MiB"))
			awaitListening(t, n, h.IP+":9100", "edge")
			results := playViewers(t, viewers, clip, obey, func(int) string { return edgeURL }, fmt.Sprintf("round %d, %s", round+1, modes[m].name))
			stopProcess(n)
			runs = append(runs, viewerRun{mode: m, results: results})
		}
	}
	fmt.Printf("%d viewers (dynamic rule, CMCD) through one enter-deep edge whose way out is %s, -egress-limit %s; a %v clip at 2000k/1000k/350k + 128k sound; %d rounds interleaved\n",
		viewers, link, limit, clip, rounds)
	names := make([]string, len(modes))
	for m, md := range modes {
		names[m] = md.name
	}
	printViewerTable(names, runs, viewers)
}

// TestBenchCMSDThroughAShield measures a bring-home shield's CMSD advice
// reaching the viewers of the enter-deep nodes below it, which pass it on
// (they have no advice of their own). The bring-home node runs in a
// network namespace whose way out is a 4 Mbit/s link (tbf), with
// -egress-limit 4M; two enter-deep nodes, unshaped, in namespaces of
// their own, fill from it (and prefetch, as they do by default). Four
// players (deepcast play: dash.js's dynamic rule, CMCD on), two on each
// deep node, start 2 s apart and play the clip of TestBenchCMSDFairShare,
// keeping to the suggestion or ignoring it (-cmsd=false); rounds
// interleaved, fresh nodes for each run. A deep node's hits do not cross
// the link, so the shield counts only the sessions whose fetches (or the
// deep node's prefetches for them) miss. DEEPCAST_SHIELD_PREFETCH=false
// turns the deep nodes' prefetch off, DEEPCAST_SHIELD_STREAM_AFTER sets
// their -stream-after, DEEPCAST_SHIELD_LOGS=1 logs what the nodes logged.
// Results: cmd/deepcast/BENCHMARKS.md.
func TestBenchCMSDThroughAShield(t *testing.T) {
	skipUnlessLabBench(t)
	const (
		viewers = 4
		link    = "4mbit"
		limit   = "4M"
	)
	clip, rounds := cmsdBenchLength(t, 2)
	prefetch := "true" // as for any enter-deep node
	if v := os.Getenv("DEEPCAST_SHIELD_PREFETCH"); v != "" {
		prefetch = v
	}
	streamAfter := edge.DefaultStreamAfter.String()
	if v := os.Getenv("DEEPCAST_SHIELD_STREAM_AFTER"); v != "" {
		streamAfter = v // -stream-after of the deep nodes
	}
	headFills := "false"
	if v := os.Getenv("DEEPCAST_SHIELD_HEAD_FILLS"); v != "" {
		headFills = v // -head-fills of every node: a HEAD fetches the object
	}
	lib := packageClip(t, clip, "640x360@2000k,480x270@1000k,320x180@350k")
	nw := newLabNet(t, []string{"home", "deep1", "deep2"}, map[string]string{})
	home := nw.host("home")
	nw.shape(home, link)
	originURL := labOrigin(t, lib)
	bin := buildBinary(t)
	homeURL := "http://" + home.IP + ":9100"
	deeps := []*labHost{nw.host("deep1"), nw.host("deep2")}
	modes := []struct {
		name string
		obey bool
	}{{"keep to mb", true}, {"ignore (-cmsd=false)", false}}
	var runs []viewerRun
	for round := range rounds {
		for k := range modes {
			m := (k + round) % len(modes)
			nodes := []*node{runProcess(t, nw.command(home, bin, "edge", "-profile", "bring-home", "-upstream", originURL,
				"-listen", homeURL[len("http://"):], "-admin-listen", home.IP+":9101", "-egress-limit", limit, "-mem", "256MiB", "-head-fills="+headFills))}
			awaitListening(t, nodes[0], homeURL[len("http://"):], "bring-home edge")
			for _, d := range deeps {
				addr := d.IP + ":9100"
				n := runProcess(t, nw.command(d, bin, "edge", "-profile", "enter-deep", "-upstream", homeURL, "-listen", addr, "-mem", "256MiB",
					"-prefetch", prefetch, "-stream-after", streamAfter, "-head-fills="+headFills, "-access-log="+strconv.FormatBool(os.Getenv("DEEPCAST_SHIELD_LOGS") != "")))
				awaitListening(t, n, addr, "enter-deep edge")
				nodes = append(nodes, n)
			}
			stats := make(chan string, 1)
			go func() { // what the shield advises while the viewers play
				var seen []string
				for range int(clip/time.Second) + 10 {
					time.Sleep(time.Second)
					var s struct{ Advice edge.AdviceStats }
					e := ""
					if err := getJSON(http.DefaultClient, "http://"+home.IP+":9101/api/stats", &s); err == nil {
						e = s.Advice.Header
					} else {
						e = err.Error()
					}
					if len(seen) == 0 || seen[len(seen)-1] != e {
						seen = append(seen, e) // the changes only
					}
				}
				stats <- strings.Join(seen, " → ")
			}()
			results := playViewers(t, viewers, clip, modes[m].obey, func(i int) string { return "http://" + deeps[i%len(deeps)].IP + ":9100" },
				fmt.Sprintf("round %d, %s", round+1, modes[m].name))
			t.Logf("the shield advised: %s", <-stats)
			for i, n := range nodes {
				stopProcess(n)
				if os.Getenv("DEEPCAST_SHIELD_LOGS") != "" {
					t.Logf("node %d's log:\n%s", i, n.logs.String()) // 0: the shield
				}
			}
			runs = append(runs, viewerRun{mode: m, results: results})
		}
	}
	fmt.Printf("%d viewers (dynamic rule, CMCD), two on each of two enter-deep edges (-prefetch %s, -stream-after %s, -head-fills=%s) below a bring-home edge whose way out is %s, -egress-limit %s; a %v clip at 2000k/1000k/350k + 128k sound; %d rounds interleaved\n",
		viewers, prefetch, streamAfter, headFills, link, limit, clip, rounds)
	names := make([]string, len(modes))
	for m, md := range modes {
		names[m] = md.name
	}
	printViewerTable(names, runs, viewers)
}

// skipUnlessLabBench skips a bench that needs network namespaces unless
// make bench asked for it (DEEPCAST_BENCH) and the machine has them.
func skipUnlessLabBench(t *testing.T) {
	t.Helper()
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	if why := labNamespacesSupported(); why != "" {
		t.Skip(why)
	}
}

// cmsdBenchLength is the CMSD benches' clip length and rounds (rounds by
// default). DEEPCAST_CMSD_CLIP and DEEPCAST_CMSD_ROUNDS change them: a
// longer clip lets the players reach the steady state (full buffers) in
// which the split by ladder raises sessions.
func cmsdBenchLength(t *testing.T, rounds int) (time.Duration, int) {
	t.Helper()
	clip := 40 * time.Second
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
	return clip, rounds
}

// shape limits h's way out of its namespace to rate (tc's spelling), with
// a small burst, so that the link's rate is what the players measure.
func (nw *labNet) shape(h *labHost, rate string) {
	nw.run("tc", "-n", h.NS, "qdisc", "add", "dev", fmt.Sprintf("%sn%d", nw.id, h.idx), "root", "tbf", "rate", rate, "burst", "32kb", "latency", "100ms")
}

// labOrigin serves an origin on lib at the lab's host address (the fabric
// reaches it unshaped) and returns its URL.
func labOrigin(t *testing.T, lib string) string {
	t.Helper()
	o := startOrigin(t, lib)
	ln, err := net.Listen("tcp", labPrefix+".250.2:0")
	if err != nil {
		t.Fatal(err)
	}
	osrv := &http.Server{Handler: o, ReadHeaderTimeout: 5 * time.Second}
	go osrv.Serve(ln)
	t.Cleanup(func() { osrv.Close() })
	return "http://" + ln.Addr().String()
}

// playViewers plays the clip with viewers players started 2 s apart, the
// i-th through the node at at(i), keeping to the nodes' suggestions when
// obey; it logs each one's result under label.
func playViewers(t *testing.T, viewers int, clip time.Duration, obey bool, at func(int) string, label string) []player.Result {
	t.Helper()
	results := make([]player.Result, viewers)
	var wg sync.WaitGroup
	errs := make(chan error, viewers)
	for i := range viewers {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 2 * time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+3*clip)
			defer cancel()
			var lines bytes.Buffer
			chunks := os.Getenv("DEEPCAST_SHIELD_CHUNKS") != ""
			r, err := play(ctx, at(i)+"/vod/clip/manifest.mpd", playOptions{ABR: "dynamic", QoE: "lin", CMCD: true,
				IgnoreServerCap: !obey, Out: &lines, ChunkLines: chunks})
			if chunks {
				t.Logf("%s, viewer %d's chunks:\n%s", label, i+1, lines.String())
			}
			if err != nil {
				errs <- fmt.Errorf("viewer %d (%s): %w", i+1, label, err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, r := range results {
		t.Logf("%s, viewer %d: %d stalls (%.2f s), %d switches, %.0f kbit/s, %d capped, last suggestion %d kbit/s", label, i+1,
			r.RebufferCount, r.Rebuffer.Seconds(), r.Switches, r.MeanBitrate, r.Capped, r.ServerCapKbps)
	}
	return results
}

// stopProcess interrupts n and waits for it to end, so that the next
// run's node can take its address; the test's cleanup still finds it
// ended.
func stopProcess(n *node) {
	n.cmd.Process.Signal(os.Interrupt)
	err := <-n.done
	n.done <- err
}

// viewerRun is what the viewers of one run of a mode got.
type viewerRun struct {
	mode    int
	results []player.Result
}

// printViewerTable prints, per mode (named by names), what its viewers
// got: per viewer and run, and the mean fairness of a run.
func printViewerTable(names []string, runs []viewerRun, viewers int) {
	fmt.Printf("%-22s %9s %12s %9s %13s %9s %13s %9s\n", "players", "stalls", "stalled (s)", "switches", "mean kbit/s", "fairness", "QoE (lin)", "capped")
	for m, name := range names {
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
		if n == 0 {
			continue
		}
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
