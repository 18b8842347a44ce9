package player

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// asSabre writes tr in Sabre's network format, every period with the
// given latency.
func asSabre(tr *Trace, latencyMS float64) string {
	var b strings.Builder
	b.WriteString("[\n")
	for i := 1; i < len(tr.Time); i++ {
		if i > 1 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `  {"duration_ms": %v, "bandwidth_kbps": %v, "latency_ms": %v}`,
			(tr.Time[i]-tr.Time[i-1])*1000, tr.Mbps[i]*1000, latencyMS)
	}
	b.WriteString("\n]\n")
	return b.String()
}

func TestSabreTraces(t *testing.T) {
	tr, err := ParseTrace(strings.NewReader(`
	[{"duration_ms": 148, "bandwidth_kbps": 3133, "latency_ms": 20},
	 {"duration_ms": 1000, "bandwidth_kbps": 18052, "latency_ms": 35, "note": "ignored"}]`), "bus")
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0, 0.148, 1.148}; !slices.Equal(tr.Time, want) {
		t.Errorf("times %v, want %v", tr.Time, want)
	}
	if want := []float64{3.133, 3.133, 18.052}; !slices.Equal(tr.Mbps, want) {
		t.Errorf("rates %v, want %v", tr.Mbps, want)
	}
	if want := []float64{0.02, 0.02, 0.035}; !slices.Equal(tr.Latency, want) {
		t.Errorf("latencies %v, want %v", tr.Latency, want)
	}
	if tr, err := ParseTrace(strings.NewReader(`[{"duration_ms": 1000, "bandwidth_kbps": 500}]`), "nolat"); err != nil || tr.Latency != nil {
		t.Errorf("a trace without latency: %v, latency %v", err, tr)
	}
	for _, c := range []struct{ in, want string }{
		{`[{"duration_ms": 10}]`, "period 0: needs duration_ms and bandwidth_kbps"},
		{`[{"duration_ms": 0, "bandwidth_kbps": 1}]`, "period 0: duration_ms 0 is not a time from 1 ms"},
		{`[{"duration_ms": 0.5, "bandwidth_kbps": 1}]`, "period 0: duration_ms 0.5 is not a time from 1 ms"},
		{`[{"duration_ms": 5, "bandwidth_kbps": -1}]`, "bandwidth_kbps -1 is not a rate"},
		{`[{"duration_ms": 5, "bandwidth_kbps": 1, "latency_ms": 2}, {"duration_ms": 5, "bandwidth_kbps": 1}]`, "period 1: latency_ms is given in some periods and not in others"},
		{`[{"duration_ms": 5, "bandwidth_kbps": 1}, {"duration_ms": 5, "bandwidth_kbps": 1, "latency_ms": 2}]`, "period 1: latency_ms is given in some periods"},
		{`[{"duration_ms": 5, "bandwidth_kbps": 1, "latency_ms": 61000}]`, "latency_ms 61000 is not a delay from 0 to 60000"},
		{`[{"duration_ms": "5", "bandwidth_kbps": 1}]`, "period 0: duration_ms should be a JSON number, not a JSON string"},
		{`[{"duration_ms": 5, "bandwidth_kbps": 1}] [`, "text after the Sabre trace's array"},
		{`[{"duration_ms": 5, "bandwidth_kbps": 1}`, "the JSON ends early"},
		{`[{"duration_ms": 5, "bandwidth_kbps": 1},, ]`, "broken JSON at byte"},
		{`[]`, "needs at least one period"},
		{`[{"duration_ms": 5, "bandwidth_kbps": 0}]`, "carries no data at all"},
		{`["x"]`, "period 0: a period should be a JSON object, not a JSON string"},
		{`[{"duration_ms": 5, "bandwidth_kbps": [1]}]`, "period 0: bandwidth_kbps should be a JSON number, not a JSON array"},
	} {
		if _, err := ParseTrace(strings.NewReader(c.in), "s"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
	// Lines are still counted from the top after leading blank lines.
	if _, err := ParseTrace(strings.NewReader("\n\n 0 1\n0 2\n"), "x"); err == nil || !strings.Contains(err.Error(), "line 4: time 0 does not increase") {
		t.Errorf("an error after blank lines: %v", err)
	}
}

// TestSabreLatency checks the link against Sabre's model worked by hand:
// a request's latency is spent along the trace, carrying on at the next
// period's latency for the share of it left when a period ends.
func TestSabreLatency(t *testing.T) {
	// 50 ms at 8 Mbit/s (1 MB/s) with 80 ms of latency, then 8 Mbit/s
	// with 20 ms, then 2 Mbit/s with 100 ms.
	tr, err := ParseTrace(strings.NewReader(`[
		{"duration_ms": 50, "bandwidth_kbps": 8000, "latency_ms": 80},
		{"duration_ms": 1000, "bandwidth_kbps": 8000, "latency_ms": 20},
		{"duration_ms": 1000, "bandwidth_kbps": 2000, "latency_ms": 100}]`), "hand")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The RTT is not added: the trace's latency takes its place.
	link := NewTraceLink(tr, 1, 80*time.Millisecond)
	ms := func(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Millisecond))) }
	round := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	for i, c := range []struct {
		size             int64
		first, last      time.Duration
		sleepAfter, note string
	}{
		// 50 ms of the first period's 80 (5/8 of the latency), then the
		// rest, 3/8, at 20 ms: 7.5 ms. Then 100 kB at 1 MB/s.
		{100_000, ms(57.5), ms(157.5), "", "a latency across two periods"},
		// From 107.5 ms into the second period: 20 ms, then 100 kB.
		{100_000, ms(177.5), ms(277.5), "", "within a period"},
		// At 277.5 ms: 20 ms, then 752.5 kB fill the second period to its
		// end (1050 ms), and 100 kB more at 250 kB/s take 400 ms.
		{852_500, ms(297.5), ms(1450), "", "a download across periods"},
	} {
		d, err := link.Fetch(ctx, Request{Size: c.size})
		if err != nil {
			t.Fatal(err)
		}
		if round(d.FirstByte) != c.first || round(d.LastByte) != c.last {
			t.Errorf("fetch %d (%s): first byte at %v, last at %v; want %v, %v", i, c.note, round(d.FirstByte), round(d.LastByte), c.first, c.last)
		}
	}
	// The trace loops after 2050 ms: sleeping 1.6 s from 1450 ms lands
	// 950 ms into the second loop's second period (20 ms of latency).
	if err := link.Sleep(ctx, 1600*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	d, err := link.Fetch(ctx, Request{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := round(d.FirstByte-d.Sent), ms(20); got != want {
		t.Errorf("after the loop: latency %v, want %v", got, want)
	}

	// The shaper of play -trace waits the same latency from the same
	// moment: at its start, the 57.5 ms of the first request above.
	if got, ok := NewShaper(tr).Latency(); !ok || (round(got)-ms(57.5)).Abs() > 2*time.Millisecond {
		t.Errorf("the shaper's first latency is %v (%v), want about 57.5 ms", got, ok)
	}
	if got, ok := NewShaper(constTrace(5)).Latency(); ok || got != 0 {
		t.Errorf("a trace without latency has the shaper wait %v (%v)", got, ok)
	}
}

// TestSabreTracesMatchTheOriginals reads fcc and hsdpa traces written in
// Sabre's format: with no latency they are the same links as the
// two-column originals, and every algorithm, the optimum included, scores
// the same on them. With latency, the optimum still tops every algorithm
// on every trace (its dynamic program steps the same link).
func TestSabreTracesMatchTheOriginals(t *testing.T) {
	var originals []*Trace
	for _, fam := range []string{"fcc", "hsdpa"} {
		ts, err := LoadTraces([]string{testdata("traces", fam)})
		if err != nil {
			t.Fatal(err)
		}
		originals = append(originals, ts[:4]...)
	}
	read := func(latencyMS float64) []*Trace {
		dir := t.TempDir()
		for _, tr := range originals {
			if err := os.MkdirAll(filepath.Join(dir, tr.Family), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tr.Family, tr.Name), []byte(asSabre(tr, latencyMS)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ts, err := LoadTraces([]string{filepath.Join(dir, "fcc"), filepath.Join(dir, "hsdpa")})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	ctx := context.Background()
	v := loadEnvivio(t)
	algs := []string{"bola", "robustmpc", "deepcast", Optimal}
	run := func(ts []*Trace) []SimResult {
		res, err := Simulate(ctx, SimOptions{Video: v, Traces: ts, Algorithms: algs, Jobs: 2})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	want := run(originals)
	for i, r := range run(read(0)) {
		w := want[i]
		if math.Abs(r.QoE-w.QoE) > 1e-6*math.Max(1, math.Abs(w.QoE)) || r.MeanBitrate != w.MeanBitrate || r.Switches != w.Switches {
			t.Errorf("%s %s: QoE %.6f over the Sabre trace, %.6f over the original", want[i].Trace, r.ABR, r.QoE, want[i].QoE)
		}
	}
	// With 40 ms of latency a request the optimum stays on top. (Whether
	// a session scores less is not settled: the latency is in the
	// throughput the algorithms measure, which makes them more careful,
	// and shifts where each download falls on the trace.)
	withLatency := run(read(40))
	for i := 0; i < len(withLatency); i += len(algs) {
		best := withLatency[i+len(algs)-1]
		for _, r := range withLatency[i : i+len(algs)-1] {
			if r.QoE > best.QoE+1e-9 {
				t.Errorf("%s: %s scores %.3f, above the optimum's %.3f", r.Trace, r.ABR, r.QoE, best.QoE)
			}
		}
	}
	same := 0
	for i := range want {
		if withLatency[i].QoE == want[i].QoE {
			same++
		}
	}
	if same == len(want) {
		t.Errorf("40 ms of latency a request changed no session")
	}
}

func TestSabreVideo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bbb.json")
	if err := os.WriteFile(path, []byte(`{"segment_duration_ms": 3000, "bitrates_kbps": [1000, 2500],
		"segment_sizes_bits": [[3547744, 9006137], [2785344, 6937312]]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := LoadVideo(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "bbb" || v.ChunkDuration != 3*time.Second || v.Chunks != 2 || !slices.Equal(v.Bitrates, []float64{1000, 2500}) ||
		!slices.Equal(v.Sizes[0], []int64{443468, 1125768}) || !slices.Equal(v.Sizes[1], []int64{348168, 867164}) {
		t.Errorf("read %s %v %d chunks %v %v", v.Name, v.ChunkDuration, v.Chunks, v.Bitrates, v.Sizes)
	}
	for _, c := range []struct{ in, want string }{
		{`{"bitrates_kbps": [1], "segment_sizes_bits": [[8]]}`, "needs segment_duration_ms, bitrates_kbps and segment_sizes_bits"},
		{`{"segment_duration_ms": 0, "bitrates_kbps": [1], "segment_sizes_bits": [[8]]}`, "segment_duration_ms 0 is not a segment length"},
		{`{"segment_duration_ms": 1000, "bitrates_kbps": [], "segment_sizes_bits": [[8]]}`, "0 bitrates, want 1 to 32"},
		{`{"segment_duration_ms": 1000, "bitrates_kbps": [2, 1], "segment_sizes_bits": [[8, 8]]}`, "must be positive and increase (bitrate 1 is 1)"},
		{`{"segment_duration_ms": 1000, "bitrates_kbps": [1, 2], "segment_sizes_bits": [[8, 8], [8]]}`, "segment 1: 1 sizes for 2 bitrates"},
		{`{"segment_duration_ms": 1000, "bitrates_kbps": [1], "segment_sizes_bits": [[0]]}`, "segment 0: size 0 is not a positive number of bits"},
		{`{"segment_duration_ms": 1000, "bitrates_kbps": [1], "segment_sizes_bits": []}`, "0 segments"},
		{`{"segment_duration_ms": 1000, "bitrates_kbps": "1", "segment_sizes_bits": [[8]]}`, "bitrates_kbps should be a JSON array, not a JSON string"},
		{`[{"duration_ms": 1000, "bandwidth_kbps": 1}]`, "not a Sabre video manifest"},
		{`{"segment_duration_ms": 1000, "bitrates_kbps": [1], "segment_sizes_bits": [[8]]} {}`, "text after the Sabre manifest's object"},
	} {
		if _, err := ParseSabreVideo(strings.NewReader(c.in), "v"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
}

func FuzzParseSabreVideo(f *testing.F) {
	f.Add(`{"segment_duration_ms": 3000, "bitrates_kbps": [1000, 2500], "segment_sizes_bits": [[3547744, 9006136], [2785344, 6937312]]}`)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSabreVideo(strings.NewReader(s), "fuzz")
		if err != nil {
			return
		}
		if v.ChunkDuration <= 0 || v.Chunks != len(v.Sizes) || v.Chunks == 0 {
			t.Fatalf("chunks %d of %v", v.Chunks, v.ChunkDuration)
		}
		for _, row := range v.Sizes {
			if len(row) != len(v.Bitrates) || slices.Min(row) <= 0 {
				t.Fatalf("sizes %v for %d bitrates", row, len(v.Bitrates))
			}
		}
	})
}

// TestPlayWaitsTheTracesLatency: over real HTTP, a request shaped by a
// trace that carries latency waits it before its first byte, in place of
// the fetcher's RTT; with a trace without latency the RTT is waited.
func TestPlayWaitsTheTracesLatency(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1000))
	}))
	defer srv.Close()
	withLatency, err := ParseTrace(strings.NewReader(`[{"duration_ms": 60000, "bandwidth_kbps": 100000, "latency_ms": 150}]`), "lat")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		trace *Trace
		rtt   time.Duration
		want  time.Duration
	}{
		{withLatency, 10 * time.Millisecond, 150 * time.Millisecond},
		{constTrace(100), 10 * time.Millisecond, 10 * time.Millisecond},
	} {
		clock := &sleepLog{}
		f := &HTTPFetcher{Client: srv.Client(), Clock: clock, RTT: c.rtt, Shaper: NewShaper(c.trace)}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := f.Fetch(ctx, Request{URL: srv.URL + "/seg", Size: 1000})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		// The shaper's clock has moved on by a few ms since it began.
		if len(clock.sleeps) != 1 || (clock.sleeps[0]-c.want).Abs() > 5*time.Millisecond {
			t.Errorf("%s: waited %v before the request, want %v", c.trace.Name, clock.sleeps, c.want)
		}
	}
}
