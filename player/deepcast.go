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
	// plan searches the horizon: planScenarios when nil (a test puts an
	// exhaustive walk beside it).
	plan func(s *State, h int, bw, weight []float64, value, target float64) int
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
	plan := d.plan
	if plan == nil {
		plan = planScenarios
	}
	q := plan(s, h, scenarios, weights, deepcastBufferValue, target)
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
//
// The search is branch and bound: a prefix is dropped when even the best
// it could still earn (the highest chunk term a step allows, no stall,
// the most buffer the remaining steps could add) falls short of the best
// sequence so far, and the search starts from the best constant
// sequence so that bound bites early. It returns what scoring every
// sequence returns, ties included (the sequence last in rendition order
// wins, as an exhaustive walk that keeps the last best leaf); a test
// holds it to that walk on bundled traces, and the bound above every
// prefix's best on random states.
func planScenarios(s *State, h int, bw, weight []float64, value, target float64) int {
	p := newScenarioPlan(s, h, bw, weight, value, target)
	for q := range p.n {
		p.constant(q)
	}
	p.walk(0, p.last, 0)
	return max(p.bestFirst, 0)
}

// scenarioPlan is one decision's search state.
type scenarioPlan struct {
	h, n, k          int
	last             int
	weight           []float64
	t                *planTerms
	chunkSec, target float64
	ceiling          float64
	// worth is the buffer's value, in the model's units: the value
	// planScenarios is given, scaled by the model's price of a stall.
	worth float64
	br0   float64 // the lowest bitrate, which a second of buffer is valued at
	// dl[(step·n+q)·k+j] is chunk step's download time at rendition q
	// in scenario j (+Inf for a scenario without throughput).
	dl []float64
	// bufs and stalled per step and scenario along the current prefix;
	// rews is its summed chunk terms.
	bufs, stalled [][]float64
	rews          []float64
	// headroom[step] bounds what steps step…h-1 can add: the largest
	// chunk term over every pair of renditions, each step.
	headroom []float64
	prune    bool
	bestV    float64
	// bestFirst is the best sequence's first rendition; -1 before any.
	bestFirst int
}

// newScenarioPlan sets a decision's search up: each step's download
// times, the state along a prefix, and the bound's headroom (when the
// model's terms allow a bound).
func newScenarioPlan(s *State, h int, bw, weight []float64, value, target float64) *scenarioPlan {
	br := s.Bitrates()
	n, k := len(br), len(bw)
	t := s.planTerms()
	p := &scenarioPlan{h: h, n: n, k: k, last: max(s.Last, 0), weight: weight, t: t,
		chunkSec: s.ChunkSeconds(), target: target, ceiling: s.planCeiling(),
		worth: value * (t.stall / linStallPrice), br0: br[0], bestV: math.Inf(-1), bestFirst: -1}
	// One allocation for the figures of a decision, which runs per chunk.
	mem := make([]float64, h*n*k+2*(h+1)*k)
	p.dl, mem = mem[:h*n*k], mem[h*n*k:]
	for step := range h {
		for q := range n {
			kbits := float64(s.Video.Size(s.Chunk+step, q)) * 8 / 1000
			for j := range k {
				dl := math.Inf(1)
				if bw[j] > 0 {
					dl = kbits / bw[j]
				}
				p.dl[(step*n+q)*k+j] = dl
			}
		}
	}
	p.bufs, p.stalled = make([][]float64, h+1), make([][]float64, h+1)
	for i := range p.bufs {
		p.bufs[i], p.stalled[i], mem = mem[:k:k], mem[k:2*k:2*k], mem[2*k:]
	}
	for j := range k {
		p.bufs[0][j] = s.Buffer.Seconds()
	}
	p.rews = make([]float64, h+1)
	// The bound holds only where every term it leaves out can only lower
	// a score: stall and lag priced, weights and the buffer's worth not
	// negative, and every figure a number.
	p.prune = t.stall >= 0 && t.lag >= 0 && p.worth >= 0 && !math.IsInf(p.worth, 0)
	for _, w := range weight {
		p.prune = p.prune && w >= 0 && !math.IsInf(w, 0)
	}
	step := math.Inf(-1)
	for prev := range n {
		for q := range n {
			step = math.Max(step, t.util[q]-t.switching[prev*n+q])
		}
	}
	p.prune = p.prune && !math.IsNaN(step) && !math.IsInf(step, 0)
	p.headroom = make([]float64, h+1)
	for i := h - 1; i >= 0; i-- {
		p.headroom[i] = p.headroom[i+1] + step
	}
	return p
}

// advance scores chunk step at rendition q after prev, from the prefix's
// state at step into step+1.
func (p *scenarioPlan) advance(step, prev, q int) {
	t := p.t
	exp := t.util[q] - t.switching[prev*p.n+q]
	dls := p.dl[(step*p.n+q)*p.k:][:p.k]
	for j := range p.k {
		dl := dls[j]
		b, st := p.bufs[step][j], p.stalled[step][j]
		if b < dl {
			exp -= p.weight[j] * t.stall * (dl - b)
			st += dl - b
			b = 0
		} else {
			b -= dl
		}
		if t.lag != 0 {
			exp -= p.weight[j] * t.lag * st
		}
		p.bufs[step+1][j], p.stalled[step+1][j] = min(b+p.chunkSec, p.ceiling), st
	}
	p.rews[step+1] = p.rews[step] + exp
}

// terminal is the buffer's value: what the sequence ending with bufs
// leaves, or (bound) the most it could leave from bufs in rem more steps.
func (p *scenarioPlan) terminal(bufs []float64, rem int) float64 {
	v := 0.0
	if p.target <= 0 {
		return v
	}
	for j := range p.k {
		b := bufs[j]
		if rem > 0 {
			b = min(b+float64(rem)*p.chunkSec, p.ceiling)
		}
		v += p.weight[j] * p.worth * math.Min(b, p.target) / p.chunkSec * p.br0 / 1000
	}
	return v
}

// score is the whole sequence's score, its terms summed in the
// exhaustive walk's order so that equal sequences score equal to the
// last bit.
func (p *scenarioPlan) score() float64 {
	v := p.rews[p.h]
	for j := range p.k {
		if p.target <= 0 {
			break
		}
		v += p.weight[j] * p.worth * math.Min(p.bufs[p.h][j], p.target) / p.chunkSec * p.br0 / 1000
	}
	return v
}

// bound is the most a sequence beginning with the prefix at step can
// score.
func (p *scenarioPlan) bound(step int) float64 {
	return p.rews[step] + p.headroom[step] + p.terminal(p.bufs[step], p.h-step)
}

// leaf keeps the whole sequence if it is the best so far.
func (p *scenarioPlan) leaf(first int) {
	v := p.score()
	// On a tie the later sequence in rendition order wins, which is the
	// one with the higher first rendition.
	if v > p.bestV || (v == p.bestV && first > p.bestFirst) {
		p.bestV, p.bestFirst = v, first
	}
}

// constant scores the sequence that stays at rendition q.
func (p *scenarioPlan) constant(q int) {
	prev := p.last
	for step := range p.h {
		p.advance(step, prev, q)
		prev = q
	}
	p.leaf(q)
}

// walk tries every continuation of the prefix in state step (prev the
// rendition of its last chunk, first that of its first), highest
// rendition first, dropping those that cannot beat the best.
func (p *scenarioPlan) walk(step, prev, first int) {
	if step == p.h {
		p.leaf(first)
		return
	}
	if p.prune && step > 0 {
		bound := p.bound(step)
		// A margin for rounding: the bound's sum is not the leaves', and
		// a near tie must still be scored.
		if bound < p.bestV-1e-9*(1+math.Abs(p.bestV)+math.Abs(bound)) {
			return
		}
	}
	for q := p.n - 1; q >= 0; q-- {
		f := first
		if step == 0 {
			f = q
		}
		p.advance(step, prev, q)
		p.walk(step+1, q, f)
	}
}
