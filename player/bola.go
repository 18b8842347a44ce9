package player

import "math"

// BOLA is BOLA-E as dash.js 5 implements it (Spiteri et al.): a Lyapunov
// buffer-based rule over utilities ln(bitrate/lowest), tuned so the
// highest rendition is chosen at the stable buffer target; during startup
// it follows throughput, and it never jumps above the throughput-safe
// rendition unless it was already there (BOLA-O's oscillation guard).
//
// BOLA-E's placeholder buffer is added to the buffer BOLA sees: time the
// player spent waiting for something other than bandwidth (a live
// segment's publication, room in a full buffer) would otherwise read as a
// buffer running down, and on a live stream, whose buffer cannot grow past
// the distance to the live edge, BOLA would sink to the lowest rendition
// whatever the bandwidth. It is set at the end of startup to the buffer at
// which BOLA would choose what throughput chose, grows by the time waited,
// decays by 1 % a chunk, is trimmed to what the chosen rendition's buffer
// level calls for, and is dropped when the buffer runs out.
type BOLA struct {
	// StableBuffer is the buffer BOLA aims to hold (dash.js: 12 s).
	StableBuffer float64
	started      bool
	placeholder  float64 // seconds
	// cautious scores as dash.js did before version 5 (each rendition
	// one utility unit more, the same as a buffer of vp less) and keeps
	// no placeholder buffer: the floor deepcast's constants were chosen
	// with (player/deepcast.go).
	cautious bool
}

// minimumBufferS and perLevelS are dash.js's BOLA constants;
// placeholderDecay is its placeholder buffer's decay per segment.
const (
	minimumBufferS   = 10.0
	perLevelS        = 2.0
	placeholderDecay = 0.99
)

// Name implements ABR.
func (b *BOLA) Name() string { return "bola" }

// bolaParams are BOLA's control parameters for a ladder.
type bolaParams struct {
	br     []float64
	gp, vp float64
}

// util is rendition i's utility: 0 for the lowest.
func (p bolaParams) util(i int) float64 { return math.Log(p.br[i] / p.br[0]) }

// score is BOLA's objective for rendition i at buffer level buf.
func (p bolaParams) score(i int, buf float64) float64 {
	return (p.vp*(p.util(i)+p.gp) - buf) / p.br[i]
}

// maxLevel is the buffer level above which BOLA would rather wait than
// download rendition i (its score turns negative).
func (p bolaParams) maxLevel(i int) float64 { return p.vp * (p.util(i) + p.gp) }

// minLevel is the lowest buffer level at which BOLA prefers rendition q
// to every lower one.
func (p bolaParams) minLevel(q int) float64 {
	level := 0.0
	for i := range q {
		if p.br[i] < p.br[q] {
			// score(q, B) >= score(i, B) solved for B.
			level = max(level, p.vp*(p.gp+(p.br[q]*p.util(i)-p.br[i]*p.util(q))/(p.br[q]-p.br[i])))
		}
	}
	return level
}

// Choose implements ABR.
func (b *BOLA) Choose(s *State) int {
	br := s.Bitrates()
	n := len(br)
	tput := 0
	if est := s.Estimate(); est > 0 {
		tput = highestBelow(br, est*0.9)
	}
	if n < 2 || br[n-1] <= br[0] {
		return tput
	}
	stable := b.StableBuffer
	if stable <= 0 {
		stable = 12
	}
	target := math.Max(stable, minimumBufferS+perLevelS*float64(n))
	if s.MaxBuffer > 0 {
		target = math.Max(math.Min(target, s.MaxBuffer.Seconds()), minimumBufferS*1.01)
	}
	p := bolaParams{br: br}
	p.gp = p.util(n-1) / (target/minimumBufferS - 1)
	p.vp = minimumBufferS / p.gp
	buf := s.Buffer.Seconds()
	if !b.started {
		// Startup: throughput decides until the buffer holds a chunk or
		// two, and the placeholder makes BOLA's view agree with it.
		b.placeholder = max(0, p.minLevel(tput)-buf)
		if buf < s.ChunkSeconds()*2 {
			return tput
		}
		b.started = true
	} else {
		b.placeholder *= placeholderDecay
	}
	if s.Stalled {
		b.placeholder = 0 // the buffer ran out: no wait makes up for that
	}
	b.placeholder += s.Idle.Seconds()
	effective := buf + b.placeholder
	if b.cautious {
		b.placeholder, effective = 0, buf-p.vp
	}
	q, best := 0, math.Inf(-1)
	for i := range n {
		if score := p.score(i, effective); score >= best {
			q, best = i, score
		}
	}
	if q > tput && s.Last >= 0 && q > s.Last {
		q = max(tput, s.Last)
	}
	// More effective buffer than the chosen rendition calls for is not
	// kept (dash.js pauses downloads for it; a player here has no room).
	if excess := effective - p.maxLevel(q); excess > 0 {
		b.placeholder = max(0, b.placeholder-excess)
	}
	return q
}
