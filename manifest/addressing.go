package manifest

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// IndexFetcher reads bytes first..last (inclusive) of the resource at u:
// the segment index (sidx) of a Representation addressed with SegmentBase,
// as in the DASH on-demand profile, where one file holds every segment.
type IndexFetcher func(u *url.URL, first, last int64) ([]byte, error)

// MaxIndexSize bounds the segment index Parse fetches for a SegmentBase
// Representation: a sidx of 65535 references is 786 kB.
const MaxIndexSize = 1 << 20

// MaxIndexTotal bounds the segment index bytes one MPD may have fetched,
// so that a hostile MPD of thousands of SegmentBase Representations cannot
// have gigabytes read.
const MaxIndexTotal = 16 * MaxIndexSize

// budgetedFetch is fetch refusing reads past MaxIndexTotal bytes in all.
func budgetedFetch(fetch IndexFetcher) IndexFetcher {
	var total int64
	return func(u *url.URL, first, last int64) ([]byte, error) {
		if total += last - first + 1; total > MaxIndexTotal {
			return nil, fmt.Errorf("the MPD's segment indexes come to more than %d bytes", MaxIndexTotal)
		}
		return fetch(u, first, last)
	}
}

// addressing is a Representation's segment addressing after DASH's
// inheritance (ISO/IEC 23009-1 §5.3.9.1): the scheme of the lowest level
// (Representation, AdaptationSet, Period) that names one, with what it
// leaves out taken from the same element at the levels above. Packagers
// rely on it: an AdaptationSet's SegmentTemplate names @media and the
// timescale, each Representation's adds its own SegmentTimeline.
type addressing struct {
	scheme      string       // "template", "list" or "base"
	media, init string       // SegmentTemplate's @media and @initialization
	initURL     *mpd.URLType // SegmentList's and SegmentBase's Initialization
	indexRange  string
	timescale   uint64
	pto         uint64
	startNumber int
	endNumber   int // 0 when the MPD names none
	duration    uint64
	timeline    *mpd.SegmentTimelineType
	list        []*mpd.SegmentURLType
}

// addressingLevel is one level's addressing elements.
type addressingLevel struct {
	base *mpd.SegmentBaseType
	list *mpd.SegmentListType
	tpl  *mpd.SegmentTemplateType
}

// resolveAddressing merges the levels, highest (Period) first.
func resolveAddressing(levels ...addressingLevel) (*addressing, error) {
	a := &addressing{timescale: 1, startNumber: 1}
	for i := len(levels) - 1; i >= 0 && a.scheme == ""; i-- {
		l := levels[i]
		switch {
		case l.tpl != nil:
			a.scheme = "template"
		case l.list != nil:
			a.scheme = "list"
		case l.base != nil:
			a.scheme = "base"
		}
	}
	for _, l := range levels {
		switch a.scheme {
		case "template":
			if t := l.tpl; t != nil {
				a.media = cmpOr(t.Media, a.media)
				a.init = cmpOr(t.Initialization, a.init)
				a.multiple(&t.MultipleSegmentBaseType)
			}
		case "list":
			if sl := l.list; sl != nil {
				if len(sl.SegmentURL) > 0 {
					a.list = sl.SegmentURL
				}
				a.multiple(&sl.MultipleSegmentBaseType)
			}
		case "base":
			if b := l.base; b != nil {
				a.single(b)
			}
		}
	}
	if a.scheme == "" {
		return nil, fmt.Errorf("no SegmentTemplate, SegmentList or SegmentBase")
	}
	return a, nil
}

func cmpOr(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}

func (a *addressing) multiple(m *mpd.MultipleSegmentBaseType) {
	a.single(&m.SegmentBaseType)
	if m.Duration != nil && *m.Duration > 0 {
		a.duration = uint64(*m.Duration)
	}
	if m.StartNumber != nil {
		a.startNumber = int(*m.StartNumber)
	}
	if m.EndNumber != nil {
		a.endNumber = int(*m.EndNumber)
	}
	if m.SegmentTimeline != nil {
		a.timeline = m.SegmentTimeline
	}
}

func (a *addressing) single(b *mpd.SegmentBaseType) {
	if b.Timescale != nil && *b.Timescale > 0 {
		a.timescale = uint64(*b.Timescale)
	}
	if b.PresentationTimeOffset != nil {
		a.pto = *b.PresentationTimeOffset
	}
	if b.IndexRange != "" {
		a.indexRange = b.IndexRange
	}
	if b.Initialization != nil {
		a.initURL = b.Initialization
	}
}

// span is one segment's place on the media timeline, in timescale ticks.
type span struct{ t, d uint64 }

// spans lays out count segments (all the period holds when count < 0)
// from the SegmentTimeline or the fixed @duration.
func (a *addressing) spans(periodDur time.Duration, count, budget int) ([]span, error) {
	periodTicks := uint64(periodDur.Seconds()*float64(a.timescale) + 0.5)
	var out []span
	add := func(t, d uint64) error {
		if len(out) >= budget {
			return fmt.Errorf("more than %d segments in the MPD", MaxSegments)
		}
		out = append(out, span{t, d})
		return nil
	}
	switch {
	case a.timeline != nil:
		var t uint64
		for i, s := range a.timeline.S {
			if s.T != nil {
				t = *s.T
			}
			if s.D == 0 {
				return nil, fmt.Errorf("SegmentTimeline S[%d] has no duration", i)
			}
			repeat := s.R
			if repeat < 0 { // until the next S@t or the end of the period
				end := a.pto + periodTicks
				if i+1 < len(a.timeline.S) && a.timeline.S[i+1].T != nil {
					end = *a.timeline.S[i+1].T
				}
				if end <= t {
					continue
				}
				repeat = int((end-t+s.D-1)/s.D) - 1
			}
			if repeat > MaxSegments {
				return nil, fmt.Errorf("timeline entry %d: @r=%d is too large", i, repeat)
			}
			for range repeat + 1 {
				if err := add(t, s.D); err != nil {
					return nil, err
				}
				t += s.D
			}
		}
		if count >= 0 {
			if len(out) < count {
				return nil, fmt.Errorf("SegmentTimeline has %d segments for %d SegmentURLs", len(out), count)
			}
			out = out[:count]
		}
	case a.duration > 0:
		d := a.duration
		n := (periodTicks + d - 1) / d
		if count >= 0 {
			n = uint64(count)
		}
		if n > uint64(budget) {
			return nil, fmt.Errorf("%d segments of %d/%d s: more than %d segments in the MPD", n, d, a.timescale, MaxSegments)
		}
		for k := range n {
			dur := d
			if count < 0 && (k+1)*d > periodTicks {
				dur = periodTicks - k*d
			}
			if err := add(a.pto+k*d, dur); err != nil {
				return nil, err
			}
		}
	case count == 1: // one segment: the whole period
		if err := add(a.pto, periodTicks); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("segments have neither @duration nor SegmentTimeline")
	}
	if a.endNumber > 0 && a.endNumber-a.startNumber+1 < len(out) {
		out = out[:max(0, a.endNumber-a.startNumber+1)]
	}
	return out, nil
}

// byteRange is an HTTP byte range, both ends inclusive.
type byteRange struct{ first, last int64 }

func (r byteRange) String() string {
	return strconv.FormatInt(r.first, 10) + "-" + strconv.FormatInt(r.last, 10)
}

// parseRange reads a closed range "first-last", as @mediaRange, @range and
// @indexRange give them.
func parseRange(s string) (byteRange, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || first < 0 || last < first {
		return byteRange{}, fmt.Errorf("byte range %q: want first-last", s)
	}
	return byteRange{first, last}, nil
}

// sidxSegments reads a segment index: the byte range and duration of each
// subsegment it lists, as the DASH on-demand profile addresses segments.
// at is the index's own byte range in the file.
func sidxSegments(data []byte, at byteRange) (*mp4.SidxBox, []byteRange, error) {
	var sidx *mp4.SidxBox
	var end int64 // offset in data of the byte after the sidx box
	for pos := 0; sidx == nil; {
		if pos >= len(data) {
			return nil, nil, fmt.Errorf("no sidx box in the index range %s", at)
		}
		hdr, err := mp4.DecodeHeaderSR(bits.NewFixedSliceReader(data[pos:]))
		if err != nil {
			return nil, nil, fmt.Errorf("index range %s at %d: %w", at, pos, err)
		}
		if hdr.Size > uint64(len(data)-pos) {
			return nil, nil, fmt.Errorf("index range %s: %s box of %d bytes at %d runs past the range", at, hdr.Name, hdr.Size, pos)
		}
		next := pos + int(hdr.Size)
		// An index range may start with a styp or other boxes.
		if hdr.Name == "sidx" {
			box, err := mp4.DecodeBoxSR(uint64(pos), bits.NewFixedSliceReader(data[pos:next]))
			if err != nil {
				return nil, nil, fmt.Errorf("index range %s: %w", at, err)
			}
			sidx, end = box.(*mp4.SidxBox), int64(next)
		}
		pos = next
	}
	if sidx.Timescale == 0 {
		return nil, nil, fmt.Errorf("sidx: timescale 0")
	}
	if len(sidx.SidxRefs) == 0 {
		return nil, nil, fmt.Errorf("sidx lists no subsegments")
	}
	// Subsegments start first_offset bytes after the end of the sidx box.
	start := at.first + end + int64(min(sidx.FirstOffset, 1<<61))
	refs := make([]byteRange, 0, len(sidx.SidxRefs))
	for i, r := range sidx.SidxRefs {
		if r.ReferenceType != 0 {
			return nil, nil, fmt.Errorf("sidx reference %d points at another sidx: hierarchical indexes are not supported", i)
		}
		if r.ReferencedSize == 0 {
			return nil, nil, fmt.Errorf("sidx reference %d has size 0", i)
		}
		if start > 1<<62 {
			return nil, nil, fmt.Errorf("sidx reference %d: offset %d is out of range", i, start)
		}
		refs = append(refs, byteRange{start, start + int64(r.ReferencedSize) - 1})
		start += int64(r.ReferencedSize)
	}
	return sidx, refs, nil
}
