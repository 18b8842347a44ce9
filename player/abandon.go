package player

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Progress is how far a segment download has come when the session asks
// its Abandoner whether to give it up.
type Progress struct {
	Rendition int
	Size      int64         // the segment's bytes
	Bytes     int64         // bytes in so far
	Elapsed   time.Duration // since the request was sent
	FirstByte time.Duration // since the request was sent, until the first byte
	// Buffer is what the buffer holds now, the download's time drained.
	Buffer time.Duration
}

// rate is the download's own rate since its first byte (bytes/s); false
// before it has a measure worth the name: abandonGrace in, and bytes.
func (p Progress) rate() (float64, bool) {
	body := p.Elapsed - p.FirstByte
	if p.Elapsed < abandonGrace || body <= 0 || p.Bytes <= 0 {
		return 0, false
	}
	return float64(p.Bytes) / body.Seconds(), true
}

// abandonGrace is how long a download runs before its own rate is trusted
// (dash.js's and Sabre's 500 ms): the first bytes of a response come in a
// burst the link's rate does not sustain.
const abandonGrace = 500 * time.Millisecond

// AbandonEvery is how often (on the session's clock) a download in
// progress is checked against the session's Abandoner.
const AbandonEvery = 100 * time.Millisecond

// Abandoner decides, while a segment downloads, whether to give it up and
// fetch the chunk again at a lower rendition: what dash.js's
// AbandonRequestsRule and Sabre's check_abandon do when the link falls
// during a download the ABR chose for a faster one. The bytes in are
// thrown away; the buffer drained meanwhile stays drained.
type Abandoner interface {
	Name() string
	// Abandon returns the rendition to fetch the chunk at instead, and
	// true; or false to let the download go on. s is the state the
	// chunk was chosen in (s.Chunk, s.Last).
	Abandon(s *State, p Progress) (q int, ok bool)
}

// Abandonment rules' names (sim -abandon, play -abandon).
const (
	AbandonStall      = "stall"
	AbandonThroughput = "throughput"
)

// AbandonRules returns the names NewAbandoner takes.
func AbandonRules() []string { return []string{AbandonStall, AbandonThroughput} }

// NewAbandoner returns an abandonment rule by name; "" or "none" is no
// abandonment (nil).
func NewAbandoner(name string) (Abandoner, error) {
	switch name {
	case "", "none":
		return nil, nil
	case AbandonStall:
		return stallAbandoner{}, nil
	case AbandonThroughput:
		return throughputAbandoner{}, nil
	}
	return nil, fmt.Errorf("unknown abandonment rule %q (have none, %s)", name, strings.Join(AbandonRules(), ", "))
}

// stallAbandoner gives a download up only when finishing it, at the rate
// it is getting, would stall playback, and a lower rendition fetched
// afresh at that rate (after the same wait for its first byte) scores
// better under the session's QoE model: its quality and switch terms less
// the price of the stall it leaves. A download that will be in before the
// buffer runs out is never thrown away, however slow, for its bytes would
// be lost for nothing; one that will stall is traded for the lower
// rendition only where the stall saved is worth the quality lost. Before
// playback starts the wait is the startup delay, priced as the model
// prices it: not at all under Pensieve's models, which leave it out.
type stallAbandoner struct{}

func (stallAbandoner) Name() string { return AbandonStall }

func (stallAbandoner) Abandon(s *State, p Progress) (int, bool) {
	rate, ok := p.rate()
	if !ok || p.Rendition <= 0 {
		return 0, false
	}
	left := float64(p.Size-p.Bytes) / rate
	buffer := p.Buffer.Seconds()
	if left <= buffer {
		return 0, false
	}
	t := s.planTerms()
	n := len(s.Bitrates())
	last := s.Last
	// Before playback starts, waiting is the startup delay, at the
	// model's price for it (none for Pensieve's models).
	price := t.stall
	if s.Chunk == 0 {
		price = s.qoe().Startup(time.Second)
	}
	if price <= 0 {
		return 0, false
	}
	score := func(q int, rest float64) float64 {
		from := last
		if from < 0 {
			from = q // the first chunk switches from nothing
		}
		return t.util[q] - t.switching[from*n+q] - price*math.Max(0, rest-buffer)
	}
	best, bestQ := score(p.Rendition, left), p.Rendition
	wait := p.FirstByte.Seconds()
	for q := range p.Rendition {
		if v := score(q, wait+float64(s.Video.Size(s.Chunk, q))/rate); v > best {
			best, bestQ = v, q
		}
	}
	return bestQ, bestQ < p.Rendition
}

// throughputAbandoner is the rule of dash.js's throughput rule in Sabre
// (its ThroughputRule.check_abandon): once the download, at its own rate,
// would take more than 1.8 chunk durations in all, it is given up for the
// highest rendition 0.9 of that rate sustains, if that one is lower and
// smaller than what is left to come. It ignores the buffer.
type throughputAbandoner struct{}

// The throughput rule's constants (Sabre's abandon_multiplier and
// safety_factor).
const (
	abandonMultiplier = 1.8
	abandonSafety     = 0.9
)

func (throughputAbandoner) Name() string { return AbandonThroughput }

func (throughputAbandoner) Abandon(s *State, p Progress) (int, bool) {
	rate, ok := p.rate()
	if !ok {
		return 0, false
	}
	left := float64(p.Size - p.Bytes)
	if p.Elapsed.Seconds()+left/rate <= abandonMultiplier*s.Video.ChunkDur(s.Chunk).Seconds() {
		return 0, false
	}
	q := highestBelow(s.Bitrates(), rate*8/1000*abandonSafety)
	if q >= p.Rendition || float64(s.Video.Size(s.Chunk, q)) >= left {
		return 0, false
	}
	return q, true
}
