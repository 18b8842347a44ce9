package player

import "math"

// BOLA is BOLA-E as dash.js implements it (Spiteri et al.): a Lyapunov
// buffer-based rule over utilities ln(bitrate/lowest)+1, tuned so the
// highest rendition is chosen at the stable buffer target; during startup
// it follows throughput, and it never jumps above the throughput-safe
// rendition unless it was already there (BOLA-O's oscillation guard).
type BOLA struct {
	// StableBuffer is the buffer BOLA aims to hold (dash.js: 12 s).
	StableBuffer float64
	started      bool
}

// minimumBufferS and perLevelS are dash.js's BOLA constants.
const (
	minimumBufferS = 10.0
	perLevelS      = 2.0
)

// Name implements ABR.
func (b *BOLA) Name() string { return "bola" }

// Choose implements ABR.
func (b *BOLA) Choose(s *State) int {
	br := s.Bitrates()
	n := len(br)
	tput := 0
	if est := s.Estimate(); est > 0 {
		tput = highestBelow(br, est*0.9)
	}
	buf := s.Buffer.Seconds()
	if !b.started {
		// Startup: throughput decides until the buffer holds a chunk or two.
		if buf < s.ChunkSeconds()*2 {
			return tput
		}
		b.started = true
	}
	stable := b.StableBuffer
	if stable <= 0 {
		stable = 12
	}
	target := math.Max(stable, minimumBufferS+perLevelS*float64(n))
	if s.MaxBuffer > 0 {
		target = math.Min(target, s.MaxBuffer.Seconds())
	}
	util := func(i int) float64 { return math.Log(br[i]/br[0]) + 1 }
	gp := (util(n-1) - 1) / (target/minimumBufferS - 1)
	vp := minimumBufferS / gp
	q, best := 0, math.Inf(-1)
	for i := range n {
		score := (vp*(util(i)+gp) - buf) / br[i]
		if score >= best {
			q, best = i, score
		}
	}
	if q > tput && s.Last >= 0 && q > s.Last {
		q = max(tput, s.Last)
	}
	return q
}
