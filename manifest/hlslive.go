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
		if err := lead.anchor(join); err != nil {
			return err
		}
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
	m.Live = &Live{Epoch: join.Now.Add(-edge), Ended: !slices.ContainsFunc(lists, func(l playlistInfo) bool { return l.open }),
		PlaylistWindow: edge - lead.Segments[0].Start}
	at := join.At
	if !join.Resume {
		delay := join.Delay
		if delay == 0 {
			delay = 3 * target
		}
		m.Live.Delay = delay
		at = max(edge-delay, lead.Segments[0].Start)
	}
	for _, r := range append(slices.Clone(m.Video), m.Audio...) {
		var err error
		if r.Segments, err = windowOf(r.Segments, at, join, target, m.Live.Ended); err != nil {
			return err
		}
	}
	m.Duration = join.Length
	return nil
}

// anchor places a reloaded playlist on the timeline of the first load:
// the segment of media sequence number join.AnchorNumber starts at
// join.AnchorStart.
//
// A playlist that lists the segment just before it (one written a moment
// after another rendition's) ends where the anchor starts.
func (r *Representation) anchor(join *LiveJoin) error {
	i := slices.IndexFunc(r.Segments, func(s Segment) bool { return s.Number == join.AnchorNumber })
	if i >= 0 {
		r.shift(join.AnchorStart - r.Segments[i].Start)
		return nil
	}
	if n := len(r.Segments); n > 0 && r.Segments[n-1].Number+1 == join.AnchorNumber {
		last := r.Segments[n-1]
		r.shift(join.AnchorStart - (last.Start + last.Duration))
		return nil
	}
	return fmt.Errorf("hls: media sequence number %d is not in the playlist of %s", join.AnchorNumber, r.ID)
}

// windowOf is the segments of a live playlist a player plays from at for
// join's length (predicted past the last listed, of the target
// duration), or what is left of an ended one.
func windowOf(segs []Segment, at time.Duration, join *LiveJoin, target time.Duration, ended bool) ([]Segment, error) {
	n := max(int((join.Length+target-1)/target)+1, join.MinSegments)
	if n > MaxSegments {
		return nil, fmt.Errorf("hls: %d live segments of %v: more than %d segments", n, target, MaxSegments)
	}
	return liveWindowOf(segs, at, n, target, ended), nil
}

// ReloadHLSMedia lays out data, a reload of one live media playlist (at
// u) of a stream joined with ParseHLSLive, on the timeline of that join:
// anchored as join says (Resume, AnchorNumber at AnchorStart), from
// join.At. A player reloads only the playlist of the rendition it plays
// (and the sound's), as hls.js does, not the whole ladder. ended: the
// playlist gained EXT-X-ENDLIST, and the segments are all that is left.
func ReloadHLSMedia(data []byte, u *url.URL, join LiveJoin) (segs []Segment, ended bool, err error) {
	if !join.Resume || join.Length <= 0 || join.Length > maxLiveLength {
		return nil, false, fmt.Errorf("hls: a reload resumes a live join of a positive length up to %v", maxLiveLength)
	}
	r := &Representation{ID: repID(u)}
	info, err := readMediaPlaylist(r, u, func(*url.URL) ([]byte, error) { return data, nil }, true)
	if err != nil {
		return nil, false, err
	}
	if len(r.Segments) == 0 {
		return nil, false, fmt.Errorf("hls: %s lists no segments", u)
	}
	if info.target <= 0 {
		return nil, false, fmt.Errorf("hls: %s: a live playlist without EXT-X-TARGETDURATION", u)
	}
	if err := r.anchor(&join); err != nil {
		return nil, false, err
	}
	segs, err = windowOf(r.Segments, join.At, &join, info.target, !info.open)
	if err == nil && len(segs) > 0 && segs[0].Init == "" {
		// The first names the initialization segment it needs (the last
		// EXT-X-MAP before it), so that a player who had another for it
		// learns of the change even when it is not in the window.
		segs[0].Init, segs[0].InitRange = r.Init, r.InitRange
		for _, s := range r.Segments {
			if s.Start >= segs[0].Start+time.Millisecond {
				break
			}
			if s.Init != "" {
				segs[0].Init, segs[0].InitRange = s.Init, s.InitRange
			}
		}
	}
	return segs, !info.open, err
}

// shift moves every segment of r by d on the timeline.
func (r *Representation) shift(d time.Duration) {
	for i := range r.Segments {
		r.Segments[i].Start += d
	}
}

// liveWindowOf is n segments of a live playlist from the one that holds
// at; past the last listed, predicted ones of step without a URL. Of an
// ended playlist, what it lists of them: none when at is past its end.
func liveWindowOf(segs []Segment, at time.Duration, n int, step time.Duration, ended bool) []Segment {
	first := slices.IndexFunc(segs, func(s Segment) bool { return s.Start+s.Duration > at })
	var out []Segment
	if first >= 0 {
		out = slices.Clone(segs[first:min(len(segs), first+n)])
	}
	if ended {
		return out
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
