//go:build !js

package player

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/deepcast/deepcast/manifest"
)

// predictedOf marks the segments each video rendition only predicted
// (per chunk, per rendition), and the main sound's.
func predictedOf(m *manifest.Manifest) (video [][]bool, audio []bool, audioNumbers []int) {
	for q, r := range m.Video {
		for k, s := range r.Segments {
			if k >= len(video) {
				video = append(video, make([]bool, len(m.Video)))
			}
			video[k][q] = s.Predicted
		}
	}
	if sound := m.MainAudio(); len(sound) > 0 {
		for _, s := range sound[0].Segments {
			audio, audioNumbers = append(audio, s.Predicted), append(audioNumbers, s.Number)
		}
	}
	return video, audio, audioNumbers
}

// soundAnchor places a reload of live HLS's sound playlist (the
// AnchorNumber and AnchorStart of a LiveJoin) by the sound's own segments:
// where the latest listed one that starts by at ends, on the stream's
// timeline, the one numbered after it begins. Sound cut at AAC frames
// drifts some milliseconds from the video segment of the same number
// (ffmpeg's run 2.005 s, 2.005 s, 2.005 s, 1.984 s against 2 s), and a
// reload placed by the video's would move it: the sound segment that
// plays at at could seem over before it, and be skipped. false: none is
// known since the session last joined (place it by the video's).
func (v *Video) soundAnchor(at time.Duration) (number int, start time.Duration, ok bool) {
	since := v.liveOffset + v.chunkStart(v.live.since)
	for j := min(len(v.AudioEnds), len(v.live.audioNumbers)) - 1; j >= 0; j-- {
		end := v.AudioEnds[j] + v.liveOffset
		if end <= since {
			break // laid out before the session last joined: another stretch
		}
		if j > 0 && v.AudioEnds[j-1]+v.liveOffset > at || j < len(v.live.audioPredicted) && v.live.audioPredicted[j] {
			continue // after at, or not listed yet
		}
		return v.live.audioNumbers[j] + 1, end, true
	}
	return 0, 0, false
}

// chunkStart is when chunk k begins, from chunk 0's start.
func (v *Video) chunkStart(k int) time.Duration {
	if k == 0 {
		return 0
	}
	return v.Ends[k-1]
}

// relayFrom lays chunks k on, and the sound from the segment playing at
// at (chunk k's start on the stream's timeline), out again from m, a
// re-read of the live MPD; or, from the static MPD a stream leaves when it
// ends, what there is of them: the Video is cut to the chunks published.
func (v *Video) relayFrom(k int, at time.Duration, m *manifest.Manifest) error {
	if len(m.Video) != len(v.Bitrates) {
		return fmt.Errorf("the ladder changed: %d video renditions, %d before", len(m.Video), len(v.Bitrates))
	}
	ended := m.Live == nil || m.Live.Ended
	for _, c := range ladderChanges(m.Remapped) {
		if !slices.Contains(v.LadderChanges, c) {
			v.LadderChanges = append(v.LadderChanges, c) // a Period a re-read lists
		}
	}
	lists := make([]relaid, len(m.Video))
	for q, r := range m.Video {
		lists[q] = relaid{r.ID, r.Segments, true, r.Init, r.InitRange}
	}
	if err := v.relayVideo(k, at, lists, ended); err != nil {
		return err
	}
	if sound := m.MainAudio(); len(sound) > 0 {
		return v.relayAudio(at, sound[0].Segments, ended, sound[0].Init, sound[0].InitRange)
	}
	return nil
}

// relaid is a rendition's segments as a reload lists them.
type relaid struct {
	id       string
	segs     []manifest.Segment
	reloaded bool // false: this rendition was not reloaded
	// init is the initialization segment the first of segs needs, where
	// the reload says (a segment that needs another names it).
	init, initRange string
}

// renoteInits replaces what rendition q (-1: the sound) needs to
// initialize its chunks (audio segments) from k on with what a reload
// says: init for chunk k, and what segs (chunks k on) name.
func (v *Video) renoteInits(q, k int, init, initRange string, segs []manifest.Segment) {
	if init == "" && !slices.ContainsFunc(segs, func(s manifest.Segment) bool { return s.Init != "" }) {
		return // the reload says nothing of them: keep what is known
	}
	v.forgetInits(k, q)
	if init != "" {
		if u, rng := v.InitFor(k, q); u != init || rng != initRange {
			v.noteInit(k, q, init, initRange)
		}
	}
	for i, s := range segs {
		v.noteInit(k+i, q, s.Init, s.InitRange)
	}
}

// relayVideo lays chunks k on out again for the renditions lists has
// segments for (from the one that starts at at); ended cuts the Video to
// the chunks there are.
func (v *Video) relayVideo(k int, at time.Duration, lists []relaid, ended bool) error {
	startsAt := func(segs []manifest.Segment, t time.Duration) int {
		for i, s := range segs {
			if d := s.Start - t; d > -time.Millisecond && d < time.Millisecond {
				return i
			}
		}
		return -1
	}
	endsBy := func(segs []manifest.Segment, t time.Duration) bool {
		return len(segs) == 0 || segs[len(segs)-1].Start+segs[len(segs)-1].Duration <= t+time.Millisecond
	}
	first := make([]int, len(lists))
	chunks := v.Chunks
	lead := -1 // the first rendition reloaded: the chunks' timeline follows it
	for q, r := range lists {
		if !r.reloaded {
			continue
		}
		s0 := startsAt(r.segs, at)
		switch {
		case s0 < 0 && ended && endsBy(r.segs, at):
			s0 = len(r.segs) // the stream ended before chunk k
		case s0 < 0:
			return fmt.Errorf("rendition %s has no segment at %v, where chunk %d begins", r.id, at, k+1)
		}
		if left := len(r.segs) - s0; left < chunks-k {
			if !ended {
				return fmt.Errorf("rendition %s ends %d segments after chunk %d, %d short of the session's length", r.id, left, k+1, chunks-k-left)
			}
			chunks = k + left
		}
		first[q] = s0
		if lead < 0 {
			lead = q
		}
	}
	if ended {
		v.live.ended = true
		v.Chunks = min(v.Chunks, chunks)
	}
	for q, r := range lists {
		if !r.reloaded {
			continue
		}
		v.renoteInits(q, k, r.init, r.initRange, r.segs[first[q]:first[q]+v.Chunks-k])
		for j := k; j < v.Chunks; j++ {
			s := r.segs[first[q]+j-k]
			v.URLs[j][q], v.Sizes[j][q] = s.URL, s.RangeSize()
			if v.Ranges != nil {
				v.Ranges[j][q] = s.Range
			}
			if q == lead {
				v.Ends[j] = s.Start + s.Duration - v.liveOffset
				v.liveNumbers[j] = s.Number
			}
			v.live.predicted[j][q] = s.Predicted
		}
	}
	if v.lazy != nil {
		v.lazy.mu.Lock()
		for j := k; j < v.Chunks; j++ {
			v.lazy.loaded[j] = false // sizes of the new layout are asked anew
		}
		v.lazy.mu.Unlock()
	}
	return nil
}

// relayAudio lays the sound out again from segs (a reload of its
// Representation), from its segment that is playing at at.
func (v *Video) relayAudio(at time.Duration, segs []manifest.Segment, ended bool, init, initRange string) error {
	if len(v.AudioURLs) == 0 {
		return nil
	}
	i0 := len(v.AudioEnds)
	for i, end := range v.AudioEnds {
		if end > at-v.liveOffset {
			i0 = i
			break
		}
	}
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
	v.live.audioNumbers = v.live.audioNumbers[:min(i0, len(v.live.audioNumbers))]
	if len(v.AudioRanges) > i0 {
		v.AudioRanges = v.AudioRanges[:i0]
	}
	v.renoteInits(-1, i0, init, initRange, segs[s0:])
	for _, s := range segs[s0:] {
		v.AudioURLs = append(v.AudioURLs, s.URL)
		v.AudioEnds = append(v.AudioEnds, s.Start+s.Duration-v.liveOffset)
		v.AudioSize = append(v.AudioSize, s.RangeSize())
		v.AudioRanges = append(v.AudioRanges, s.Range)
		v.live.audioPredicted = append(v.live.audioPredicted, s.Predicted)
		v.live.audioNumbers = append(v.live.audioNumbers, s.Number)
	}
	if ended {
		v.live.ended = true
	}
	return nil
}

// hlsPlaylists is the media playlists of live HLS's video renditions and
// then its sound's (nil for DASH).
func hlsPlaylists(m *manifest.Manifest) []string {
	if len(m.Video) == 0 || m.Video[0].Playlist == "" {
		return nil
	}
	var out []string
	for _, r := range m.Video {
		out = append(out, r.Playlist)
	}
	if sound := m.MainAudio(); len(sound) > 0 {
		out = append(out, sound[0].Playlist)
	}
	return out
}

// reloadPlaylist reloads the media playlist of rendition q (-1: the
// sound) of live HLS and lays chunks k on out again from it: a player
// reloads the playlist it plays from, not the ladder's.
func (v *Video) reloadPlaylist(ctx context.Context, client *http.Client, playlists []string, k, q int, join manifest.LiveJoin) error {
	i := q
	if q < 0 {
		i = len(v.Bitrates) // the sound's comes after the video's
	}
	if i >= len(playlists) {
		return fmt.Errorf("no playlist for rendition %d", q)
	}
	data, u, err := fetchDocument(ctx, playlists[i], client, manifest.MaxPlaylistSize)
	if err != nil {
		return fmt.Errorf("playlist %s: %w", playlists[i], err)
	}
	segs, ended, err := manifest.ReloadHLSMedia(data, u, join)
	if err != nil {
		return err
	}
	if q < 0 {
		return v.relayAudio(join.At, segs, ended, "", "")
	}
	lists := make([]relaid, len(v.Bitrates))
	lists[q] = relaid{id: u.String(), segs: segs, reloaded: true}
	return v.relayVideo(k, join.At, lists, ended)
}
