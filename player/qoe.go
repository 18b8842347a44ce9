package player

import (
	"fmt"
	"math"
	"time"
)

// QoEModel scores a chunk: quality of its bitrate, minus penalties for the
// stall before it and the quality change from the previous chunk.
type QoEModel interface {
	Name() string
	// Chunk is the QoE term of playing rendition q after rendition last
	// (last == q for the first chunk) with rebuffer before it.
	Chunk(bitrates []float64, q, last int, rebuffer time.Duration) float64
	// Startup is the penalty for the startup delay (0 for Pensieve's models).
	Startup(d time.Duration) float64
}

// NewQoE returns a model by name: lin, log, hd or yin.
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
	}
	return nil, fmt.Errorf("unknown QoE model %q (have lin, log, hd, yin)", name)
}

// linQoE is Pensieve's QoE_lin: q(R) = R in Mbit/s, 4.3 per stalled second,
// |ΔR| in Mbit/s.
type linQoE struct{}

func (linQoE) Name() string { return "lin" }
func (linQoE) Chunk(br []float64, q, last int, rebuf time.Duration) float64 {
	return br[q]/1000 - 4.3*rebuf.Seconds() - math.Abs(br[q]-br[last])/1000
}
func (linQoE) Startup(time.Duration) float64 { return 0 }

// logQoE is Pensieve's QoE_log: q(R) = ln(R/Rmin), 2.66 per stalled second.
type logQoE struct{}

func (logQoE) Name() string { return "log" }
func (logQoE) Chunk(br []float64, q, last int, rebuf time.Duration) float64 {
	u := func(i int) float64 { return math.Log(br[i] / br[0]) }
	return u(q) - 2.66*rebuf.Seconds() - math.Abs(u(q)-u(last))
}
func (logQoE) Startup(time.Duration) float64 { return 0 }

// hdQoE is Pensieve's QoE_HD (Table 1): the six renditions of its video
// score 1, 2, 3, 12, 15, 20 (HD favoured), 8 per stalled second. Other
// ladders map by bitrate onto the same curve.
type hdQoE struct{}

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
func (hdQoE) Chunk(br []float64, q, last int, rebuf time.Duration) float64 {
	return hdUtility(br[q]) - 8*rebuf.Seconds() - math.Abs(hdUtility(br[q])-hdUtility(br[last]))
}
func (hdQoE) Startup(time.Duration) float64 { return 0 }

// yinQoE is Yin et al. 2015's QoE with balanced weights (λ=1, μ=μs=3000
// with bitrates in kbit/s), here in Mbit/s units: bitrate − |switch| −
// 3·rebuffer seconds, and 3·startup seconds once.
type yinQoE struct{}

func (yinQoE) Name() string { return "yin" }
func (yinQoE) Chunk(br []float64, q, last int, rebuf time.Duration) float64 {
	return br[q]/1000 - math.Abs(br[q]-br[last])/1000 - 3*rebuf.Seconds()
}
func (yinQoE) Startup(d time.Duration) float64 { return 3 * d.Seconds() }
