package player

import "math"

// Deepcast is our own ABR: hedged model-predictive control with a value on
// the buffer it leaves behind.
//
// RobustMPC plans every sequence against one pessimistic throughput (the
// harmonic mean of the last 5 downloads divided by 1 + the worst recent
// prediction error) and values nothing after its 5-chunk horizon, so it
// spends buffer greedily inside the horizon and is caught out by the next
// drop. Deepcast changes two things. It scores each rendition sequence by
// its expected QoE (the session's model, State.QoE; QoE_lin unless set)
// over three throughput scenarios: the robust prediction and a
// half-discounted one (harmonic mean / (1 + max error/2)), 45% each,
// where the max error is over the last 10 predictions rather than 5, and,
// 10%, the harmonic mean with a fixed 30% margin whatever the recent
// errors. So a plan that only works if the worst case never comes
// is not chosen, one that would starve only in the worst case is not
// thrown away, and one outage (whose error stays in the memory for ten
// chunks, and which the lagging harmonic mean follows with more large
// errors) does not leave every scenario at a fraction of the link that
// came back. And it adds a terminal value for the buffer left at the
// end of the horizon (each second up to 20 s worth twice the lowest
// rendition's bitrate per chunk duration, and never more than the chunks
// after the horizon can still play), which makes the plan build and keep a
// cushion for the outages that dominate rebuffering on real traces, and
// spend it as the video ends. Until its memory holds ten errors, it also
// takes the worst error to be at least 40 %: a link it has measured once
// or twice is not one it knows, and the first samples of a session said
// nothing about the drops to come (without this, one fast first download
// sent it from the start rendition to the top and back down again).
// And once the buffer holds 10 s, it never chooses below what BOLA would:
// its scenarios are pessimistic by design, and with a deep buffer that
// pessimism keeps it at low renditions long after a drop (one deep dip
// stays in the error memory for ten chunks) while the buffer-based rule,
// which is what a deep buffer is for, climbs. It is the switch dash.js's
// DYNAMIC rule makes between throughput and BOLA, as a floor under the
// plan rather than a hand-over.
// On a live stream its plans, as robustMPC's, count on no more buffer than
// a live buffer can hold.
// Its constants are fixed for every trace and video.
type Deepcast struct {
	Horizon  int // chunks; 5 when zero
	name     string
	errors   []float64
	lastPred float64
	// unprimed leaves the start prior and the BOLA floor out: the learned
	// policy's features and rollouts come from the MPC its shipped model
	// was trained with.
	unprimed bool
	bola     BOLA // the floor's rule (cautious), kept per session (its startup phase)
}

// Deepcast's fixed constants.
const (
	deepcastBufferValue  = 2.0  // × lowest bitrate per chunk-duration of buffer
	deepcastBufferTarget = 20.0 // seconds of buffer that still earn value
	// deepcastErrorMemory is how many past predictions the worst error is
	// taken over: 10 chunks (40 s of a 4 s-chunk video) against robustMPC's
	// 5, so one calm stretch does not erase the memory of a volatile link.
	deepcastErrorMemory = 10
	// deepcastSteadyMargin and deepcastSteadyWeight make the third
	// scenario: the prediction less a fixed margin, with a small weight.
	deepcastSteadyMargin = 0.3
	deepcastSteadyWeight = 0.1
	// deepcastStartError is the least worst error assumed while the
	// memory is not yet full. Chosen on fcc and hsdpa from 0, 0.1, 0.25,
	// 0.4, 0.5 and 1 (player/README.md has the cross-validation).
	deepcastStartError = 0.4
	// deepcastBolaBuffer is the buffer (seconds) from which BOLA's choice
	// is a floor. Chosen on fcc and hsdpa from 0, 5, 10, 12, 15, 18, 20,
	// 25 and 35 (player/README.md has the cross-validation).
	deepcastBolaBuffer = 10.0
)

// Name implements ABR.
func (d *Deepcast) Name() string {
	if d.name == "" {
		return DeepcastMPC
	}
	return d.name
}

// Choose implements ABR.
func (d *Deepcast) Choose(s *State) int {
	if len(s.History) == 0 {
		return 0
	}
	actual := s.History[len(s.History)-1].Kbps()
	if d.lastPred > 0 && actual > 0 {
		d.errors = append(d.errors, math.Abs(d.lastPred-actual)/actual)
	}
	pred := HarmonicMean(s.History, 5)
	d.lastPred = pred
	maxErr := d.worstError()
	h := d.Horizon
	if h <= 0 {
		h = 5
	}
	h = max(1, min(h, s.Chunks-s.Chunk))
	scenarios := []float64{pred / (1 + maxErr), pred / (1 + maxErr/2), pred / (1 + deepcastSteadyMargin)}
	hedged := (1 - deepcastSteadyWeight) / 2
	weights := []float64{hedged, hedged, deepcastSteadyWeight}
	// Buffer left when the last chunk is in never plays out as a saved
	// stall, so near the end only what the remaining chunks can use counts.
	target := math.Min(deepcastBufferTarget, float64(s.Chunks-s.Chunk-h)*s.ChunkSeconds())
	q := planScenarios(s, h, scenarios, weights, deepcastBufferValue, target)
	if d.unprimed {
		return q
	}
	// BOLA chooses every chunk, so its startup phase ends when it would.
	d.bola.cautious = true
	if b := d.bola.Choose(s); b > q && s.Buffer.Seconds() >= deepcastBolaBuffer {
		q = b
	}
	return q
}

// worstError is the error the pessimistic scenarios plan with: the
// memory's largest, and no less than the start prior before the memory
// is full.
func (d *Deepcast) worstError() float64 {
	e := d.maxError()
	if !d.unprimed && len(d.errors) < deepcastErrorMemory {
		e = math.Max(e, deepcastStartError)
	}
	return e
}

// maxError is the largest relative prediction error in the memory.
func (d *Deepcast) maxError() float64 {
	m := 0.0
	for i := max(0, len(d.errors)-deepcastErrorMemory); i < len(d.errors); i++ {
		m = math.Max(m, d.errors[i])
	}
	return m
}

// planScenarios scores every rendition sequence of length h by its weighted
// QoE (the session's model, State.QoE) over the throughput scenarios
// (kbit/s, each constant over the horizon) plus value × min(buffer left,
// target) per chunk duration at the lowest bitrate, and returns the best
// sequence's first rendition. The buffer's value is QoE_lin's, in its
// units: under another model it is scaled by the model's price of a
// stalled second against QoE_lin's, for what a second of buffer saves is
// a second of stall. Each prefix is evaluated once for all scenarios.
func planScenarios(s *State, h int, bw, weight []float64, value, target float64) int {
	br := s.Bitrates()
	n := len(br)
	k := len(bw)
	last := max(s.Last, 0)
	chunkSec := s.ChunkSeconds()
	ceiling := s.planCeiling()
	t := s.planTerms()
	worth := value * (t.stall / linStallPrice) // value itself under QoE_lin
	best, bestFirst := math.Inf(-1), 0
	bufs := make([][]float64, h+1)
	stalled := make([][]float64, h+1) // stall planned so far, for t.lag
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
