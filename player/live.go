package player

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrStreamEnded is a live stream that ended before the session's length:
// the MPD turned static, or the playlists gained EXT-X-ENDLIST. The
// session ends there (Result.StreamEnded), as a viewer's player does.
var ErrStreamEnded = errors.New("the live stream ended")

// liveFeed is how a live Video follows its MPD: a live SegmentTimeline
// lists the segments published so far, and the ones after are laid out at
// the last one's duration until a later MPD lists them; an MPD with a
// minimumUpdatePeriod is re-read that often; and a stream may end.
type liveFeed struct {
	// relayout re-reads the MPD and lays the stream out again from video
	// chunk k (and the sound from there). An HLS stream reloads only the
	// media playlist of rendition q (-1: the sound's), as hls.js does.
	relayout       func(ctx context.Context, k, q int) error
	predicted      [][]bool // per video chunk, per rendition
	audioPredicted []bool   // per audio segment
	playing        int      // the video chunk the session is at
	current        int      // the rendition it last waited for
	// updateEvery is the MPD's minimumUpdatePeriod (0: none); read is
	// when it was last read.
	updateEvery time.Duration
	read        time.Time
	// ended: the stream has ended, and the Video holds all of it there
	// is (Chunks, AudioURLs cut to what was published).
	ended bool
	// timeShift is the MPD's timeShiftBufferDepth: how long a segment
	// stays available once published (0: unbounded or unknown).
	timeShift time.Duration
}

// reread lays the stream out again from the MPD, from chunk k on (for
// rendition q, or -1 the sound, where only those are reloaded).
func (l *liveFeed) reread(ctx context.Context, k, q int) error {
	if err := l.relayout(ctx, k, q); err != nil {
		return err
	}
	l.read = time.Now()
	return nil
}

// past reports whether chunk k (audio segment k) is past the end of a
// stream that has ended.
func (v *Video) past(k int, audio bool) bool {
	if v.live == nil || !v.live.ended {
		return false
	}
	if audio {
		return k >= len(v.AudioURLs)
	}
	return k >= v.Chunks
}

// isPredicted tells whether chunk k of rendition q (audio segment k
// when q is -1) is only predicted, not listed yet.
func (l *liveFeed) isPredicted(k, q int) bool {
	if q < 0 {
		return k < len(l.audioPredicted) && l.audioPredicted[k]
	}
	return k < len(l.predicted) && q < len(l.predicted[k]) && l.predicted[k][q]
}

// anchor is the chunk an HLS reload of rendition q's playlist is placed
// by (a segment both loads list): the last chunk up to k that its
// playlist listed, else that any playlist listed (its start is known,
// not predicted), else the first.
func (l *liveFeed) anchor(k, q int) int {
	for _, by := range []func(j int) bool{
		func(j int) bool { return q >= 0 && !l.predicted[j][q] },
		func(j int) bool { return slices.Contains(l.predicted[j], false) },
	} {
		for j := min(k, len(l.predicted)-1); j >= 0; j-- {
			if by(j) {
				return j
			}
		}
	}
	return 0
}

// liveConfirmGrace is how long past its predicted publication a segment
// may go unlisted by the MPD before the session gives up on it.
const liveConfirmGrace = 3

// WaitPublished waits on clock until chunk k of rendition q (audio
// segment k when q is -1) of a live stream is published, re-reading the
// MPD (reloading the rendition's playlist) for one it only predicted; it
// returns at once for VOD. It reads the wall clock: for play, whose clock
// is the wall's.
func (v *Video) WaitPublished(ctx context.Context, clock Clock, k, q int) error {
	if v.live == nil {
		return nil
	}
	audio := q < 0
	if !audio {
		v.live.playing, v.live.current = k, q
	}
	var deadline time.Time
	poll := v.ChunkDuration / 8 // doubling to half a chunk: a packager may list a segment a chunk late
	for {
		if v.past(k, audio) {
			return ErrStreamEnded
		}
		if w := time.Until(v.AvailableAt(k, audio)); w > 0 {
			if err := clock.Sleep(ctx, w); err != nil {
				return err
			}
		}
		if !v.live.isPredicted(k, q) {
			if every := v.live.updateEvery; every > 0 && time.Since(v.live.read) >= every {
				// The MPD may have changed (or ended the stream): read it
				// again. One that cannot be read now leaves the layout
				// as it was; the segments will say.
				_ = v.live.reread(ctx, v.live.playing, q)
				if v.past(k, audio) {
					return ErrStreamEnded
				}
			}
			return nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(liveConfirmGrace*v.ChunkDuration + time.Second)
		}
		if time.Now().After(deadline) {
			what := "video chunk"
			if audio {
				what = "audio segment"
			}
			return fmt.Errorf("live MPD: %s %d, due at %s, is still not listed", what, k+1, v.AvailableAt(k, audio).UTC().Format("15:04:05.000"))
		}
		if err := v.live.reread(ctx, v.live.playing, q); err != nil {
			return fmt.Errorf("live MPD: %w", err)
		}
		if v.past(k, audio) {
			return ErrStreamEnded
		}
		if v.live.isPredicted(k, q) && time.Until(v.AvailableAt(k, audio)) <= 0 {
			// Published by the clock, not yet in the MPD: the packager
			// writes the MPD after the segment. Ask again shortly.
			if err := clock.Sleep(ctx, poll); err != nil {
				return err
			}
			poll = min(2*poll, v.ChunkDuration/2)
		}
	}
}

// Gone says why chunk k (audio segment k) of a live stream, not found,
// will never come: the stream ended before it (ErrStreamEnded), or it left
// the MPD's time-shift buffer (the player fell further behind the live
// edge than the stream keeps segments); nil while it may still come.
func (v *Video) Gone(ctx context.Context, k int, audio bool) error {
	if v.endedBefore(ctx, k, audio) {
		return ErrStreamEnded
	}
	if v.live == nil || v.live.timeShift <= 0 {
		return nil
	}
	if late := time.Since(v.AvailableAt(k, audio)) - v.live.timeShift; late > 0 {
		return fmt.Errorf("it left the time-shift buffer (%v) %v ago: the player fell further behind the live edge than the stream keeps segments",
			v.live.timeShift, late.Round(time.Millisecond))
	}
	return nil
}

// endedBefore reports whether a live stream has ended before chunk k
// (audio segment k): asked when the segment is not found, it re-reads the
// MPD, which a packager makes static (or its playlists closed) when the
// stream ends. False for VOD, a stream still going, or an MPD that cannot
// be read.
func (v *Video) endedBefore(ctx context.Context, k int, audio bool) bool {
	if v.live == nil {
		return false
	}
	if !v.past(k, audio) {
		q := v.live.current
		if audio {
			q = -1
		}
		if err := v.live.reread(ctx, v.live.playing, q); err != nil {
			return false
		}
	}
	return v.past(k, audio)
}

// Latency is how far behind the live edge a live session played: when
// playback began and when its last chunk came.
type Latency struct {
	Start, End time.Duration
}

// LiveLatency measures res, a session of live v begun at start (wall
// time), from the log it kept; false for VOD or a session without a log.
// The playhead is at chunk 0's start when playback begins, and at the end
// of the media in, less the buffer, when each chunk comes.
func (v *Video) LiveLatency(start time.Time, res Result) (Latency, bool) {
	if v.LiveStart.IsZero() || len(res.Log) == 0 {
		return Latency{}, false
	}
	last := res.Log[len(res.Log)-1]
	k := last.Chunk - 1
	if k < 0 || k >= len(v.Ends) {
		return Latency{}, false
	}
	playhead := v.LiveStart.Add(v.Ends[k] - last.Buffer)
	return Latency{
		Start: start.Add(res.Startup).Sub(v.LiveStart),
		End:   start.Add(last.Time).Sub(playhead),
	}, true
}
