package player

import (
	"math"
	"time"
)

// Sample is one measured download.
type Sample struct {
	Bytes   int64
	Elapsed time.Duration // request sent to last byte
}

// Kbps is the sample's throughput.
func (s Sample) Kbps() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Bytes) * 8 / 1000 / s.Elapsed.Seconds()
}

// State is what an ABR algorithm sees before choosing a chunk's rendition.
// It belongs to one session.
type State struct {
	Video     *Video
	Chunk     int // index of the chunk being chosen, from 0
	Chunks    int
	Buffer    time.Duration
	MaxBuffer time.Duration
	Last      int // previous chunk's rendition; -1 before the first
	// Idle is how long the player waited, not downloading, since the
	// last chunk came: for a live segment's publication, or for room in
	// a full buffer (BOLA-E's placeholder buffer makes up for it).
	Idle time.Duration
	// Stalled: the last chunk came after the buffer had run out.
	Stalled bool
	History []Sample
	// QoE is the model the session is scored by: what the planning rules
	// (robustMPC, deepcast) maximise over their horizon. Nil plans for
	// QoE_lin, as Pensieve's robustMPC does.
	QoE   QoEModel
	ewma  EWMA
	terms *planTerms // QoE's terms for the planners, made on first use
}

func (s *State) addSample(d Download) {
	smp := Sample{Bytes: d.Bytes, Elapsed: d.Elapsed()}
	s.History = append(s.History, smp)
	s.ewma.Add(smp)
}

// Estimate is the dash.js-style throughput estimate (kbit/s): the smaller
// of a fast and a slow EWMA; 0 before any download.
func (s *State) Estimate() float64 { return s.ewma.Estimate() }

// Bitrates are the video renditions' bitrates (kbit/s), lowest first.
func (s *State) Bitrates() []float64 { return s.Video.Bitrates }

// ChunkSeconds is the chunk duration in seconds.
func (s *State) ChunkSeconds() float64 { return s.Video.ChunkDuration.Seconds() }

// BufferCapacity is the most buffer the player can hold: MaxBuffer, and
// on a live stream no more than it joined behind the live edge (it cannot
// fetch what is not published); 0 when unbounded.
func (s *State) BufferCapacity() time.Duration {
	if d := s.Video.LiveDelay; d > 0 && (s.MaxBuffer <= 0 || d < s.MaxBuffer) {
		return d
	}
	return s.MaxBuffer
}

// planCeiling is the most buffer (seconds) a planner can count on when
// the next chunk is asked for: live, the distance to the edge less that
// chunk, for the player waits for its publication while the buffer drains
// (however fast the link, a live buffer does not grow past it); +Inf for
// VOD, where the MaxBuffer waits come after it.
func (s *State) planCeiling() float64 {
	if s.Video.LiveDelay <= 0 {
		return math.Inf(1)
	}
	return max(s.BufferCapacity().Seconds()-s.ChunkSeconds(), 0)
}

// qoe is the session's QoE model: QoE_lin unless set.
func (s *State) qoe() QoEModel {
	if s.QoE == nil {
		return linQoE{}
	}
	return s.QoE
}

// planTerms are the session's QoE model's terms as a planner adds them up.
func (s *State) planTerms() *planTerms {
	if s.terms == nil {
		t := termsOf(s.qoe(), s.Bitrates(), s.Video.ChunkDuration, s.Video.LiveDelay)
		s.terms = &t
	}
	return s.terms
}

// Remaining is the number of chunks after the current one.
func (s *State) Remaining() int { return s.Chunks - s.Chunk - 1 }

// highestBelow returns the highest rendition whose bitrate is at most kbps.
func highestBelow(bitrates []float64, kbps float64) int {
	q := 0
	for i, b := range bitrates {
		if b <= kbps {
			q = i
		}
	}
	return q
}
