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

// ErrFellBehind is a live segment that left the stream's time-shift
// buffer before the player fetched it: the player fell further behind the
// live edge than the stream keeps segments. A session with Config.Rejoin
// jumps ahead to the live edge and plays on, as hls.js and dash.js do.
var ErrFellBehind = errors.New("fell behind the live stream's time-shift buffer")

// fellBehind is ErrFellBehind with how far.
type fellBehind struct {
	depth, late time.Duration
	playlist    bool // depth is an HLS playlist's window, not an MPD's
}

func (e *fellBehind) Error() string {
	what := fmt.Sprintf("it left the time-shift buffer (%v)", e.depth)
	if e.playlist {
		what = fmt.Sprintf("it slid off the playlist's %v window", e.depth)
	}
	return fmt.Sprintf("%s %v ago: the player fell further behind the live edge than the stream keeps segments", what, e.late.Round(time.Millisecond))
}

func (e *fellBehind) Is(target error) bool { return target == ErrFellBehind }

// liveFeed is how a live Video follows its MPD: a live SegmentTimeline
// lists the segments published so far, and the ones after are laid out at
// the last one's duration until a later MPD lists them; an MPD with a
// minimumUpdatePeriod is re-read that often; and a stream may end.
type liveFeed struct {
	// relayout re-reads the MPD and lays the stream out again from video
	// chunk k (and the sound from there). An HLS stream reloads only the
	// media playlist of rendition q (-1: the sound's), as hls.js does.
	relayout func(ctx context.Context, k, q int) error
	// rejoin re-reads the MPD (every HLS playlist), joins it afresh and
	// lays chunks k on out again from there (Video.Rejoin). It returns
	// the media time skipped.
	rejoin func(ctx context.Context, k int) (time.Duration, error)
	// since is the chunk the stream was last (re)joined at: the chunks
	// before it lie on another stretch of the timeline, and no reload is
	// anchored by them.
	since          int
	joinedAt       time.Time // LiveStart when the player joined
	predicted      [][]bool  // per video chunk, per rendition
	audioPredicted []bool    // per audio segment
	audioNumbers   []int     // per audio segment, its number: reloads of HLS's sound are placed by it
	playing        int       // the video chunk the session is at
	current        int       // the rendition it last waited for
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
	// playlistWindow is live HLS's manifest.Live.PlaylistWindow.
	playlistWindow time.Duration
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
		for j := min(k, len(l.predicted)-1); j >= min(l.since, k); j-- {
			if by(j) {
				return j
			}
		}
	}
	return min(l.since, k)
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
	if behind := v.leftStream(k, audio, false); behind != nil {
		// Gone by the MPD's clock: asking for it would only be refused.
		return fmt.Errorf("%s: %w", segmentName(k, audio), behind)
	}
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
			return fmt.Errorf("live MPD: %s, due at %s, is still not listed", segmentName(k, audio), v.AvailableAt(k, audio).UTC().Format("15:04:05.000"))
		}
		if err := v.live.reread(ctx, v.live.playing, q); err != nil {
			if behind := v.leftStream(k, audio, true); behind != nil {
				// The playlist slid past what the reload is placed by.
				return fmt.Errorf("%s: %w (%v)", segmentName(k, audio), behind, err)
			}
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

// segmentName names video chunk k, or audio segment k, for messages.
func segmentName(k int, audio bool) string {
	if audio {
		return fmt.Sprintf("audio segment %d", k+1)
	}
	return fmt.Sprintf("video chunk %d", k+1)
}

// Gone says why chunk k (audio segment k) of a live stream, not found,
// will never come: the stream ended before it (ErrStreamEnded), or it left
// the MPD's time-shift buffer (the player fell further behind the live
// edge than the stream keeps segments); nil while it may still come.
func (v *Video) Gone(ctx context.Context, k int, audio bool) error {
	if v.endedBefore(ctx, k, audio) {
		return ErrStreamEnded
	}
	return v.leftStream(k, audio, true)
}

// leftStream says whether chunk k (audio segment k) of a live stream has
// left it: published longer ago than the MPD's time-shift buffer, else
// (orPlaylist: something says it is gone) than an HLS playlist's window
// at the join, which a growing playlist does not keep to; a fellBehind,
// or nil when it has not or the stream does not say.
func (v *Video) leftStream(k int, audio, orPlaylist bool) error {
	if v.live == nil {
		return nil
	}
	depth, playlist := v.live.timeShift, false
	if depth <= 0 && orPlaylist {
		depth, playlist = v.live.playlistWindow, true
	}
	if late := time.Since(v.AvailableAt(k, audio)) - depth; depth > 0 && late > 0 {
		return &fellBehind{depth: depth, late: late, playlist: playlist}
	}
	return nil
}

// Rejoin jumps a live stream that the player fell behind (ErrFellBehind)
// ahead to the live edge from chunk k: it joins afresh, as at the start
// (the MPD's suggestedPresentationDelay, else three segments behind the
// edge), chunk k becomes the segment it joins at, and the media before it
// is skipped (the duration returned). Chunks before k keep
// playing from the buffer. An error when there is nothing to gain: the
// stream is no further ahead than chunk k.
func (v *Video) Rejoin(ctx context.Context, k int) (time.Duration, error) {
	if v.live == nil || v.live.rejoin == nil {
		return 0, errors.New("not a live stream")
	}
	return v.live.rejoin(ctx, k)
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
// playback began and when its last chunk came, and over its chunks.
type Latency struct {
	Start, End time.Duration
	// Mean and Max are over the chunks' ChunkLog.Latency, as each chunk
	// came: zero unless the session had a Config.LiveEdge.
	Mean, Max time.Duration
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
	// A rejoin moved LiveStart: playback began behind the first one.
	joined := v.LiveStart
	if v.live != nil && !v.live.joinedAt.IsZero() {
		joined = v.live.joinedAt
	}
	playhead := v.LiveStart.Add(v.Ends[k] - last.Buffer)
	lat := Latency{
		Start: start.Add(res.Startup).Sub(joined),
		End:   start.Add(last.Time).Sub(playhead),
	}
	var sum time.Duration
	for i, l := range res.Log {
		sum += l.Latency
		if i == 0 || l.Latency > lat.Max {
			lat.Max = l.Latency
		}
	}
	lat.Mean = sum / time.Duration(len(res.Log))
	return lat, true
}
