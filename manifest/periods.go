package manifest

import (
	"fmt"
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
		switch {
		case p.Start != nil:
			spans[i].start = time.Duration(*p.Start)
		case i > 0:
			spans[i].start = spans[i-1].start + spans[i-1].dur
		}
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

// stitch continues m's renditions with those of a later Period, offset
// from the first Period's start, as one presentation: the Period must
// have the same video ladder (as many renditions; ids may differ, as
// packagers name each Period's anew), and each sound continues in the
// sound of the same language and role at the same rank, or ends with the
// Periods before it where there is none.
func (m *Manifest) stitch(next *Manifest, offset time.Duration, period int) error {
	if len(next.Video) != len(m.Video) {
		return fmt.Errorf("period %d has %d video renditions, the first %d: a ladder that changes between periods (an inserted advertisement) is not supported", period+1, len(next.Video), len(m.Video))
	}
	for i, r := range m.Video {
		r.appendPeriod(next.Video[i], offset)
	}
	later := map[soundKey]*Representation{}
	for i, k := range soundKeys(next.Audio) {
		later[k] = next.Audio[i]
	}
	kept := m.Audio[:0]
	for i, k := range soundKeys(m.Audio) {
		n, ok := later[k]
		if !ok {
			continue // this sound ends with the Periods before
		}
		r := m.Audio[i]
		r.appendPeriod(n, offset)
		kept = append(kept, r)
	}
	m.Audio = kept
	return nil
}

// appendPeriod continues r with next's segments, offset; where next's
// initialization segment is not the one r's last segment needs, its first
// segment names it.
func (r *Representation) appendPeriod(next *Representation, offset time.Duration) {
	init, rng := r.Init, r.InitRange
	for _, s := range slices.Backward(r.Segments) {
		if s.Init != "" {
			init, rng = s.Init, s.InitRange
			break
		}
	}
	for k, s := range next.Segments {
		s.Start += offset
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
