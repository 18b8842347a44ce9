//go:build !js

package player

import (
	"fmt"
	"slices"
	"time"

	"github.com/deepcast/deepcast/manifest"
)

// predictedOf marks the video chunks that some rendition only predicted,
// and the main sound's predicted segments.
func predictedOf(m *manifest.Manifest) (video, audio []bool) {
	for _, r := range m.Video {
		for k, s := range r.Segments {
			if k >= len(video) {
				video = append(video, false)
			}
			video[k] = video[k] || s.Predicted
		}
	}
	if sound := m.MainAudio(); len(sound) > 0 {
		for _, s := range sound[0].Segments {
			audio = append(audio, s.Predicted)
		}
	}
	return video, audio
}

// chunkStart is when chunk k begins, from chunk 0's start.
func (v *Video) chunkStart(k int) time.Duration {
	if k == 0 {
		return 0
	}
	return v.Ends[k-1]
}

// relayFrom lays chunks k on, and the sound from the segment playing at
// at (chunk k's start on the Period's timeline), out again from m, a
// re-read of the live MPD; or, from the static MPD (closed playlists) a
// stream leaves when it ends, what there is of them: the Video is cut to
// the chunks published.
func (v *Video) relayFrom(k int, at time.Duration, m *manifest.Manifest) error {
	if len(m.Video) != len(v.Bitrates) {
		return fmt.Errorf("the ladder changed: %d video renditions, %d before", len(m.Video), len(v.Bitrates))
	}
	ended := m.Live == nil || m.Live.Ended
	startsAt := func(segs []manifest.Segment, t time.Duration) int {
		for i, s := range segs {
			if d := s.Start - t; d > -time.Millisecond && d < time.Millisecond {
				return i
			}
		}
		return -1
	}
	first := make([]int, len(m.Video))
	chunks := v.Chunks
	endsBy := func(segs []manifest.Segment, t time.Duration) bool {
		return len(segs) == 0 || segs[len(segs)-1].Start+segs[len(segs)-1].Duration <= t+time.Millisecond
	}
	for q, r := range m.Video {
		s0 := startsAt(r.Segments, at)
		switch {
		case s0 < 0 && ended && endsBy(r.Segments, at):
			s0 = len(r.Segments) // the stream ended before chunk k
		case s0 < 0:
			return fmt.Errorf("rendition %s has no segment at %v, where chunk %d begins", r.ID, at, k+1)
		}
		if left := len(r.Segments) - s0; left < chunks-k {
			if !ended {
				return fmt.Errorf("rendition %s ends %d segments after chunk %d, %d short of the session's length", r.ID, left, k+1, chunks-k-left)
			}
			chunks = k + left
		}
		first[q] = s0
	}
	if ended {
		v.live.ended = true
		v.Chunks = chunks
	}
	for q, r := range m.Video {
		s0 := first[q]
		for j := k; j < v.Chunks; j++ {
			s := r.Segments[s0+j-k]
			v.URLs[j][q], v.Sizes[j][q] = s.URL, s.RangeSize()
			if v.Ranges != nil {
				v.Ranges[j][q] = s.Range
			}
			if q == 0 {
				v.Ends[j] = s.Start + s.Duration - v.liveOffset
				v.live.predicted[j] = false
				v.liveNumbers[j] = s.Number
			}
			v.live.predicted[j] = v.live.predicted[j] || s.Predicted
		}
	}
	if v.lazy != nil {
		v.lazy.mu.Lock()
		for j := k; j < v.Chunks; j++ {
			v.lazy.loaded[j] = false // sizes of the new layout are asked anew
		}
		v.lazy.mu.Unlock()
	}
	sound := m.MainAudio()
	if len(v.AudioURLs) == 0 || len(sound) == 0 {
		return nil
	}
	// The sound from its segment that is playing at chunk k's start.
	i0 := len(v.AudioEnds)
	for i, end := range v.AudioEnds {
		if end > at-v.liveOffset {
			i0 = i
			break
		}
	}
	segs := sound[0].Segments
	s0 := slices.IndexFunc(segs, func(s manifest.Segment) bool { return s.Start+s.Duration > at })
	switch {
	case s0 < 0 && ended:
		s0 = len(segs) // no sound after at
	case s0 < 0:
		return fmt.Errorf("the sound has no segment at %v", at)
	}
	for len(v.AudioRanges) < i0 {
		v.AudioRanges = append(v.AudioRanges, "")
	}
	v.AudioURLs, v.AudioEnds, v.AudioSize = v.AudioURLs[:i0], v.AudioEnds[:i0], v.AudioSize[:i0]
	v.live.audioPredicted = v.live.audioPredicted[:min(i0, len(v.live.audioPredicted))]
	if len(v.AudioRanges) > i0 {
		v.AudioRanges = v.AudioRanges[:i0]
	}
	for _, s := range segs[s0:] {
		v.AudioURLs = append(v.AudioURLs, s.URL)
		v.AudioEnds = append(v.AudioEnds, s.Start+s.Duration-v.liveOffset)
		v.AudioSize = append(v.AudioSize, s.RangeSize())
		v.AudioRanges = append(v.AudioRanges, s.Range)
		v.live.audioPredicted = append(v.live.audioPredicted, s.Predicted)
	}
	return nil
}
