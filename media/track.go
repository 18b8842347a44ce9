package media

import (
	"bytes"
	"fmt"
	"os"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Track is the flattened sample table of one track of a progressive MP4.
// Indexes are 0-based; DTS has one more entry than there are samples, the
// last being the track's decode end.
type Track struct {
	Path      string
	Kind      string // "video" or "audio"
	TrackID   uint32
	Timescale uint32
	// Shift is the edit list's media time: the media time shown at
	// presentation time 0 (B-frame delay for video, priming for AAC).
	Shift int64

	Offsets []int64
	Sizes   []uint32
	Durs    []uint32
	CTOs    []int32 // composition offsets; nil when there are none
	Sync    []bool  // nil when every sample is a sync sample
	DTS     []uint64

	Codecs string
	Width  int
	Height int
	// Sar is a video track's sample (pixel) aspect ratio, "W:H" at its
	// lowest terms ("32:27" for a DVD's 16:9); "" for square pixels.
	Sar        string
	SampleRate int
	Channels   int
	Lang       string

	trak      *mp4.TrakBox
	signedCTO bool
}

// MeanBitrate is the track's mean bitrate in bit/s, 0 when it has no
// duration.
func (t *Track) MeanBitrate() float64 {
	var bytes, ticks float64
	for i, n := range t.Sizes {
		bytes += float64(n)
		if i < len(t.Durs) {
			ticks += float64(t.Durs[i])
		}
	}
	if ticks == 0 || t.Timescale == 0 {
		return 0
	}
	return bytes * 8 / (ticks / float64(t.Timescale))
}

// MoveShiftIntoCTO folds the edit-list shift into the composition offsets, the
// CMAF way: the first frame is then presented at decode time 0 and no
// presentationTimeOffset is needed (players such as ffmpeg's DASH demuxer
// ignore it and would otherwise see the track end a few frames late).
// Offsets may become negative, which trun version 1 carries.
func (t *Track) MoveShiftIntoCTO() {
	if t.Shift == 0 || t.CTOs == nil {
		return
	}
	for i := range t.CTOs {
		t.CTOs[i] -= int32(t.Shift)
		if t.CTOs[i] < 0 {
			t.signedCTO = true
		}
	}
	t.Shift = 0
}

// Len is the number of samples.
func (t *Track) Len() int { return len(t.Sizes) }

// IsSync tells whether sample i can start a segment.
func (t *Track) IsSync(i int) bool { return t.Sync == nil || t.Sync[i] }

// PTS is sample i's presentation time in media time (before the edit-list shift).
func (t *Track) PTS(i int) int64 {
	pts := int64(t.DTS[i])
	if t.CTOs != nil {
		pts += int64(t.CTOs[i])
	}
	return pts
}

// ReadTracks reads the video and audio tracks of the progressive MP4 at path.
// It fails on fragmented files, which are not sources but outputs.
func ReadTracks(path string) (tracks []*Track, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mp4 %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mp4 %s: %w", path, err)
	}
	// mp4ff's decoder and its table accessors panic on some malformed
	// files: a file given to -copy must not crash the packager.
	defer func() {
		if r := recover(); r != nil {
			tracks, err = nil, fmt.Errorf("mp4 %s: malformed: %v", path, r)
		}
	}()
	mf, err := mp4.DecodeFile(f, mp4.WithDecodeMode(mp4.DecModeLazyMdat))
	if err != nil {
		return nil, fmt.Errorf("mp4 %s: %w", path, err)
	}
	if mf.Moov == nil {
		return nil, fmt.Errorf("mp4 %s: no moov box", path)
	}
	if mf.IsFragmented() {
		return nil, fmt.Errorf("mp4 %s: fragmented input is not supported", path)
	}
	for i, trak := range mf.Moov.Traks {
		t, err := flattenTrak(trak, info.Size())
		if err != nil {
			return nil, fmt.Errorf("mp4 %s track %d: %w", path, i+1, err)
		}
		if t == nil {
			continue
		}
		t.Path = path
		tracks = append(tracks, t)
	}
	return tracks, nil
}

// maxSamples bounds the samples of one track: 77 hours at 60 frames a
// second. A hostile sample table claims billions in a few bytes (a
// uniform size and a count), each an allocation and a loop here.
const maxSamples = 1 << 24

// flattenTrak reads one trak's tables, every sample within the file's
// fileSize bytes; it returns nil for tracks that are neither video nor
// audio.
func flattenTrak(trak *mp4.TrakBox, fileSize int64) (*Track, error) {
	if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil {
		return nil, fmt.Errorf("incomplete trak")
	}
	t := &Track{TrackID: trak.Tkhd.TrackID, Timescale: trak.Mdia.Mdhd.Timescale, trak: trak}
	switch trak.Mdia.Hdlr.HandlerType {
	case "vide":
		t.Kind = "video"
	case "soun":
		t.Kind = "audio"
	default:
		return nil, nil
	}
	if t.Timescale == 0 {
		return nil, fmt.Errorf("timescale is 0")
	}
	t.Lang = trak.Mdia.Mdhd.GetLanguage()
	stbl := trak.Mdia.Minf.Stbl
	if stbl.Stsz == nil || stbl.Stts == nil || stbl.Stsc == nil || stbl.Stsd == nil || (stbl.Stco == nil && stbl.Co64 == nil) {
		return nil, fmt.Errorf("sample table incomplete")
	}
	if err := t.describe(stbl.Stsd); err != nil {
		return nil, err
	}
	n := int(stbl.Stsz.GetNrSamples())
	if n == 0 {
		return nil, fmt.Errorf("no samples")
	}
	if n > maxSamples {
		return nil, fmt.Errorf("%d samples, more than %d", n, maxSamples)
	}
	t.Sizes = make([]uint32, n)
	for i := range n {
		t.Sizes[i] = stbl.Stsz.GetSampleSize(i + 1)
	}
	// Decode times from stts runs.
	t.Durs = make([]uint32, 0, n)
	for e, count := range stbl.Stts.SampleCount {
		for range count {
			if len(t.Durs) == n {
				break
			}
			t.Durs = append(t.Durs, stbl.Stts.SampleTimeDelta[e])
		}
	}
	if len(t.Durs) != n {
		return nil, fmt.Errorf("stts covers %d samples, stsz %d", len(t.Durs), n)
	}
	t.DTS = make([]uint64, n+1)
	for i, d := range t.Durs {
		t.DTS[i+1] = t.DTS[i] + uint64(d)
	}
	if ctts := stbl.Ctts; ctts != nil {
		t.CTOs = make([]int32, n)
		for i := range n {
			t.CTOs[i] = ctts.GetCompositionTimeOffset(uint32(i + 1))
		}
	}
	if stss := stbl.Stss; stss != nil {
		t.Sync = make([]bool, n)
		for _, nr := range stss.SampleNumber {
			if nr >= 1 && int(nr) <= n {
				t.Sync[nr-1] = true
			}
		}
	}
	if err := t.readOffsets(stbl, fileSize); err != nil {
		return nil, err
	}
	if trak.Edts != nil {
		for _, elst := range trak.Edts.Elst {
			for _, e := range elst.Entries {
				if e.MediaTime >= 0 { // the first non-empty edit sets the start
					t.Shift = e.MediaTime
					goto shifted
				}
			}
		}
	}
shifted:
	return t, nil
}

// readOffsets resolves every sample's file offset from stsc and
// stco/co64, and checks that every sample lies within the file.
func (t *Track) readOffsets(stbl *mp4.StblBox, fileSize int64) error {
	n := t.Len()
	var chunkOffsets []uint64
	if stbl.Stco != nil {
		for _, o := range stbl.Stco.ChunkOffset {
			chunkOffsets = append(chunkOffsets, uint64(o))
		}
	} else {
		chunkOffsets = stbl.Co64.ChunkOffset
	}
	entries := stbl.Stsc.Entries
	if len(entries) == 0 {
		return fmt.Errorf("stsc is empty")
	}
	t.Offsets = make([]int64, n)
	sample := 0
	for e := range entries {
		first := int(entries[e].FirstChunk)
		last := len(chunkOffsets)
		if e+1 < len(entries) {
			last = int(entries[e+1].FirstChunk) - 1
		}
		per := int(entries[e].SamplesPerChunk)
		if first < 1 || last > len(chunkOffsets) || per <= 0 {
			return fmt.Errorf("stsc entry %d out of range", e)
		}
		for c := first; c <= last && sample < n; c++ {
			off := int64(chunkOffsets[c-1])
			if off < 0 {
				return fmt.Errorf("chunk %d at byte %d", c, chunkOffsets[c-1])
			}
			for k := 0; k < per && sample < n; k++ {
				t.Offsets[sample] = off
				off += int64(t.Sizes[sample])
				if off > fileSize {
					return fmt.Errorf("sample %d ends at byte %d of a %d-byte file", sample+1, off, fileSize)
				}
				sample++
			}
		}
	}
	if sample != n {
		return fmt.Errorf("chunks hold %d samples, stsz %d", sample, n)
	}
	return nil
}

// describe reads codec parameters from the sample description.
func (t *Track) describe(stsd *mp4.StsdBox) error {
	switch t.Kind {
	case "video":
		if stsd.AvcX == nil || stsd.AvcX.AvcC == nil {
			return fmt.Errorf("video codec is not H.264 (avc1/avc3)")
		}
		rec := stsd.AvcX.AvcC.DecConfRec
		t.Codecs = fmt.Sprintf("%s.%02x%02x%02x", stsd.AvcX.Type(), rec.AVCProfileIndication, rec.ProfileCompatibility, rec.AVCLevelIndication)
		t.Width, t.Height = int(stsd.AvcX.Width), int(stsd.AvcX.Height)
		t.Sar = sampleAspect(stsd.AvcX)
	case "audio":
		if stsd.Mp4a == nil || stsd.Mp4a.Esds == nil || stsd.Mp4a.Esds.DecConfigDescriptor == nil ||
			stsd.Mp4a.Esds.DecConfigDescriptor.DecSpecificInfo == nil {
			return fmt.Errorf("audio codec is not AAC (mp4a)")
		}
		asc, err := aac.DecodeAudioSpecificConfig(bytes.NewReader(stsd.Mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig))
		if err != nil {
			return fmt.Errorf("AAC config: %w", err)
		}
		t.Codecs = fmt.Sprintf("mp4a.40.%d", asc.ObjectType)
		t.SampleRate = int(stsd.Mp4a.SampleRate)
		t.Channels = aacChannels(asc, int(stsd.Mp4a.ChannelCount))
	}
	return nil
}

// aacChannels is how many channels an AAC stream has: from its decoder
// configuration, as the sample entry's count is 2 whatever the sound in
// an ISO file (ffmpeg writes 2 for 5.1); the entry's count when the
// configuration leaves the layout to a program config element (0).
func aacChannels(asc *aac.AudioSpecificConfig, entry int) int {
	if asc.PSPresentFlag && asc.ChannelConfiguration == 1 {
		return 2 // HE-AAC v2: parametric stereo coded as one channel
	}
	// ISO/IEC 14496-3 Table 1.19 (and 23001-8 for 11 to 14).
	byConfig := map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}
	if n, ok := byConfig[asc.ChannelConfiguration]; ok {
		return n
	}
	return entry
}

// sampleAspect is a video sample entry's pixel aspect ratio: its pasp
// box's, else its first SPS's (VUI), at lowest terms; "" when square.
func sampleAspect(entry *mp4.VisualSampleEntryBox) string {
	w, h := 1, 1
	if p := entry.Pasp; p != nil && p.HSpacing > 0 && p.VSpacing > 0 {
		w, h = int(p.HSpacing), int(p.VSpacing)
	} else if spss := entry.AvcC.SPSnalus; len(spss) > 0 {
		if sps, err := avc.ParseSPSNALUnit(spss[0], false); err == nil && sps.VUI != nil &&
			sps.VUI.SampleAspectRatioWidth > 0 && sps.VUI.SampleAspectRatioHeight > 0 {
			w, h = int(sps.VUI.SampleAspectRatioWidth), int(sps.VUI.SampleAspectRatioHeight)
		}
	}
	if w == h {
		return ""
	}
	g := gcd(w, h)
	return fmt.Sprintf("%d:%d", w/g, h/g)
}
