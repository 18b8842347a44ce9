package player

// BBA is buffer-based adaptation (Huang et al., SIGCOMM 2014) as in
// Pensieve's baseline: the lowest rendition while the buffer is under the
// reservoir, the highest above reservoir+cushion, linear in between.
// Throughput plays no part.
type BBA struct {
	Reservoir, Cushion float64 // seconds
}

// Name implements ABR.
func (b *BBA) Name() string { return "bba" }

// Choose implements ABR.
func (b *BBA) Choose(s *State) int {
	n := len(s.Bitrates())
	buf := s.Buffer.Seconds()
	switch {
	case buf < b.Reservoir:
		return 0
	case buf >= b.Reservoir+b.Cushion:
		return n - 1
	}
	return int(float64(n-1) * (buf - b.Reservoir) / b.Cushion)
}
