package player

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"
)

// recorder wraps an ABR and keeps, as a browser would see it, the state
// of every choice it is asked for.
type recorder struct {
	ABR
	states []BrowserState
	picks  []int
}

func (r *recorder) Choose(s *State) int {
	bs := BrowserState{Chunk: s.Chunk, Buffer: s.Buffer.Seconds(), MaxBuffer: s.MaxBuffer.Seconds(), Last: s.Last}
	for _, h := range s.History {
		bs.History = append(bs.History, BrowserSample{Bytes: h.Bytes, Ms: float64(h.Elapsed) / float64(time.Millisecond)})
	}
	q := r.ABR.Choose(s)
	r.states, r.picks = append(r.states, bs), append(r.picks, q)
	return q
}

// TestBrowserSessionDecidesAsTheSimulator: for every algorithm a player
// can run, on real traces, a BrowserSession (what the page's WebAssembly
// runs) fed the states a simulated session saw makes the simulator's
// choices, chunk by chunk: on demand, and on a live stream 8 s behind
// its edge (sim -live), where the page hands over the live delay.
func TestBrowserSessionDecidesAsTheSimulator(t *testing.T) {
	v := loadEnvivio(t)
	traces, err := LoadTraces([]string{testdata("traces", "hsdpa")})
	if err != nil || len(traces) < 3 {
		t.Fatalf("HSDPA traces: %v", err)
	}
	for _, live := range []time.Duration{0, 8 * time.Second} {
		bv := BrowserVideo{ChunkSeconds: v.ChunkDuration.Seconds(), Chunks: v.Chunks, Bitrates: v.Bitrates, Sizes: v.Sizes[:v.Chunks],
			LiveDelay: live.Seconds()}
		lv := *v
		lv.LiveDelay = live
		for _, name := range Algorithms() {
			decidesAsTheSimulator(t, &lv, bv, name, traces[:3])
		}
	}
}

// decidesAsTheSimulator checks a browser session of v (as bv describes
// it) against simulated ones of the named algorithm on traces.
func decidesAsTheSimulator(t *testing.T, v *Video, bv BrowserVideo, name string, traces []*Trace) {
	t.Helper()
	for _, tr := range traces {
		path := tr.Name
		abr, _ := NewABR(name)
		rec := &recorder{ABR: abr}
		cfg, link := simSetup(SimOptions{Video: v, Live: v.LiveDelay}, tr)
		q, _ := NewQoE("lin")
		if _, err := (&Session{Video: v, ABR: rec, QoE: q, Clock: link, Fetcher: link, Config: cfg}).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		bs, err := NewBrowserSession(name, bv)
		if err != nil {
			t.Fatal(err)
		}
		for i, st := range rec.states {
			q, err := bs.Choose(st)
			if err != nil {
				t.Fatalf("%s %s chunk %d: %v", name, filepath.Base(path), st.Chunk, err)
			}
			if q != rec.picks[i] {
				t.Fatalf("%s on %s (live delay %v), chunk %d: the browser session chose %d, the simulator %d", name, filepath.Base(path), v.LiveDelay, st.Chunk, q, rec.picks[i])
			}
			// Asked again for the same chunk: the same answer.
			if again, _ := bs.Choose(st); again != q {
				t.Fatalf("%s chunk %d asked twice: %d then %d", name, st.Chunk, q, again)
			}
		}
	}
}

func TestBrowserSessionRefusesBadInput(t *testing.T) {
	good := BrowserVideo{ChunkSeconds: 2, Chunks: 10, Bitrates: []float64{300, 1200}}
	for _, v := range []BrowserVideo{
		{ChunkSeconds: 0, Chunks: 10, Bitrates: []float64{300}},
		{ChunkSeconds: 2, Chunks: 0, Bitrates: []float64{300}},
		{ChunkSeconds: 2, Chunks: 10},
		{ChunkSeconds: 2, Chunks: 10, Bitrates: []float64{1200, 300}},
		{ChunkSeconds: 2, Chunks: 10, Bitrates: []float64{300, math.NaN()}},
		{ChunkSeconds: 2, Chunks: 2, Bitrates: []float64{300}, Sizes: [][]int64{{1}}},
		{ChunkSeconds: 2, Chunks: 10, Bitrates: []float64{300}, LiveDelay: -1},
		{ChunkSeconds: 2, Chunks: 10, Bitrates: []float64{300}, LiveDelay: math.NaN()},
		{ChunkSeconds: 2, Chunks: 10, Bitrates: []float64{300}, LiveDelay: 7200},
	} {
		if _, err := NewBrowserSession("deepcast", v); err == nil {
			t.Errorf("%+v accepted", v)
		}
	}
	if _, err := NewBrowserSession(Optimal, good); err == nil {
		t.Error("the offline optimum accepted for a browser")
	}
	s, err := NewBrowserSession("deepcast", good)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []BrowserState{{Chunk: 10}, {Chunk: 1, Last: 2}, {Chunk: 1, Buffer: -1}, {Chunk: 1, Buffer: math.NaN()}} {
		if _, err := s.Choose(st); err == nil {
			t.Errorf("%+v accepted", st)
		}
	}
	if _, err := s.Choose(BrowserState{Chunk: 3, Last: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Choose(BrowserState{Chunk: 2, Last: 0}); err == nil {
		t.Error("a session went back a chunk")
	}
}

// TestBrowserLiveSession: a live stream's session, as the page opens it
// (as many chunks as a session may run, no sizes, the live delay), keeps
// one row of sizes, holds no more buffer than the delay, and chooses to
// the last chunk.
func TestBrowserLiveSession(t *testing.T) {
	s, err := NewBrowserSession("deepcast", BrowserVideo{ChunkSeconds: 2, Chunks: maxBrowserChunks, Bitrates: []float64{300, 1200, 3000}, LiveDelay: 6})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.video.Sizes) != 1 || s.video.Size(maxBrowserChunks-1, 2) != 3000*1000/8*2 {
		t.Errorf("%d rows of sizes; the last chunk's top rendition %d bytes", len(s.video.Sizes), s.video.Size(maxBrowserChunks-1, 2))
	}
	st := &State{Video: s.video, MaxBuffer: 60 * time.Second}
	if c := st.BufferCapacity(); c != 6*time.Second {
		t.Errorf("a live buffer 6 s behind the edge can hold %v", c)
	}
	fast := []BrowserSample{{Bytes: 1_000_000, Ms: 100}, {Bytes: 1_000_000, Ms: 100}}
	if _, err := s.Choose(BrowserState{Chunk: maxBrowserChunks - 1, Buffer: 4, MaxBuffer: 60, Last: 1, History: fast}); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserSessionAbandons: the page's abandonment asks the stall rule
// sim and play run, with the segment's size when the page knows it and
// its rendition's bitrate's worth when not; what cannot be a download in
// progress is refused.
func TestBrowserSessionAbandons(t *testing.T) {
	s, err := NewBrowserSession("deepcast", BrowserVideo{ChunkSeconds: 4, Chunks: 10, Bitrates: []float64{300, 1200, 4300}})
	if err != nil {
		t.Fatal(err)
	}
	// TestAbandonRules's slow download: the lowest rendition saves the stall.
	slow := BrowserProgress{Chunk: 5, Rendition: 2, Bytes: 50_000, Size: 2_150_000, Ms: 1080, FirstByteMs: 80, Buffer: 10, Last: 2}
	for _, c := range []struct {
		name string
		edit func(*BrowserProgress)
		want int
	}{
		{"the lowest saves the stall", func(*BrowserProgress) {}, 0},
		{"the size unknown: the bitrate's worth", func(p *BrowserProgress) { p.Size = 0 }, 0},
		{"in before the buffer runs out", func(p *BrowserProgress) { p.Buffer = 50 }, -1},
		{"the first chunk, under QoE_lin", func(p *BrowserProgress) { p.Chunk, p.Last, p.Buffer = 0, -1, 0 }, -1},
		{"more bytes than the size", func(p *BrowserProgress) { p.Bytes = 3_000_000 }, -1},
	} {
		p := slow
		c.edit(&p)
		if q, err := s.Abandon(p); err != nil || q != c.want {
			t.Errorf("%s: %d (%v), want %d", c.name, q, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		edit func(*BrowserProgress)
	}{
		{"chunk past the end", func(p *BrowserProgress) { p.Chunk = 10 }},
		{"rendition out of range", func(p *BrowserProgress) { p.Rendition = 3 }},
		{"previous rendition out of range", func(p *BrowserProgress) { p.Last = -2 }},
		{"negative bytes", func(p *BrowserProgress) { p.Bytes = -1 }},
		{"first byte after the time", func(p *BrowserProgress) { p.FirstByteMs = 2000 }},
		{"NaN time", func(p *BrowserProgress) { p.Ms = math.NaN() }},
		{"buffer of hours", func(p *BrowserProgress) { p.Buffer = 1e6 }},
	} {
		p := slow
		c.edit(&p)
		if _, err := s.Abandon(p); err == nil {
			t.Errorf("%s: taken", c.name)
		}
	}
}
