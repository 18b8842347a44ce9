package player

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxCatchUp bounds Config.CatchUp: dash.js's live catch-up plays at up
// to 1.5× by default (it lets a page raise that to 2×, where speech is
// hard to follow).
const MaxCatchUp = 1.5

// newPlayhead is the playhead of a session of v playing at up to rate to
// catch up. It plays faster only while the buffer holds more than one
// chunk (and a second): playing faster drains the buffer faster, and the
// stall of a next chunk that comes late would add back all the latency
// won. With a floor of a second instead, the 1055 bundled traces 12 s
// behind the edge scored lower for every algorithm in every family, at
// 1.1× and 1.25×, for at most 0.45 s less latency (player/README.md).
func newPlayhead(v *Video, rate float64, law string) playhead {
	return playhead{rate: rate, floor: max(v.ChunkDuration, time.Second), sigmoid: law == CatchUpSigmoid}
}

// Catch-up laws: how the playback rate follows the lag (Config.CatchUpLaw).
const (
	// CatchUpFixed plays at the catch-up rate whenever behind, until the
	// lag is won back.
	CatchUpFixed = "fixed"
	// CatchUpSigmoid scales the rate with the lag as dash.js's default
	// catch-up mode does: 1 + (R−1)·tanh(2.5 s⁻¹ · lag), nearly R a
	// second behind, gently down to 1 as the lag closes (never quite).
	CatchUpSigmoid = "sigmoid"
)

// sigmoidSteepness is the k of the sigmoid law's tanh(k · lag), per
// second: dash.js's sigmoid of 5 × the lag, written as a tanh.
const sigmoidSteepness = 2.5

// CheckCatchUpLaw says whether law names a catch-up law ("" is fixed).
func CheckCatchUpLaw(law string) error {
	switch law {
	case "", CatchUpFixed, CatchUpSigmoid:
		return nil
	}
	return fmt.Errorf("catch-up law %q: want %s or %s", law, CatchUpFixed, CatchUpSigmoid)
}

// CheckCatchUp says whether rate is a playback rate a session can catch
// up at (Config.CatchUp): 1 (or 0, off) to MaxCatchUp.
func CheckCatchUp(rate float64) error {
	if rate != 0 && !(rate >= 1 && rate <= MaxCatchUp) { // NaN too
		return fmt.Errorf("catch-up rate %g: want 1 (off) to %g, the fastest playback rate to catch up with the live edge at", rate, MaxCatchUp)
	}
	return nil
}

// CheckSimCatchUp says whether a simulation joined live behind the edge
// (0: VOD) can catch up at rate (SimOptions.CatchUp): a rate CheckCatchUp
// takes, and above 1 only for a live stream.
func CheckSimCatchUp(live time.Duration, rate float64) error {
	if err := CheckCatchUp(rate); err != nil {
		return err
	}
	if live == 0 && rate > 1 {
		return errors.New("a catch-up rate is for a live stream: simulate one with a live delay (sim -live, e.g. -live 8s)")
	}
	return nil
}

// playhead is a session's playback between downloads: it drains the
// buffer at normal speed, or, for a live session with a catch-up rate,
// faster while it plays further behind the live edge than it joined
// (after the startup and every stall), as dash.js and hls.js raise the
// media element's playbackRate.
type playhead struct {
	rate float64 // playback rate while behind; ≤ 1: never faster
	// sigmoid: the rate follows the lag (CatchUpSigmoid), up to rate.
	sigmoid bool
	// floor is the buffer below which it plays at normal speed.
	floor time.Duration
	// behind is how much further behind the live edge than the join's
	// distance playback is: the startup and every stall, less what was
	// caught up.
	behind time.Duration
	// caughtUp is the media time won back by playing faster.
	caughtUp time.Duration
}

// arrive accounts for chunk k, of media duration dur, that came elapsed
// after the chunk's time began, with b buffered then: it returns the
// buffer with the chunk in, and the stall. Playback starts once the
// first chunk is in: its time is the startup, which the playhead is
// behind by.
func (p *playhead) arrive(k int, b, elapsed, dur time.Duration) (buffer, stall time.Duration) {
	if k == 0 {
		p.behind += elapsed
		return dur, 0
	}
	b, stall = p.play(b, elapsed)
	return b + dur, stall
}

// play plays d of wall time from a buffer of b, and returns the buffer
// left and the stall, if b ran out. It plays at the catch-up rate while
// the playhead is behind and the buffer holds more than its floor;
// the stall adds to how far behind it is.
func (p *playhead) play(b, d time.Duration) (left, stall time.Duration) {
	if p.rate > 1 && p.behind > 0 && b > p.floor && d > 0 {
		var fast, won time.Duration
		if p.sigmoid {
			fast, won = p.sigmoidFast(b, d)
		} else {
			extra := p.rate - 1
			// Fast until d ends, the lag is won back or the buffer is
			// down to the floor, whichever comes first.
			fast = min(d, time.Duration(float64(p.behind)/extra), time.Duration(float64(b-p.floor)/p.rate))
			won = min(time.Duration(float64(fast)*extra), p.behind)
		}
		b -= fast + won
		p.behind -= won
		p.caughtUp += won
		d -= fast
	}
	if d > b {
		p.behind += d - b
		return 0, d - b
	}
	return b - d, 0
}

// rateAt is the playback rate the playhead plays at from a buffer of b:
// the catch-up rate (by its law) while behind and above the floor, else 1.
func (p *playhead) rateAt(b time.Duration) float64 {
	if p.rate <= 1 || p.behind <= 0 || b <= p.floor {
		return 1
	}
	if p.sigmoid {
		return 1 + (p.rate-1)*math.Tanh(sigmoidSteepness*p.behind.Seconds())
	}
	return p.rate
}

// sigmoidFast is how long the sigmoid law plays faster from a buffer of
// b within d of wall time, and the media it wins back: until d ends or
// the buffer is down to the floor. The lag δ follows dδ/dt = −c·tanh(kδ)
// (c the rate's excess over 1), whose solution is
// sinh(kδ(t)) = sinh(kδ₀)·e^(−ckt).
func (p *playhead) sigmoidFast(b, d time.Duration) (fast, won time.Duration) {
	c, k := p.rate-1, sigmoidSteepness
	lag0 := p.behind.Seconds()
	wonBy := func(t float64) float64 { return lag0 - decayedLag(k*lag0, c*k*t)/k }
	room := (b - p.floor).Seconds() // the buffer above the floor
	t := d.Seconds()
	if t+wonBy(t) > room {
		// Down to the floor before d ends: the buffer falls steadily
		// (faster than 1 s a second), so halve the interval to find when,
		// to a nanosecond in a wait of a minute (2⁻³⁶ of it).
		lo, hi := 0.0, t
		for range 36 {
			mid := (lo + hi) / 2
			if mid+wonBy(mid) > room {
				hi = mid
			} else {
				lo = mid
			}
		}
		t = lo
	}
	fast = time.Duration(t * float64(time.Second))
	won = min(time.Duration(wonBy(t)*float64(time.Second)), p.behind, b-p.floor-fast)
	return fast, max(won, 0)
}

// decayedLag is asinh(sinh(x)·e^(−y)) for x, y ≥ 0, without overflow for
// a large x (a lag of minutes): there sinh(x) is e^x/2 to double precision.
func decayedLag(x, y float64) float64 {
	if x <= 20 {
		return math.Asinh(math.Sinh(x) * math.Exp(-y))
	}
	if e := x - y; e <= 20 {
		return math.Asinh(math.Exp(e) / 2)
	}
	return x - y // asinh(e^(x−y)/2) to double precision
}
