package manifest

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// Live is what a player needs of a dynamic (live) MPD besides its segments.
type Live struct {
	// Epoch is the wall-clock time of presentation time zero (a Segment's
	// Start of 0): an MPD's availabilityStartTime, from which every
	// Period's start counts, so that the segments of all its Periods lie
	// on one timeline that stays put as Periods come and go. A segment can
	// be fetched from Epoch + Start + Duration on.
	Epoch time.Time
	// Delay is how far behind the live edge the segments laid out begin.
	Delay time.Duration
	// TimeShiftBufferDepth is how long a segment stays available after
	// it becomes so (0: the MPD does not say).
	TimeShiftBufferDepth time.Duration
	// PlaylistWindow is, for live HLS, the media time the first load of
	// the lead media playlist listed. A sliding playlist drops a segment
	// about that long after it is published (RFC 8216 keeps it on the
	// server a while longer), but a growing one (an EVENT) never does:
	// unlike an MPD's depth it only explains a segment not found.
	PlaylistWindow time.Duration
	// MinimumUpdatePeriod is how often the MPD may change
	// (minimumUpdatePeriod): a player re-reads it that often. 0: the MPD
	// does not say, or an HLS playlist (reloaded as its segments are due).
	MinimumUpdatePeriod time.Duration
	// Location is where the MPD is to be re-read from (its Location
	// element, resolved), "" to re-read it where it was read.
	Location string
	// Ended marks a resumed layout of a stream that has ended (an HLS
	// playlist that gained EXT-X-ENDLIST): the segments laid out are all
	// there are, none predicted.
	Ended bool
}

// LiveClocks returns a live MPD's UTCTiming elements, in its order of
// preference: where the server's clock can be read, so that a player
// whose clock differs computes availability by the server's (and joins
// by it: read them before ParseLive). None for a static MPD or one that
// does not parse.
func LiveClocks(data []byte) (out []UTCTiming) {
	defer func() {
		if recover() != nil {
			out = nil // the MPD library's panic on hostile input: no clocks
		}
	}()
	if len(data) > MaxMPDSize {
		return nil
	}
	clean, err := sanitize(data)
	if err != nil {
		return nil
	}
	doc, err := mpd.MPDFromBytes(clean)
	if err != nil || doc.GetType() != mpd.DYNAMIC_TYPE {
		return nil
	}
	for _, u := range doc.UTCTimings {
		if u != nil {
			out = append(out, UTCTiming{Scheme: strings.TrimSpace(string(u.SchemeIdUri)), Value: strings.TrimSpace(u.Value)})
		}
	}
	return out
}

// UTCTiming is one of an MPD's clock sources (ISO/IEC 23009-1 §5.8.4.11):
// a scheme such as urn:mpeg:dash:utc:http-iso:2014 and its value (a URL,
// or the time itself for the direct scheme).
type UTCTiming struct {
	Scheme, Value string
}

// LiveJoin is when and how a player joins a live MPD.
type LiveJoin struct {
	Now time.Time
	// Length is the media time to lay segments out for, from the point
	// where the player joins.
	Length time.Duration
	// Delay is how far behind the live edge to join: 0 for the MPD's
	// suggestedPresentationDelay, else three segments (what dash.js and
	// DASH-IF's guidelines take when the MPD says nothing).
	Delay time.Duration
	// Resume lays the segments out from the one that holds At (media
	// time from Epoch) instead: a player re-reading the MPD where it has
	// got to.
	Resume bool
	At     time.Duration
	// MinSegments is the fewest segments to lay out (whatever Length
	// makes of the last duration).
	MinSegments int
	// AnchorNumber and AnchorStart place a resumed HLS layout on the
	// timeline: the segment of that media sequence number (which both
	// loads list) starts at AnchorStart. An MPD has its own clock.
	AnchorNumber int
	AnchorStart  time.Duration
	// Ladder is the video ladder a player re-reading the MPD plays with
	// (its renditions' ids and bandwidths; their segments are not read),
	// onto which the Periods' renditions are laid (see stitch); nil for
	// the Periods' own.
	Ladder []*Representation
}

// maxLiveAge bounds how long ago a live stream may have started (a
// hundred years), so its timeline stays within a time.Duration.
const maxLiveAge = 100 * 365 * 24 * time.Hour

// maxLiveLength bounds a live session's laid-out media time.
const maxLiveLength = 7 * 24 * time.Hour

// ParseLive reads an MPD as Parse does and, when it is dynamic (live),
// lays out the segments a player joining at join.Now plays: from the live
// edge minus the delay, for join.Length. A static MPD is read as
// ParseIndexed reads it, with fetch.
//
// A live MPD must address segments with a SegmentTemplate: of fixed
// @duration, whose segments follow from the clock, or with a
// SegmentTimeline, which lists those published so far; the segments
// after its last are laid out at its last duration and marked Predicted,
// for the player to confirm from a later MPD (re-read with Resume).
func ParseLive(data []byte, base *url.URL, fetch IndexFetcher, join LiveJoin) (*Manifest, error) {
	if join.Length <= 0 || join.Length > maxLiveLength {
		return nil, fmt.Errorf("mpd: live length %v: want a positive duration of at most %v", join.Length, maxLiveLength)
	}
	return parse(data, base, fetch, &join)
}

// liveWindow is a live join placed on a Period's timeline: liveSetup
// places it on the MPD's (from availabilityStartTime), and layLive
// moves it to each Period's in turn.
type liveWindow struct {
	edge   time.Duration // the live edge, from the Period's start
	delay  time.Duration // 0: three segments
	length time.Duration
	tsbd   time.Duration // 0: unbounded
	resume bool          // lay out from at, not from the edge less the delay (layLive places that point, and resumes there)
	at     time.Duration
	least  int // the fewest segments to lay out

	// end is where the Period ends, from its start (0: it has no end
	// yet, the last of a live MPD); the segments from there on are cut,
	// or with beyond (no later Period is listed yet) laid out on but
	// predicted, for a later MPD to tell.
	end    time.Duration
	beyond bool
	// step is the segment duration to predict with where the Period's
	// SegmentTimeline lists none yet (one that has just begun; 0: none).
	step time.Duration
	// ladder is the video ladder to lay out for (LiveJoin.Ladder); nil:
	// the Periods' own (see ladderOf).
	ladder []*Representation
}

// liveSetup checks a dynamic MPD (read from base, never nil: parse sees
// to it) and places join on its timeline.
func liveSetup(doc *mpd.MPD, base *url.URL, join *LiveJoin) (*Live, *liveWindow, error) {
	ast := strings.TrimSpace(string(doc.AvailabilityStartTime))
	if ast == "" {
		return nil, nil, fmt.Errorf("a live MPD without availabilityStartTime")
	}
	t, err := ParseDateTime(ast)
	if err != nil {
		return nil, nil, fmt.Errorf("availabilityStartTime %q: %w", ast, err)
	}
	live := &Live{Epoch: t}
	w := &liveWindow{edge: join.Now.Sub(live.Epoch), delay: join.Delay, length: join.Length, resume: join.Resume, at: join.At, least: join.MinSegments,
		ladder: join.Ladder}
	if w.edge >= maxLiveAge {
		return nil, nil, fmt.Errorf("availabilityStartTime %q is more than %v ago", ast, maxLiveAge)
	}
	if w.edge <= 0 {
		return nil, nil, fmt.Errorf("the live stream starts at %s, after now (%s): is this machine's clock right?", live.Epoch.UTC().Format(time.RFC3339), join.Now.UTC().Format(time.RFC3339))
	}
	if doc.TimeShiftBufferDepth != nil {
		w.tsbd = time.Duration(*doc.TimeShiftBufferDepth)
		live.TimeShiftBufferDepth = w.tsbd
	}
	for _, l := range doc.Location {
		// The first that is an http(s) URL: a player follows no other
		// scheme (file:, say) an MPD names.
		if u, err := base.Parse(strings.TrimSpace(l.Value)); l.Value != "" && err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			live.Location = u.String()
			break
		}
	}
	if doc.MinimumUpdatePeriod != nil {
		live.MinimumUpdatePeriod = max(time.Duration(*doc.MinimumUpdatePeriod), 0)
	}
	if w.delay == 0 && doc.SuggestedPresentationDelay != nil {
		w.delay = time.Duration(*doc.SuggestedPresentationDelay)
	}
	return live, w, nil
}

// ParseDateTime reads an xs:dateTime, as an MPD's times and a UTCTiming
// clock source give them (surrounding space aside); one without a time
// zone is UTC.
func ParseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an xs:dateTime")
}

// joinDelay is how far behind the live edge a session joins a stream of
// d-long segments: the delay asked for, else three segments; at least
// one (the segment at the edge is not complete), and within the
// time-shift buffer.
func (w *liveWindow) joinDelay(d time.Duration) time.Duration {
	delay := w.delay
	if delay == 0 {
		delay = 3 * d
	}
	delay = max(delay, d)
	if w.tsbd > 0 {
		delay = min(delay, max(w.tsbd-d, d))
	}
	return delay
}

// edgeStep is the duration of the latest segment the first video
// Representation of Period p lists (or, with a fixed @duration, of every
// one): what the join delay counts in. 0: its SegmentTimeline lists none
// yet, or p has no video the player would take (parsing it says why).
func edgeStep(p *mpd.Period) time.Duration {
	for _, as := range p.AdaptationSets {
		if trickMode(as) {
			continue
		}
		for _, rep := range as.Representations {
			if contentKind(as, rep) != "video" {
				continue
			}
			a, err := resolveAddressing(
				addressingLevel{p.SegmentBase, p.SegmentList, p.SegmentTemplate},
				addressingLevel{as.SegmentBase, as.SegmentList, as.SegmentTemplate},
				addressingLevel{rep.SegmentBase, rep.SegmentList, rep.SegmentTemplate})
			switch {
			case err != nil:
				return 0
			case a.timeline != nil && len(a.timeline.S) > 0:
				return toDur(int64(a.timeline.S[len(a.timeline.S)-1].D), a.timescale)
			case a.timeline == nil:
				return toDur(int64(a.duration), a.timescale)
			}
			return 0
		}
	}
	return 0
}

// liveSpans lays out a live Representation's segments for w: from the
// one that holds w.at (layLive places the join point) for w.length and
// one more. A fixed @duration gives every segment from the clock; a
// SegmentTimeline lists those published so far, and the ones after its
// last are laid out at its last duration (predicted: a later MPD tells).
// It returns the spans, the index of the first from the Period's first
// segment, and how many of them the MPD lists.
func (a *addressing) liveSpans(w *liveWindow, budget int) (out []span, first, listed int, err error) {
	var known []span // the timeline's segments, nil for a fixed duration
	guessed := false // known is a guess: the timeline lists none yet
	step := a.duration
	if a.timeline != nil {
		// An @r of -1 repeats up to the live edge (or the Period's end).
		upTo := max(w.edge, 0)
		if w.end > 0 {
			upTo = min(upTo, w.end)
		}
		if known, err = a.spans(upTo, -1, budget); err != nil {
			return nil, 0, 0, err
		}
		switch {
		case len(known) > 0:
			step = known[len(known)-1].d
		case w.step > 0:
			// A Period that has just begun: its segments are predicted
			// at the duration of the one before's, from its start.
			step = max(ticksOf(w.step, a.timescale), 1)
			known, guessed = []span{{a.pto, step}}, true
		default:
			return nil, 0, 0, errNoLiveSegments
		}
	}
	if step == 0 {
		return nil, 0, 0, fmt.Errorf("a live SegmentTemplate with neither @duration nor SegmentTimeline")
	}
	d := toDur(int64(step), a.timescale)
	if d <= 0 {
		return nil, 0, 0, fmt.Errorf("segment duration %d/%d s", step, a.timescale)
	}
	join := w.at
	n := max(int((w.length+d-1)/d)+1, w.least)
	if n > budget || n < 0 {
		return nil, 0, 0, fmt.Errorf("%d live segments of %v: more than %d segments", n, d, MaxSegments)
	}
	joinTicks := a.pto + uint64(join.Seconds()*float64(a.timescale))
	if known == nil {
		first = int(join / d)
		if float64(a.pto)+float64(first+n)*float64(step) > 1<<62 {
			return nil, 0, 0, fmt.Errorf("segment %d of %d/%d s: past the end of the media timeline", first+n, step, a.timescale)
		}
		for k := range n {
			out = append(out, span{a.pto + uint64(first+k)*step, step})
		}
		out, listed = w.cut(a, out, n)
		return out, first, listed, nil
	}
	// The listed segment that holds the join point (or the first listed,
	// when the join point is before the timeline; or past the last).
	first = len(known)
	for k, s := range known {
		if s.t+s.d > joinTicks {
			first = k
			break
		}
	}
	out = known[first:min(len(known), first+n)]
	listed = len(out)
	if guessed {
		listed = 0
	}
	end := known[len(known)-1].t + step
	if listed > 0 {
		end = out[listed-1].t + out[listed-1].d
	}
	for len(out) < n {
		if float64(end)+float64(step) > 1<<62 {
			return nil, 0, 0, fmt.Errorf("segment at %d/%d s: past the end of the media timeline", end, a.timescale)
		}
		out = append(out, span{end, step})
		end += step
	}
	out, listed = w.cut(a, out, listed)
	return out, first, listed, nil
}

// cut holds a Period's live segments to its end: those that start there
// or after are dropped, or, when no later Period is listed yet
// (w.beyond), kept as predicted (listed is how many are not).
func (w *liveWindow) cut(a *addressing, out []span, listed int) ([]span, int) {
	if w.end <= 0 {
		return out, listed
	}
	endTicks := a.pto + ticksOf(w.end, a.timescale)
	keep := len(out)
	for k, s := range out {
		if s.t >= endTicks {
			keep = k
			break
		}
	}
	if w.beyond {
		return out, min(listed, keep)
	}
	out = out[:keep]
	if keep > 0 && out[keep-1].t+out[keep-1].d > endTicks {
		out[keep-1].d = endTicks - out[keep-1].t // the Period ends within it
	}
	return out, min(listed, keep)
}

// ticksOf is d in ticks of timescale, rounded.
func ticksOf(d time.Duration, timescale uint64) uint64 {
	return uint64(math.Round(max(d.Seconds(), 0) * float64(timescale)))
}

// errNoLiveSegments is a live Period whose SegmentTimeline lists no
// segment yet.
var errNoLiveSegments = errors.New("the live SegmentTimeline lists no segments")

// livePeriodSpans places a live MPD's Periods on its timeline (from
// availabilityStartTime): each at its @start, else where the one before
// ends; each ends where the next starts or, sooner, after its @duration;
// the last, without a @duration, has no end yet (dur 0).
func livePeriodSpans(doc *mpd.MPD) ([]periodSpan, error) {
	spans := make([]periodSpan, len(doc.Periods))
	for i, p := range doc.Periods {
		var placed bool
		if spans[i].start, placed = placeAt(doc, spans, i); !placed {
			return nil, fmt.Errorf("period %d has no @start, and the one before it no @duration: it cannot be placed", i+1)
		}
		if spans[i].start < 0 || i > 0 && spans[i].start < spans[i-1].start {
			return nil, fmt.Errorf("period %d starts at %v, before the one before it", i+1, spans[i].start)
		}
		if p.Duration != nil {
			if spans[i].dur = time.Duration(*p.Duration); spans[i].dur <= 0 {
				return nil, fmt.Errorf("period %d lasts %v", i+1, spans[i].dur)
			}
		}
		if i > 0 {
			if until := spans[i].start - spans[i-1].start; spans[i-1].dur == 0 || spans[i-1].dur > until {
				spans[i-1].dur = until
			}
		}
	}
	return spans, nil
}

// layLive lays out a live MPD's segments for w, on the MPD's timeline:
// from the Period that holds the join point, on through the Periods
// listed after it for w.length, stitched onto one video ladder (w.ladder,
// else liveLadder's) as a static MPD's Periods are. A Period that has
// just begun, whose SegmentTimeline lists nothing yet, is laid out from
// its start at the duration of the segments before it, predicted.
func (m *Manifest) layLive(doc *mpd.MPD, base *url.URL, mpdBases []*mpd.BaseURLType, w *liveWindow, fetch IndexFetcher) error {
	spans, err := livePeriodSpans(doc)
	if err != nil {
		return fmt.Errorf("mpd: %w", err)
	}
	// periodAt is the Period that holds x (the first when x is before it).
	periodAt := func(x time.Duration) int {
		i := 0
		for j, s := range spans {
			if s.start <= x && (s.dur > 0 || j+1 == len(spans)) {
				i = j
			}
		}
		return i
	}
	budget := MaxSegments
	family := ""
	// lay lays Period i out for pw, a window on the MPD's timeline,
	// which it moves onto the Period's.
	lay := func(i int, pw liveWindow) (*Manifest, *liveWindow, error) {
		p := doc.Periods[i]
		pbase, err := resolve(base, mpdBases, p.BaseURLs)
		if err != nil {
			return nil, nil, err
		}
		pw.edge -= spans[i].start
		pw.at = max(pw.at-spans[i].start, 0)
		pw.end, pw.beyond = spans[i].dur, i+1 == len(spans)
		part, err := parsePeriod(p, pbase, pw.length, &budget, &family, fetch, &pw)
		if err != nil {
			if len(spans) > 1 {
				err = fmt.Errorf("period %d: %w", i+1, err)
			}
			return nil, nil, fmt.Errorf("mpd: %w", err)
		}
		part.shift(spans[i].start)
		return part, &pw, nil
	}
	i := periodAt(w.at)
	if !w.resume {
		// The join point is the edge less the delay, counted in the
		// segments at the edge: of the Period that holds it or, when that
		// has just begun and lists none yet, of the one before. It may lie
		// in an earlier Period.
		i = periodAt(w.edge)
		d := edgeStep(doc.Periods[i])
		if d == 0 && i > 0 {
			d = edgeStep(doc.Periods[i-1])
			i--
		}
		rw := *w
		rw.resume, rw.at = true, max(w.edge-w.joinDelay(d), spans[0].start)
		w = &rw
		if at := periodAt(rw.at); at < i {
			i = at
		}
	}
	first, _, err := lay(i, *w)
	if err != nil {
		return err
	}
	parts := []periodPart{{first, i, doc.Periods[i].Id}}
	lead := first.Video[0].Segments // every video rendition's are as many, at the same times
	laid, last := len(lead), lead[len(lead)-1]
	end := lead[0].Start + w.length // the media time to lay out to, and a segment more
	for j := i + 1; j < len(spans); j++ {
		if spans[j].dur == 0 && j+1 < len(spans) {
			continue // a Period of no length: the next starts where it does
		}
		if last.Start+last.Duration > end && laid >= w.least {
			break
		}
		cw := *w
		cw.resume, cw.at = true, spans[j].start
		cw.length = max(end-spans[j].start, 0)
		cw.least = max(w.least-laid, 0)
		cw.step = last.Duration
		part, _, err := lay(j, cw)
		if err != nil {
			return err
		}
		parts = append(parts, periodPart{part, j, doc.Periods[j].Id})
		segs := part.Video[0].Segments
		laid, last = laid+len(segs), segs[len(segs)-1]
	}
	ladder := w.ladder
	if ladder == nil {
		ladder = liveLadder(doc, spans, w.edge, parts, func(j int) (*Manifest, error) {
			cw := *w
			cw.resume, cw.at, cw.length, cw.least, cw.step = true, spans[j].start, 0, 1, 0
			part, _, err := lay(j, cw)
			return part, err
		})
	}
	joined, err := stitch(parts, ladder)
	if err != nil {
		return fmt.Errorf("mpd: %w", err)
	}
	m.Video, m.Audio, m.Remapped = joined.Video, joined.Audio, joined.Remapped
	for _, r := range slices.Concat(m.Video, m.Audio) {
		for k := 1; k < len(r.Segments); k++ {
			if r.Segments[k].Start <= r.Segments[k-1].Start {
				return fmt.Errorf("mpd: representation %q: a segment at %v follows one at %v: the Periods overlap", r.ID, r.Segments[k].Start, r.Segments[k-1].Start)
			}
		}
	}
	return nil
}

// shift moves every segment of m by d on the timeline.
func (m *Manifest) shift(d time.Duration) {
	for _, r := range slices.Concat(m.Video, m.Audio) {
		r.shift(d)
	}
}

// videoCount is how many video Representations p lists outside
// trick-mode sets: at least as many as it plays.
func videoCount(p *mpd.Period) int {
	n := 0
	for _, as := range p.AdaptationSets {
		if trickMode(as) {
			continue
		}
		for _, rep := range as.Representations {
			if contentKind(as, rep) == "video" {
				n++
			}
		}
	}
	return n
}

// liveLadder is the ladder a live session plays with: that of the Periods
// (laid out in parts, or only listed) whose ladder, in number of video
// renditions, lasts longest in all up to the live edge, so that a session
// that joins during an advertisement plays with the programme's ladder.
// probe lays out a Period that is not in parts, for its renditions.
func liveLadder(doc *mpd.MPD, spans []periodSpan, edge time.Duration, parts []periodPart, probe func(j int) (*Manifest, error)) []*Representation {
	lasts := func(j int) time.Duration {
		if spans[j].dur > 0 {
			return spans[j].dur
		}
		return max(edge-spans[j].start, time.Nanosecond) // the Period under way
	}
	counts := make([]int, len(doc.Periods))
	for j, p := range doc.Periods {
		counts[j] = videoCount(p)
		for _, part := range parts {
			if part.index == j {
				counts[j] = len(part.Video)
			}
		}
	}
	want := counts[longestLasting(counts, lasts)]
	for _, part := range parts {
		if len(part.Video) == want {
			return part.Video
		}
	}
	for j := range doc.Periods {
		if counts[j] == want {
			if m, err := probe(j); err == nil && len(m.Video) == want {
				return m.Video
			}
		}
	}
	return ladderOf(parts, lasts)
}
