package manifest

import (
	"fmt"
	"net/url"
	"slices"
	"time"
)

// ParseHLSLive reads a multivariant playlist as ParseHLS does and, when
// its media playlists are live (no EXT-X-ENDLIST), lays out the segments
// a player joining at join.Now plays, as ParseLive does for an MPD.
//
// HLS says nothing of when a segment is published: the end of the last
// segment a playlist lists is taken as the live edge at join.Now (Live's
// Epoch follows). The player joins three target durations behind it
// (RFC 8216 §6.3.3), or join.Delay. Renditions are aligned by media
// sequence number. Segments past the last listed have no URL yet: they
// are laid out at the target duration and marked Predicted, for the
// player to confirm from a reload (with Resume, anchored at a segment
// both loads list: AnchorNumber starting at AnchorStart).
func ParseHLSLive(data []byte, base *url.URL, get func(*url.URL) ([]byte, error), join LiveJoin) (*Manifest, error) {
	if join.Length <= 0 || join.Length > maxLiveLength {
		return nil, fmt.Errorf("hls: live length %v: want a positive duration of at most %v", join.Length, maxLiveLength)
	}
	return parseHLS(data, base, get, &join)
}

// layOutLiveHLS places the renditions of live playlists on one timeline
// and keeps the segments of join's window.
func (m *Manifest) layOutLiveHLS(lists []playlistInfo, join *LiveJoin) error {
	var target time.Duration
	for _, l := range lists {
		target = max(target, l.target)
	}
	if target <= 0 {
		return fmt.Errorf("hls: a live playlist without EXT-X-TARGETDURATION")
	}
	lead := m.Video[0]
	if join.Resume {
		i := slices.IndexFunc(lead.Segments, func(s Segment) bool { return s.Number == join.AnchorNumber })
		if i < 0 {
			return fmt.Errorf("hls: media sequence number %d is no longer in the playlist of %s", join.AnchorNumber, lead.ID)
		}
		lead.shift(join.AnchorStart - lead.Segments[i].Start)
	}
	starts := map[int]time.Duration{}
	for _, s := range lead.Segments {
		starts[s.Number] = s.Start
	}
	for _, r := range append(slices.Clone(m.Video[1:]), m.Audio...) {
		i := slices.IndexFunc(r.Segments, func(s Segment) bool { _, ok := starts[s.Number]; return ok })
		if i < 0 {
			return fmt.Errorf("hls: the playlists of %s and %s share no media sequence number", lead.ID, r.ID)
		}
		r.shift(starts[r.Segments[i].Number] - r.Segments[i].Start)
	}
	last := lead.Segments[len(lead.Segments)-1]
	edge := last.Start + last.Duration
	m.Live = &Live{Epoch: join.Now.Add(-edge), Ended: !slices.ContainsFunc(lists, func(l playlistInfo) bool { return l.open })}
	at := join.At
	if !join.Resume {
		delay := join.Delay
		if delay == 0 {
			delay = 3 * target
		}
		m.Live.Delay = delay
		at = max(edge-delay, lead.Segments[0].Start)
	}
	n := max(int((join.Length+target-1)/target)+1, join.MinSegments)
	if n > MaxSegments {
		return fmt.Errorf("hls: %d live segments of %v: more than %d segments", n, target, MaxSegments)
	}
	for _, r := range append(slices.Clone(m.Video), m.Audio...) {
		if m.Live.Ended {
			r.Segments = endedWindowOf(r.Segments, at, n)
		} else {
			r.Segments = liveWindowOf(r.Segments, at, n, target)
		}
	}
	m.Duration = join.Length
	return nil
}

// shift moves every segment of r by d on the timeline.
func (r *Representation) shift(d time.Duration) {
	for i := range r.Segments {
		r.Segments[i].Start += d
	}
}

// liveWindowOf is n segments of a live playlist from the one that holds
// at; past the last listed, predicted ones of step without a URL.
func liveWindowOf(segs []Segment, at time.Duration, n int, step time.Duration) []Segment {
	first := slices.IndexFunc(segs, func(s Segment) bool { return s.Start+s.Duration > at })
	var out []Segment
	if first >= 0 {
		out = slices.Clone(segs[first:min(len(segs), first+n)])
	}
	next := segs[len(segs)-1]
	if len(out) > 0 {
		next = out[len(out)-1]
	}
	if end := next.Start + next.Duration; len(out) == 0 && at >= end+step {
		// at is past what is listed: skip the predicted segments before it.
		skip := int((at - end) / step)
		next.Number += skip
		next.Start, next.Duration = end+time.Duration(skip-1)*step, step
	}
	for len(out) < n {
		next = Segment{Number: next.Number + 1, Start: next.Start + next.Duration, Duration: step, Predicted: true}
		out = append(out, next)
	}
	return out
}

// endedWindowOf is at most n segments of a closed playlist from the one
// that holds at: none when at is past its end.
func endedWindowOf(segs []Segment, at time.Duration, n int) []Segment {
	first := slices.IndexFunc(segs, func(s Segment) bool { return s.Start+s.Duration > at })
	if first < 0 {
		return nil
	}
	return slices.Clone(segs[first:min(len(segs), first+n)])
}
