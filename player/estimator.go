package player

import (
	"math"
)

// EWMA is dash.js's throughput estimator: two exponentially weighted moving
// averages weighted by download time, with fast and slow half-lives in
// seconds; the estimate is the smaller (a drop shows at once, a rise slowly).
type EWMA struct {
	FastHalfLife, SlowHalfLife float64 // seconds; 3 and 8 when zero
	fast, slow                 float64
	totalWeight                float64
}

// halfLives returns the configured half-lives, dash.js's 3 s and 8 s by default.
func (e *EWMA) halfLives() (fast, slow float64) {
	fast, slow = e.FastHalfLife, e.SlowHalfLife
	if fast <= 0 {
		fast = 3
	}
	if slow <= 0 {
		slow = 8
	}
	return fast, slow
}

// Add takes one sample.
func (e *EWMA) Add(s Sample) {
	kbps := s.Kbps()
	w := s.Elapsed.Seconds()
	if w <= 0 || math.IsInf(kbps, 0) {
		return
	}
	fh, sh := e.halfLives()
	af := math.Pow(0.5, w/fh)
	as := math.Pow(0.5, w/sh)
	e.fast = af*e.fast + (1-af)*kbps
	e.slow = as*e.slow + (1-as)*kbps
	e.totalWeight += w
}

// Estimate returns the zero-bias-corrected minimum of both averages.
func (e *EWMA) Estimate() float64 {
	if e.totalWeight <= 0 {
		return 0
	}
	fh, sh := e.halfLives()
	f := e.fast / (1 - math.Pow(0.5, e.totalWeight/fh))
	s := e.slow / (1 - math.Pow(0.5, e.totalWeight/sh))
	return math.Min(f, s)
}

// HarmonicMean is MPC's estimator: the harmonic mean of the last N samples
// (5 by default), which a single fast outlier cannot inflate.
func HarmonicMean(history []Sample, n int) float64 {
	if n <= 0 {
		n = 5
	}
	var sum float64
	count := 0
	for i := len(history) - 1; i >= 0 && count < n; i-- {
		k := history[i].Kbps()
		if k <= 0 {
			continue
		}
		sum += 1 / k
		count++
	}
	if count == 0 {
		return 0
	}
	return float64(count) / sum
}

// SlidingWindow is the arithmetic mean of the last N samples' throughput.
func SlidingWindow(history []Sample, n int) float64 {
	if n <= 0 {
		n = 5
	}
	var sum float64
	count := 0
	for i := len(history) - 1; i >= 0 && count < n; i-- {
		sum += history[i].Kbps()
		count++
	}
	if count == 0 {
		return 0
	}
	return sum / float64(count)
}
