package player

// BBA is buffer-based adaptation (Huang et al., SIGCOMM 2014) as in
// Pensieve's baseline: the lowest rendition while the buffer is under the
// reservoir, the highest above reservoir+cushion, linear in between.
// Throughput plays no part.
//
// The reservoir and cushion are for a buffer of bbaBufferBasis (Pensieve's
// 60 s); a session whose buffer can hold less (a live stream, which cannot
// run further ahead than it joined behind the live edge) scales them to
// it, as the paper sizes them from the buffer: unscaled, a live buffer of
// a few seconds never leaves the reservoir and BBA plays the lowest
// rendition whatever the bandwidth.
type BBA struct {
	Reservoir, Cushion float64 // seconds
}

// bbaBufferBasis is the buffer BBA's reservoir and cushion are set for.
const bbaBufferBasis = 60.0

// Name implements ABR.
func (b *BBA) Name() string { return "bba" }

// Choose implements ABR.
func (b *BBA) Choose(s *State) int {
	n := len(s.Bitrates())
	buf := s.Buffer.Seconds()
	reservoir, cushion := b.Reservoir, b.Cushion
	if c := s.BufferCapacity().Seconds(); c > 0 && c < bbaBufferBasis {
		reservoir, cushion = reservoir*c/bbaBufferBasis, cushion*c/bbaBufferBasis
	}
	switch {
	case buf < reservoir:
		return 0
	case buf >= reservoir+cushion:
		return n - 1
	}
	return int(float64(n-1) * (buf - reservoir) / cushion)
}
