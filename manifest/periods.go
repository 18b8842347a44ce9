package manifest

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// periodSpan is a Period's place on the presentation timeline.
type periodSpan struct{ start, dur time.Duration }

// periodSpans places every Period (ISO/IEC 23009-1 §5.3.2.1): at its
// @start, else where the one before it ends; lasting its @duration, else
// until the next one starts or, the last, until the presentation ends.
func periodSpans(doc *mpd.MPD) ([]periodSpan, error) {
	spans := make([]periodSpan, len(doc.Periods))
	for i, p := range doc.Periods {
		spans[i].start, _ = placeAt(doc, spans, i) // the one before lasts (checked below)
		switch {
		case p.Duration != nil:
			spans[i].dur = time.Duration(*p.Duration)
		case i+1 < len(doc.Periods) && doc.Periods[i+1].Start != nil:
			spans[i].dur = time.Duration(*doc.Periods[i+1].Start) - spans[i].start
		case i+1 == len(doc.Periods) && doc.MediaPresentationDuration != nil:
			spans[i].dur = time.Duration(*doc.MediaPresentationDuration) - spans[i].start
		}
		if spans[i].dur <= 0 {
			if len(doc.Periods) == 1 {
				return nil, fmt.Errorf("no positive duration (mediaPresentationDuration or Period@duration)")
			}
			return nil, fmt.Errorf("period %d has no positive duration (its @duration, the next one's @start, or mediaPresentationDuration)", i+1)
		}
	}
	return spans, nil
}

// placeAt is where Period i starts, the ones before it placed in spans:
// at its @start, else where the one before it ends (the first at 0);
// false when neither says (the one before has no end yet, live).
func placeAt(doc *mpd.MPD, spans []periodSpan, i int) (time.Duration, bool) {
	switch {
	case doc.Periods[i].Start != nil:
		return time.Duration(*doc.Periods[i].Start), true
	case i == 0:
		return 0, true
	case spans[i-1].dur > 0:
		return spans[i-1].start + spans[i-1].dur, true
	}
	return 0, false
}

// periodPart is one Period's renditions, laid out on the presentation's
// timeline, for stitch.
type periodPart struct {
	*Manifest
	index int    // the Period's, from 0
	id    string // its @id
}

// stitch joins the Periods' renditions into one presentation, which plays
// with ladder's video renditions (see ladderOf). A Period of as many video
// renditions continues them rung by rung (ids may differ, as packagers
// name each Period's anew); one whose ladder differs (an advertisement
// not conditioned to the programme's ladder) continues each in its
// rendition of the nearest bandwidth, so that a player keeps one ladder
// throughout, as it keeps its throughput estimate. Each sound continues
// in the sound of the same language and role at the same rank, or ends
// with the Periods before it where there is none.
func stitch(parts []periodPart, ladder []*Representation) (*Manifest, error) {
	m := &Manifest{}
	for _, l := range ladder {
		r := *l
		r.Segments, r.Init, r.InitRange = nil, "", ""
		m.Video = append(m.Video, &r)
	}
	for i, part := range parts {
		if len(part.Video) == 0 {
			return nil, fmt.Errorf("period %d has no video", part.index+1)
		}
		for q, r := range m.Video {
			to := q
			if len(part.Video) != len(ladder) {
				to = nearestBandwidth(part.Video, r.Bandwidth)
				m.Remapped = append(m.Remapped, Remap{Period: part.index + 1, PeriodID: part.id, From: r.ID, To: part.Video[to].ID})
			}
			if i == 0 {
				r.Init, r.InitRange = part.Video[to].Init, part.Video[to].InitRange
			}
			r.appendPeriod(part.Video[to])
		}
		if i == 0 {
			m.Audio = part.Audio
			continue
		}
		later := map[soundKey]*Representation{}
		for i, k := range soundKeys(part.Audio) {
			later[k] = part.Audio[i]
		}
		kept := m.Audio[:0]
		for i, k := range soundKeys(m.Audio) {
			n, ok := later[k]
			if !ok {
				continue // this sound ends with the Periods before
			}
			r := m.Audio[i]
			r.appendPeriod(n)
			kept = append(kept, r)
		}
		m.Audio = kept
	}
	return m, nil
}

// ladderOf is the ladder a presentation of Periods plays with: the video
// renditions of the first of the Periods whose ladder, in number of
// renditions, lasts longest in all (lasts gives each Period's duration by
// its index): a programme's, not that of the advertisements that break
// it, however many renditions they have.
func ladderOf(parts []periodPart, lasts func(index int) time.Duration) []*Representation {
	if len(parts) == 0 {
		return nil
	}
	counts := make([]int, len(parts))
	for k, p := range parts {
		counts[k] = len(p.Video)
	}
	return parts[longestLasting(counts, func(k int) time.Duration { return lasts(parts[k].index) })].Video
}

// longestLasting is the first of n Periods (n = len(counts), at least
// one) whose number of video renditions, counts[i], lasts longest in
// all, lasts giving each one's duration.
func longestLasting(counts []int, lasts func(i int) time.Duration) int {
	total := map[int]time.Duration{}
	for i, c := range counts {
		total[c] += lasts(i)
	}
	best, longest := 0, time.Duration(-1)
	for i, c := range counts {
		if t := total[c]; t > longest {
			best, longest = i, t
		}
	}
	return best
}

// nearestBandwidth is the rendition of reps whose bandwidth is nearest
// bandwidth by ratio, the lower of two as near.
func nearestBandwidth(reps []*Representation, bandwidth int) int {
	best, bestDist := 0, math.Inf(1)
	for i, r := range reps {
		d := math.Abs(math.Log(float64(max(r.Bandwidth, 1)) / float64(max(bandwidth, 1))))
		if d < bestDist-1e-12 {
			best, bestDist = i, d
		}
	}
	return best
}

// Remap is a video rendition continued, in a later Period whose ladder
// differs, in the rendition of that Period nearest its bandwidth.
type Remap struct {
	Period   int    // from 1, in the MPD it was read from
	PeriodID string // its @id, "" when it has none
	From, To string
}

// appendPeriod continues r with next's segments; where next's
// initialization segment is not the one r's last segment needs, its first
// segment names it.
func (r *Representation) appendPeriod(next *Representation) {
	init, rng := r.Init, r.InitRange
	for _, s := range slices.Backward(r.Segments) {
		if s.Init != "" {
			init, rng = s.Init, s.InitRange
			break
		}
	}
	for k, s := range next.Segments {
		if k == 0 && s.Init == "" && (next.Init != init || next.InitRange != rng) {
			s.Init, s.InitRange = next.Init, next.InitRange
		}
		r.Segments = append(r.Segments, s)
	}
}

// soundKey names a sound rendition across Periods: its language, role and
// rank by bandwidth among the renditions of both.
type soundKey struct {
	lang, role string
	rank       int
}

// soundKeys gives each of reps (sorted by bandwidth) its key.
func soundKeys(reps []*Representation) []soundKey {
	keys := make([]soundKey, len(reps))
	rank := map[[2]string]int{}
	for i, r := range reps {
		k := [2]string{r.Lang, r.Role}
		keys[i] = soundKey{r.Lang, r.Role, rank[k]}
		rank[k]++
	}
	return keys
}
