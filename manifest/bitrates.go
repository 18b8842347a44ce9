package manifest

import (
	"fmt"
	"slices"

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

// ReadBitrates reads the ladder of an MPD's first Period, static or
// dynamic, without expanding a single segment address: all a cache node
// needs to know which bitrates its viewers can take. An MPD that is not
// well-formed, or that offers no video, is an error.
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
	for _, as := range doc.Periods[0].AdaptationSets {
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
