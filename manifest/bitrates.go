package manifest

import (
	"fmt"
	"slices"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// Bitrates is what a presentation offers its viewers in bitrates: the
// Representations' @bandwidth (bit/s), distinct and lowest first. Read
// from an HLS multivariant playlist, Video holds the variants' BANDWIDTH,
// which counts their sound, and Audio is empty.
type Bitrates struct {
	Video []int
	Audio []int
}

// maxBitrates bounds the Representations ReadBitrates keeps of one kind:
// real ladders have a dozen, and a hostile MPD must not make every reader
// of its ladder (an edge working out shares once a second) walk thousands.
const maxBitrates = 64

// ReadBitrates reads an MPD's ladder, static or dynamic, without
// expanding a single segment address: all a cache node needs to know
// which bitrates its viewers can take. Of several Periods it reads the
// one a player plays with (that of the Periods whose ladder, in number of
// video renditions, lasts longest in all; see ladderOf), not a pre-roll
// advertisement's. An MPD that is not well-formed, or that offers no
// video, is an error.
func ReadBitrates(data []byte) (b Bitrates, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = Bitrates{}, fmt.Errorf("mpd: malformed: %v", r)
		}
	}()
	if len(data) > MaxMPDSize {
		return Bitrates{}, fmt.Errorf("mpd: %d bytes is larger than %d", len(data), MaxMPDSize)
	}
	if data, err = sanitize(data); err != nil {
		return Bitrates{}, fmt.Errorf("mpd: %w", err)
	}
	doc, err := mpd.MPDFromBytes(data)
	if err != nil {
		return Bitrates{}, fmt.Errorf("mpd: %w", err)
	}
	if len(doc.Periods) == 0 {
		return Bitrates{}, fmt.Errorf("mpd: no Period")
	}
	for _, as := range doc.Periods[mainPeriod(doc)].AdaptationSets {
		for _, rep := range as.Representations {
			if rep.Bandwidth == 0 {
				continue
			}
			switch contentKind(as, rep) {
			case "video":
				b.Video = append(b.Video, int(rep.Bandwidth))
			case "audio":
				b.Audio = append(b.Audio, int(rep.Bandwidth))
			}
		}
	}
	if len(b.Video) == 0 {
		return Bitrates{}, fmt.Errorf("mpd: no video Representation with a @bandwidth")
	}
	if err := b.tidy(); err != nil {
		return Bitrates{}, fmt.Errorf("mpd: %w", err)
	}
	return b, nil
}

// ReadHLSBitrates reads the ladder of an HLS multivariant playlist: its
// variants' BANDWIDTH (I-frame playlists left out), without reading a
// media playlist.
func ReadHLSBitrates(data []byte) (Bitrates, error) {
	if len(data) > MaxMPDSize {
		return Bitrates{}, fmt.Errorf("hls: %d bytes is larger than %d", len(data), MaxMPDSize)
	}
	master, err := decodeMaster(data)
	if err != nil {
		return Bitrates{}, err
	}
	var b Bitrates
	for _, v := range master.Variants {
		if v != nil && !v.Iframe && v.Bandwidth > 0 {
			b.Video = append(b.Video, int(v.Bandwidth))
		}
	}
	if len(b.Video) == 0 {
		return Bitrates{}, fmt.Errorf("hls: no variant with a BANDWIDTH")
	}
	if err := b.tidy(); err != nil {
		return Bitrates{}, fmt.Errorf("hls: %w", err)
	}
	return b, nil
}

// tidy sorts b's lists and drops repeats, refusing a ladder longer than
// any real one.
func (b *Bitrates) tidy() error {
	for _, list := range []*[]int{&b.Video, &b.Audio} {
		slices.Sort(*list)
		*list = slices.Compact(*list)
		if len(*list) > maxBitrates {
			return fmt.Errorf("%d bitrates of one kind, more than %d", len(*list), maxBitrates)
		}
	}
	return nil
}

// mainPeriod is the index of the first of doc's Periods (at least one)
// whose ladder lasts longest in all. The Period under way of a live MPD
// lasts up to its publishTime; a Period whose length is not known (no
// publishTime, or an MPD that does not place its Periods) counts as long
// as the longest known.
func mainPeriod(doc *mpd.MPD) int {
	spans, err := periodSpans(doc)
	var edge time.Duration // the live edge from availabilityStartTime, 0 when not known
	if doc.GetType() == mpd.DYNAMIC_TYPE {
		spans, err = livePeriodSpans(doc)
		ast, err1 := ParseDateTime(string(doc.AvailabilityStartTime))
		pub, err2 := ParseDateTime(string(doc.PublishTime))
		if err1 == nil && err2 == nil {
			edge = pub.Sub(ast)
		}
	}
	if err != nil {
		spans = make([]periodSpan, len(doc.Periods))
	}
	for i, s := range spans {
		if s.dur == 0 && i+1 == len(spans) && edge > s.start {
			spans[i].dur = edge - s.start
		}
	}
	longest := time.Duration(1)
	for _, s := range spans {
		longest = max(longest, s.dur)
	}
	counts := make([]int, len(doc.Periods))
	for i, p := range doc.Periods {
		counts[i] = videoCount(p)
	}
	return longestLasting(counts, func(i int) time.Duration {
		if spans[i].dur > 0 {
			return spans[i].dur
		}
		return longest
	})
}
