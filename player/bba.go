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
// rendition whatever the bandwidth. Scaled, the reservoir still holds at
// least a chunk, the buffer a stall leaves, and the cushion a chunk per
// rendition step: with less, a live buffer that cannot hold more than a
// few chunks reads every stall as room for the top rendition, and stalls
// again (sim -live measured it: 224 % rebuffering, 8 s behind the edge).
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
		// A chunk that stalled leaves one chunk in the buffer: under a
		// reservoir of less, BBA never sees it stalled, and stays at the
		// top stall after stall. And one chunk of buffer more climbs one
		// rendition, not from the lowest to the top.
		reservoir = max(reservoir, s.ChunkSeconds())
		cushion = max(cushion, float64(n-1)*s.ChunkSeconds())
	}
	switch {
	case buf < reservoir:
		return 0
	case buf >= reservoir+cushion:
		return n - 1
	}
	return int(float64(n-1) * (buf - reservoir) / cushion)
}
