package player

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/plot/plotter"
)

// abandonVideo is three renditions of 4 s chunks whose sizes are their
// bitrates exactly: 150 000, 600 000 and 2 150 000 bytes.
func abandonVideo(chunks int) *Video {
	v := &Video{Name: "abandon", ChunkDuration: 4 * time.Second, Bitrates: []float64{300, 1200, 4300}, Chunks: chunks}
	for range chunks {
		v.Sizes = append(v.Sizes, []int64{150_000, 600_000, 2_150_000})
	}
	return v
}

// TestAbandonRules works the two rules by hand. A download of the top
// rendition (2.15 MB) at 50 kB/s, 1 s after its first byte (80 ms in),
// has 42 s to go.
func TestAbandonRules(t *testing.T) {
	v := abandonVideo(10)
	lin, _ := NewQoE("lin")
	slow := Progress{Rendition: 2, Size: 2_150_000, Bytes: 50_000, Elapsed: 1080 * time.Millisecond, FirstByte: 80 * time.Millisecond}
	at := func(p Progress, buffer time.Duration) Progress { p.Buffer = buffer; return p }
	for _, c := range []struct {
		name, rule string
		p          Progress
		want       int // -1: go on
	}{
		// The stall rule. 10 s of buffer: going on stalls 32 s (4.3 −
		// 4.3·32); the middle rendition, 0.08 + 12 s, stalls 2.08 s (1.2
		// − 3.1 − 4.3·2.08 = −10.84); the lowest, 3.08 s, none (0.3 − 4).
		{"stall: the lowest saves the stall", AbandonStall, at(slow, 10*time.Second), 0},
		// 40 s of buffer: going on stalls 2 s (4.3 − 8.6 = −4.3); the
		// middle rendition none (1.2 − 3.1 = −1.9); the lowest −3.7.
		{"stall: the middle is worth its switch", AbandonStall, at(slow, 40*time.Second), 1},
		{"stall: in before the buffer runs out", AbandonStall, at(slow, 50*time.Second), -1},
		{"stall: within the grace", AbandonStall, at(Progress{Rendition: 2, Size: 2_150_000, Bytes: 10_000, Elapsed: 400 * time.Millisecond}, 0), -1},
		{"stall: the lowest has nothing below", AbandonStall, at(Progress{Rendition: 0, Size: 150_000, Bytes: 1_000, Elapsed: 5 * time.Second, FirstByte: 80 * time.Millisecond}, 0), -1},
		{"stall: no byte yet", AbandonStall, at(Progress{Rendition: 2, Size: 2_150_000, Elapsed: 5 * time.Second, FirstByte: 5 * time.Second}, 0), -1},
		// The throughput rule: 1.08 + 42 s is past 1.8 × 4 s, and 0.9 of
		// 400 kbit/s sustains the lowest only, smaller than what is left.
		{"throughput: past 1.8 chunk durations", AbandonThroughput, at(slow, 10*time.Second), 0},
		{"throughput: whatever the buffer", AbandonThroughput, at(slow, 50*time.Second), 0},
		// 1 MB in 1 s: 1.15 s to go, 2.23 s in all.
		{"throughput: fast enough", AbandonThroughput, at(Progress{Rendition: 2, Size: 2_150_000, Bytes: 1_000_000, Elapsed: 1080 * time.Millisecond, FirstByte: 80 * time.Millisecond}, 0), -1},
		// 150 kB of the lowest left to come is no more than it would be.
		{"throughput: the lower one is no smaller than the rest", AbandonThroughput, at(Progress{Rendition: 2, Size: 2_150_000, Bytes: 2_000_000, Elapsed: 40080 * time.Millisecond, FirstByte: 80 * time.Millisecond}, 0), -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := NewAbandoner(c.rule)
			if err != nil {
				t.Fatal(err)
			}
			st := &State{Video: v, Chunk: 5, Chunks: v.Chunks, Last: 2, QoE: lin}
			q, ok := a.Abandon(st, c.p)
			switch {
			case c.want < 0 && ok:
				t.Errorf("abandoned for rendition %d, want the download to go on", q)
			case c.want >= 0 && (!ok || q != c.want):
				t.Errorf("got (%d, %v), want abandoned for rendition %d", q, ok, c.want)
			}
		})
	}
	for _, name := range []string{"", "none"} {
		if a, err := NewAbandoner(name); a != nil || err != nil {
			t.Errorf("NewAbandoner(%q) = %v, %v: want no rule", name, a, err)
		}
	}
	if _, err := NewAbandoner("bola"); err == nil {
		t.Error("an unknown rule was taken")
	}
}

// TestTraceLinkAbandons: the link asks every AbandonEvery after the wait,
// with what came so far, and stops where the download is given up; the
// clock goes on from there.
func TestTraceLinkAbandons(t *testing.T) {
	link := NewTraceLink(stepTrace([2]float64{0, 0.4}), 1, 80*time.Millisecond) // 50 kB/s
	var asked []Progress
	dl, err := link.Fetch(context.Background(), Request{Rendition: 2, Size: 2_150_000, Abandon: func(p Progress) bool {
		asked = append(asked, p)
		return p.Elapsed >= time.Second
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 10 {
		t.Fatalf("asked %d times, want 10 (every 100 ms from 180 ms to 1.08 s)", len(asked))
	}
	for i, p := range asked {
		body := float64(i+1) * 0.1
		if p.FirstByte != 80*time.Millisecond || (p.Elapsed-seconds(0.08+body)).Abs() > time.Microsecond ||
			math.Abs(float64(p.Bytes)-50_000*body) > 1 || p.Size != 2_150_000 || p.Rendition != 2 {
			t.Errorf("ask %d: %+v, want %.0f bytes %.2f s in", i, p, 50_000*body, 0.08+body)
		}
	}
	if !dl.Abandoned || dl.Bytes != 50_000 || (dl.LastByte-1080*time.Millisecond).Abs() > time.Microsecond || link.Now() != dl.LastByte {
		t.Errorf("download %+v, clock %v: want abandoned with 50 000 bytes at 1.08 s", dl, link.Now())
	}
	// The next download starts where that one stopped: 50 000 bytes in 1 s.
	next, err := link.Fetch(context.Background(), Request{Size: 50_000})
	if err != nil || (next.LastByte-dl.LastByte-1080*time.Millisecond).Abs() > time.Microsecond {
		t.Errorf("next download %+v (%v): want it 1.08 s after the first stopped", next, err)
	}

	// Asked but never giving up, the link carries a download as it
	// does unasked, over rows of every length.
	tr, err := LoadTraces([]string{testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{1, 90_000, 1_500_000, 40_000_000} {
		plain, asked := NewTraceLink(tr[0], 0.95, 80*time.Millisecond), NewTraceLink(tr[0], 0.95, 80*time.Millisecond)
		for range 3 {
			a, err1 := plain.Fetch(context.Background(), Request{Size: size})
			b, err2 := asked.Fetch(context.Background(), Request{Size: size, Abandon: func(Progress) bool { return false }})
			if err1 != nil || err2 != nil || b.Abandoned || (a.LastByte-b.LastByte).Abs() > time.Microsecond || a.Bytes != b.Bytes {
				t.Fatalf("%d bytes: unasked %+v, asked %+v (%v, %v)", size, a, b, err1, err2)
			}
		}
	}
}

// TestSessionAbandons: a session that keeps asking for the top rendition
// on a link that falls from 8 to 0.4 Mbit/s gives up the downloads that
// would stall, fetches those chunks at a lower rendition, counts the time
// lost in their download time, and scores better than without; the
// throughput rule abandons too; and a session without a rule never does.
func TestSessionAbandons(t *testing.T) {
	v := abandonVideo(10)
	top := &replay{seq: []int{2, 2, 2, 2, 2, 2, 2, 2, 2, 2}}
	tr := stepTrace([2]float64{0, 8}, [2]float64{7, 0.4})
	cfg := DefaultConfig()
	plain := runSim(t, v, tr, top, cfg)
	if plain.Abandoned != 0 {
		t.Fatalf("no rule, %d abandoned", plain.Abandoned)
	}
	for _, rule := range AbandonRules() {
		cfg.Abandon, _ = NewAbandoner(rule)
		res := runSim(t, v, tr, top, cfg)
		if res.Abandoned == 0 || res.AbandonedBytes == 0 {
			t.Errorf("%s: nothing abandoned", rule)
			continue
		}
		logged := 0
		for _, l := range res.Log {
			logged += l.Abandoned
			if l.Abandoned > 0 && (l.Rendition == 2 || l.DownloadTime < abandonGrace+seconds(float64(v.Size(l.Chunk-1, l.Rendition))/1e6)) {
				t.Errorf("%s: chunk %d abandoned %d times, then rendition %d in %v: want a lower one, after the grace and its own download",
					rule, l.Chunk, l.Abandoned, l.Rendition, l.DownloadTime)
			}
		}
		if logged != res.Abandoned {
			t.Errorf("%s: the log counts %d abandoned, the result %d", rule, logged, res.Abandoned)
		}
		// The session plot crosses each chunk given up, where its first
		// download began, at the rendition it came at.
		var marks plotter.XYs
		for _, l := range res.Log {
			if l.Abandoned > 0 {
				marks = append(marks, plotter.XY{X: (l.Time - l.DownloadTime).Seconds(), Y: v.Bitrates[l.Rendition]})
			}
		}
		if got := abandonedAt(res.Log); !slices.Equal(got, marks) || len(got) == 0 {
			t.Errorf("%s: plot marks %v, want %v", rule, got, marks)
		}
		if rule == AbandonStall && (res.QoE <= plain.QoE || res.Rebuffer >= plain.Rebuffer) {
			t.Errorf("stall rule: QoE %.2f, stalls %v; without it %.2f, %v", res.QoE, res.Rebuffer, plain.QoE, plain.Rebuffer)
		}
	}
	// Live, 12 s behind the edge: the chunk fetched again is waited for
	// as any other, and every chunk plays.
	live, err := Simulate(context.Background(), SimOptions{Video: v, Traces: []*Trace{tr}, Algorithms: []string{"throughput"}, Live: 12 * time.Second, Abandon: AbandonStall})
	if err != nil || live[0].Abandoned == 0 || live[0].Chunks != v.Chunks {
		t.Errorf("live: %+v (%v): want every chunk, some abandoned", live, err)
	}
}

// TestOptimumAboveAbandoningSessions: the optimum, which never abandons,
// stays at or above every algorithm that does, trace by trace. Among the
// traces is one on which the throughput rule, giving up the first chunk
// (fetched at rendition 1 in Pensieve's mode, its startup unscored),
// started later on the trace and beat it by 11.
func TestOptimumAboveAbandoningSessions(t *testing.T) {
	v := loadEnvivio(t)
	var traces []*Trace
	for _, fam := range []string{"fcc", "hsdpa"} {
		ts, err := LoadTraces([]string{testdata("traces", fam)})
		if err != nil {
			t.Fatal(err)
		}
		traces = append(traces, ts[:6]...)
	}
	amazon, err := LoadTraces([]string{testdata("traces", "fcc", "trace_32551_http---www.amazon.com")})
	if err != nil {
		t.Fatal(err)
	}
	traces = append(traces, amazon...)
	for _, rule := range AbandonRules() {
		res, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Algorithms: append(Algorithms(), Optimal), Pensieve: true, Abandon: rule})
		if err != nil {
			t.Fatal(err)
		}
		best := optimalByTrace(res)
		abandoned := 0
		for _, r := range res {
			abandoned += r.Abandoned
			if r.ABR == Optimal && (r.Abandoned != 0 || r.AbandonRule != "") {
				t.Errorf("%s: the optimum abandoned %d (rule %q)", r.Trace, r.Abandoned, r.AbandonRule)
			}
			if r.ABR != Optimal && r.QoE > best[r.Trace]+1e-9 {
				t.Errorf("%s: %s with the %s rule scores %.4f, above the optimum's %.4f", r.Trace, r.ABR, rule, r.QoE, best[r.Trace])
			}
		}
		if abandoned == 0 {
			t.Errorf("%s: no session abandoned a download", rule)
		}
	}
}

// TestFetchAbandonsAStalledBody: over HTTP, a body that stops coming is
// given up while the read waits, the request is cancelled (the server
// sees its client go), and what came is returned.
func TestFetchAbandonsAStalledBody(t *testing.T) {
	gone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2150000")
		w.Write(make([]byte, 10_000))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(gone)
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	f := &HTTPFetcher{Client: srv.Client(), Clock: NewWallClock()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var asked int
	start := time.Now()
	dl, err := f.Fetch(ctx, Request{URL: srv.URL + "/seg", Rendition: 2, Size: 1, Abandon: func(p Progress) bool {
		asked++
		return p.Elapsed >= 600*time.Millisecond && p.Bytes == 10_000 && p.Size == 2_150_000
	}})
	if err != nil || !dl.Abandoned || dl.Bytes != 10_000 || asked < 6 {
		t.Fatalf("download %+v (%v), asked %d times: want it given up after 10 000 bytes", dl, err, asked)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("given up after %v", took)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Error("the server never saw the request cancelled")
	}
}
