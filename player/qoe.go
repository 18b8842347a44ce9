package player

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// QoEModel scores a chunk: quality of its bitrate, minus penalties for the
// stall before it and the quality change from the previous chunk (and,
// for a live model, for how far behind the live edge it played and how
// fast).
type QoEModel interface {
	Name() string
	// Chunk is the QoE term of playing rendition q after rendition last
	// (last == q for the first chunk), as p says it played.
	Chunk(bitrates []float64, q, last int, p ChunkPlay) float64
	// Startup is the penalty for the startup delay (0 for Pensieve's models).
	Startup(d time.Duration) float64
}

// ChunkPlay is how a chunk played, beyond its rendition: what a QoE model
// may score.
type ChunkPlay struct {
	// Duration is the chunk's media duration.
	Duration time.Duration
	// Rebuffer is the stall before it.
	Rebuffer time.Duration
	// Latency is, live, how far behind the live edge the playhead stood
	// once the chunk was in (ChunkLog.Latency); 0 on demand.
	Latency time.Duration
	// Rate is the playback rate then: above 1 while catching up with the
	// live edge (ChunkLog.Rate); 0 reads as 1.
	Rate float64
}

// chunkPlayed is how chunk k of v played, come in after a stall of rebuf
// with buffer then buffered at now (session time), under cfg: what
// Session.Run and the optimum score alike.
func chunkPlayed(v *Video, cfg Config, ph *playhead, k int, rebuf, buffer, now time.Duration) ChunkPlay {
	p := ChunkPlay{Duration: v.ChunkDur(k), Rebuffer: rebuf, Rate: ph.rateAt(buffer)}
	if cfg.LiveEdge != nil {
		// The playhead is the buffer's length before the end of the media in.
		p.Latency = cfg.LiveEdge(now) - (v.endOf(k, false) - buffer)
	}
	return p
}

// chunkTerm is chunk k's QoE term at rendition q after last: the first
// chunk is scored as switching from itself, less the startup's penalty,
// unless cfg leaves it out of the sum (Pensieve's mode).
func chunkTerm(m QoEModel, cfg Config, v *Video, k, q, last int, p ChunkPlay, startup time.Duration) float64 {
	switch {
	case k > 0:
		return m.Chunk(v.Bitrates, q, last, p)
	case !cfg.SkipFirstQoE:
		return m.Chunk(v.Bitrates, q, q, p) - m.Startup(startup)
	}
	return 0
}

// planTerms are a QoE model's chunk term as a planner sums it over a
// horizon: util[q] for playing rendition q, less switching[p*n+q] for
// coming to it from rendition p, less stall for each second stalled
// before it, and, live, less lag for each second the plan has stalled up
// to and including it: a live stall leaves the playhead that much further
// behind the edge for every chunk after it.
type planTerms struct {
	util, switching []float64
	stall, lag      float64
}

// splitTerms is a QoE model that gives its planTerms itself, in the
// expressions its Chunk adds up (for QoE_lin, in the order too, so that
// robustMPC's plans are to the last bit what they were before it planned
// for other models). The lag is termsOf's.
type splitTerms interface {
	planTerms(br []float64, d time.Duration) planTerms
}

// termsOf is m's chunk term split for a planner, for chunks of d, on a
// stream joined behind its live edge (0 on demand). A model that does
// not split itself is split by differences of its Chunk (exact when its
// term is a utility less a switch cost less a price per stalled second,
// as every model here is). The lag is the price of one second more
// behind the edge than the join's distance; the playback rate, which
// the rendition does not set, is left out.
func termsOf(m QoEModel, br []float64, d, behind time.Duration) planTerms {
	var t planTerms
	if s, ok := m.(splitTerms); ok {
		t = s.planTerms(br, d)
	} else {
		t = splitByDifferences(m, br, d)
	}
	if behind > 0 && len(br) > 0 {
		at := func(l time.Duration) float64 { return m.Chunk(br, 0, 0, ChunkPlay{Duration: d, Latency: l}) }
		// Per second, from a millisecond's difference: lolp's weight steps
		// up at 1.1 s, and a join just below that pays the lower one.
		t.lag = max(at(behind)-at(behind+time.Millisecond), 0) * 1000
	}
	return t
}

// splitByDifferences splits m's chunk term by differences of its Chunk.
func splitByDifferences(m QoEModel, br []float64, d time.Duration) planTerms {
	n := len(br)
	t := planTerms{util: make([]float64, n), switching: make([]float64, n*n)}
	for q := range n {
		t.util[q] = m.Chunk(br, q, q, ChunkPlay{Duration: d})
	}
	for p := range n {
		for q := range n {
			t.switching[p*n+q] = t.util[q] - m.Chunk(br, q, p, ChunkPlay{Duration: d})
		}
	}
	if n > 0 {
		t.stall = t.util[0] - m.Chunk(br, 0, 0, ChunkPlay{Duration: d, Rebuffer: time.Second})
	}
	return t
}

// newPlanTerms tabulates planTerms for n renditions.
func newPlanTerms(n int, util func(q int) float64, switching func(p, q int) float64, stall float64) planTerms {
	t := planTerms{util: make([]float64, n), switching: make([]float64, n*n), stall: stall}
	for q := range n {
		t.util[q] = util(q)
	}
	for p := range n {
		for q := range n {
			t.switching[p*n+q] = switching(p, q)
		}
	}
	return t
}

// bitrateTerms are the planTerms of lin, yin and lolp: the bitrate in
// Mbit/s times seconds (1 for a per-chunk bitrate, the chunk's duration
// for lolp's bitrate over time), the switch |ΔR| in Mbit/s and stall a
// stalled second.
func bitrateTerms(br []float64, seconds, stall float64) planTerms {
	return newPlanTerms(len(br), func(q int) float64 { return seconds * br[q] / 1000 },
		func(p, q int) float64 { return math.Abs(br[q]-br[p]) / 1000 }, stall)
}

// utilityTerms are the planTerms of log and hd: a utility per rendition,
// the switch its |Δutility|, and stall a stalled second.
func utilityTerms(n int, u func(i int) float64, stall float64) planTerms {
	return newPlanTerms(n, u, func(p, q int) float64 { return math.Abs(u(q) - u(p)) }, stall)
}

// QoEModels returns the names NewQoE takes.
func QoEModels() []string { return []string{"lin", "log", "hd", "yin", "lolp"} }

// NewQoE returns a model by name: lin, log, hd, yin or lolp.
func NewQoE(name string) (QoEModel, error) {
	switch name {
	case "", "lin":
		return linQoE{}, nil
	case "log":
		return logQoE{}, nil
	case "hd":
		return hdQoE{}, nil
	case "yin":
		return yinQoE{}, nil
	case "lolp":
		return lolpQoE{}, nil
	}
	return nil, fmt.Errorf("unknown QoE model %q (have %s)", name, strings.Join(QoEModels(), ", "))
}

// linQoE is Pensieve's QoE_lin: q(R) = R in Mbit/s, 4.3 per stalled second,
// |ΔR| in Mbit/s.
type linQoE struct{}

// linStallPrice is QoE_lin's price of a stalled second.
const linStallPrice = 4.3

func (linQoE) Name() string { return "lin" }
func (linQoE) Chunk(br []float64, q, last int, p ChunkPlay) float64 {
	return br[q]/1000 - linStallPrice*p.Rebuffer.Seconds() - math.Abs(br[q]-br[last])/1000
}
func (linQoE) Startup(time.Duration) float64 { return 0 }
func (linQoE) planTerms(br []float64, _ time.Duration) planTerms {
	return bitrateTerms(br, 1, linStallPrice)
}

// logQoE is Pensieve's QoE_log: q(R) = ln(R/Rmin), 2.66 per stalled second.
type logQoE struct{}

// logStallPrice is QoE_log's price of a stalled second.
const logStallPrice = 2.66

func (logQoE) Name() string { return "log" }
func (logQoE) Chunk(br []float64, q, last int, p ChunkPlay) float64 {
	u := logUtility(br)
	return u(q) - logStallPrice*p.Rebuffer.Seconds() - math.Abs(u(q)-u(last))
}
func (logQoE) Startup(time.Duration) float64 { return 0 }
func (logQoE) planTerms(br []float64, _ time.Duration) planTerms {
	return utilityTerms(len(br), logUtility(br), logStallPrice)
}

// logUtility is QoE_log's ln(R/Rmin) of rendition i.
func logUtility(br []float64) func(i int) float64 {
	return func(i int) float64 { return math.Log(br[i] / br[0]) }
}

// hdQoE is Pensieve's QoE_HD (Table 1): the six renditions of its video
// score 1, 2, 3, 12, 15, 20 (HD favoured), 8 per stalled second. Other
// ladders map by bitrate onto the same curve.
type hdQoE struct{}

// hdStallPrice is QoE_HD's price of a stalled second.
const hdStallPrice = 8

var hdKbps = []float64{300, 750, 1200, 1850, 2850, 4300}
var hdScore = []float64{1, 2, 3, 12, 15, 20}

func hdUtility(kbps float64) float64 {
	if kbps <= hdKbps[0] {
		return hdScore[0] * kbps / hdKbps[0]
	}
	for i := 1; i < len(hdKbps); i++ {
		if kbps <= hdKbps[i] {
			f := (kbps - hdKbps[i-1]) / (hdKbps[i] - hdKbps[i-1])
			return hdScore[i-1] + f*(hdScore[i]-hdScore[i-1])
		}
	}
	return hdScore[len(hdScore)-1]
}

func (hdQoE) Name() string { return "hd" }
func (hdQoE) Chunk(br []float64, q, last int, p ChunkPlay) float64 {
	return hdUtility(br[q]) - hdStallPrice*p.Rebuffer.Seconds() - math.Abs(hdUtility(br[q])-hdUtility(br[last]))
}
func (hdQoE) Startup(time.Duration) float64 { return 0 }
func (hdQoE) planTerms(br []float64, _ time.Duration) planTerms {
	return utilityTerms(len(br), func(i int) float64 { return hdUtility(br[i]) }, hdStallPrice)
}

// yinQoE is Yin et al. 2015's QoE with balanced weights (λ=1, μ=μs=3000
// with bitrates in kbit/s), here in Mbit/s units: bitrate − |switch| −
// 3·rebuffer seconds, and 3·startup seconds once.
type yinQoE struct{}

// yinStallPrice is Yin et al.'s price of a stalled (or startup) second.
const yinStallPrice = 3

func (yinQoE) Name() string { return "yin" }
func (yinQoE) Chunk(br []float64, q, last int, p ChunkPlay) float64 {
	return br[q]/1000 - math.Abs(br[q]-br[last])/1000 - yinStallPrice*p.Rebuffer.Seconds()
}
func (yinQoE) Startup(d time.Duration) float64 { return yinStallPrice * d.Seconds() }
func (yinQoE) planTerms(br []float64, _ time.Duration) planTerms {
	return bitrateTerms(br, 1, yinStallPrice)
}

// lolpQoE is the QoE of LoL+ (Bentaleb et al., "Catching the Moment with
// LoL+ in Twitch-like Low-latency Live Streaming Platforms", 2021), with
// the weights dash.js's LoL+ rule scores segments by, in Mbit/s: the
// bitrate times the chunk's seconds, less the switch |ΔR|, R_max per
// stalled second, R_min per unit of |1 − playback rate|, and the latency
// L times 0.05·R_min up to 1.1 s behind the live edge, 0.1·R_max beyond.
// On demand (no latency, normal speed) it is the first three: a
// bitrate-over-time reward with stalls at the top bitrate's price.
type lolpQoE struct{}

// lolpLowLatency is where LoL+'s latency weight steps up.
const lolpLowLatency = 1100 * time.Millisecond

func (lolpQoE) Name() string { return "lolp" }
func (lolpQoE) Chunk(br []float64, q, last int, p ChunkPlay) float64 {
	lo, hi := slices.Min(br)/1000, lolpStallPrice(br)
	latencyWeight := 0.1 * hi
	if p.Latency <= lolpLowLatency {
		latencyWeight = 0.05 * lo
	}
	rate := p.Rate
	if rate == 0 {
		rate = 1
	}
	return p.Duration.Seconds()*br[q]/1000 - math.Abs(br[q]-br[last])/1000 - hi*p.Rebuffer.Seconds() -
		latencyWeight*p.Latency.Seconds() - lo*math.Abs(1-rate)
}
func (lolpQoE) Startup(time.Duration) float64 { return 0 }

func (lolpQoE) planTerms(br []float64, d time.Duration) planTerms {
	return bitrateTerms(br, d.Seconds(), lolpStallPrice(br))
}

// lolpStallPrice is LoL+'s price of a stalled second: R_max in Mbit/s.
func lolpStallPrice(br []float64) float64 { return slices.Max(br) / 1000 }
