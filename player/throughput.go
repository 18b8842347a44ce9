package player

// Throughput is dash.js's ThroughputRule: the highest bitrate at most the
// throughput estimate times a safety factor (0.9).
type Throughput struct {
	Safety float64
}

// Name implements ABR.
func (t *Throughput) Name() string { return "throughput" }

// Choose implements ABR.
func (t *Throughput) Choose(s *State) int {
	est := s.Estimate()
	if est <= 0 {
		return 0 // nothing measured yet: start low
	}
	return highestBelow(s.Bitrates(), est*t.Safety)
}
