package player

import "math"

// RobustMPC is robust model-predictive control (Yin et al., SIGCOMM 2015)
// as Pensieve evaluates it: predict throughput as the harmonic mean of the
// last 5 downloads divided by 1 + the largest relative prediction error of
// the last 5, then search every rendition sequence over the next Horizon
// chunks for the best linear QoE (bitrate − 4.3·rebuffer − |switch|) and
// take its first step.
type RobustMPC struct {
	Horizon  int
	errors   []float64
	lastPred float64
	havePred bool
}

// Name implements ABR.
func (m *RobustMPC) Name() string { return "robustmpc" }

// Choose implements ABR.
func (m *RobustMPC) Choose(s *State) int {
	if len(s.History) == 0 {
		return 0
	}
	actual := s.History[len(s.History)-1].Kbps()
	cur := 0.0
	if m.havePred && actual > 0 {
		cur = math.Abs(m.lastPred-actual) / actual
	}
	m.errors = append(m.errors, cur)
	harmonic := HarmonicMean(s.History, 5)
	maxErr := 0.0
	for i := max(0, len(m.errors)-5); i < len(m.errors); i++ {
		maxErr = math.Max(maxErr, m.errors[i])
	}
	m.lastPred, m.havePred = harmonic, true
	predicted := harmonic / (1 + maxErr)
	h := min(m.Horizon, s.Chunks-s.Chunk)
	if h <= 0 {
		h = 1
	}
	return planMPC(s, h, func(int) float64 { return predicted }, 4.3, 1)
}

// planMPC searches every rendition sequence of length h from the current
// chunk with predicted throughput (kbit/s) per step, maximising
// Σ bitrate/1000 − rebufPenalty·rebuffer − smooth·|Δbitrate|/1000 (Mbit/s
// units, as Pensieve), and returns the first rendition of the best. The
// search walks the tree of prefixes once (each prefix's cost computed one
// time); on equal rewards the later sequence in enumeration order wins, as
// in Pensieve's implementation.
func planMPC(s *State, h int, predicted func(step int) float64, rebufPenalty, smooth float64) int {
	br := s.Bitrates()
	n := len(br)
	last := s.Last
	if last < 0 {
		last = 0
	}
	chunkSec := s.ChunkSeconds()
	best, bestFirst := math.Inf(-1), 0
	var walk func(step, prev, first int, buffer, reward float64)
	walk = func(step, prev, first int, buffer, reward float64) {
		if step == h {
			if reward >= best {
				best, bestFirst = reward, first
			}
			return
		}
		bw := predicted(step)
		for q := range n {
			f := first
			if step == 0 {
				f = q
			}
			size := float64(s.Video.Size(s.Chunk+step, q))
			dl := math.Inf(1)
			if bw > 0 {
				dl = size * 8 / 1000 / bw
			}
			buf, rebuf := buffer, 0.0
			if buf < dl {
				rebuf = dl - buf
				buf = 0
			} else {
				buf -= dl
			}
			buf += chunkSec
			r := reward + br[q]/1000 - rebufPenalty*rebuf - smooth*math.Abs(br[q]-br[prev])/1000
			walk(step+1, q, f, buf, r)
		}
	}
	walk(0, last, 0, s.Buffer.Seconds(), 0)
	return bestFirst
}
