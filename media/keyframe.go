package media

import (
	"bytes"
	"fmt"
	"io"

	"github.com/Eyevinn/mp4ff/mp4"
)

// maxMoofRead bounds what KeyframeLength reads to find a segment's
// boxes before its media data.
const maxMoofRead = 1 << 20

// KeyframeLength reads the start of a CMAF media segment of size bytes
// (styp, sidx, ... then one moof and its mdat) and returns the length of
// the prefix that holds its first sample whole: what SegmentInfo.Key
// records at packaging time, for segments packaged before it did. The
// first sample must be a sync sample (a keyframe).
func KeyframeLength(r io.ReaderAt, size int64) (int64, error) {
	head := make([]byte, min(size, 64<<10))
	for {
		n, err := r.ReadAt(head, 0)
		if n < len(head) {
			return 0, fmt.Errorf("keyframe: read %d of %d bytes: %w", n, len(head), err)
		}
		length, more, err := keyframeIn(head, size)
		if err != nil || !more {
			return length, err
		}
		if int64(len(head)) >= min(size, maxMoofRead) {
			return 0, fmt.Errorf("keyframe: no moof and mdat within the first %d bytes", len(head))
		}
		head = make([]byte, min(size, int64(len(head))*4, maxMoofRead))
	}
}

// keyframeIn finds the keyframe's end from the segment's first bytes;
// more asks for more of them.
func keyframeIn(head []byte, size int64) (length int64, more bool, err error) {
	var pos int64
	var moof *mp4.MoofBox
	for pos+8 <= int64(len(head)) {
		hdr, err := mp4.DecodeHeader(bytes.NewReader(head[pos:]))
		if err != nil {
			return 0, false, fmt.Errorf("keyframe: box at %d: %w", pos, err)
		}
		boxSize := int64(hdr.Size)
		if boxSize < int64(hdr.Hdrlen) || pos+boxSize > size {
			return 0, false, fmt.Errorf("keyframe: box %s at %d: size %d does not fit the segment", hdr.Name, pos, boxSize)
		}
		switch hdr.Name {
		case "moof":
			if pos+boxSize > int64(len(head)) {
				return 0, true, nil
			}
			box, err := mp4.DecodeBox(uint64(pos), bytes.NewReader(head[pos:pos+boxSize]))
			if err != nil {
				return 0, false, fmt.Errorf("keyframe: moof: %w", err)
			}
			m, ok := box.(*mp4.MoofBox)
			if !ok || m.Traf == nil || m.Traf.Trun == nil || m.Traf.Tfhd == nil {
				return 0, false, fmt.Errorf("keyframe: moof without traf, tfhd or trun")
			}
			moof = m
			moof.StartPos = uint64(pos)
		case "mdat":
			if moof == nil {
				return 0, false, fmt.Errorf("keyframe: mdat before moof")
			}
			trun, tfhd := moof.Traf.Trun, moof.Traf.Tfhd
			if trun.SampleCount() == 0 {
				return 0, false, fmt.Errorf("keyframe: empty trun")
			}
			flags := tfhd.DefaultSampleFlags
			if f, ok := trun.FirstSampleFlags(); ok {
				flags = f
			} else if trun.HasSampleFlags() {
				flags = trun.Samples[0].Flags
			}
			if mp4.DecodeSampleFlags(flags).SampleIsNonSync {
				return 0, false, fmt.Errorf("keyframe: the first sample is not a sync sample")
			}
			sampleSize := int64(tfhd.DefaultSampleSize)
			if trun.HasSampleSize() {
				sampleSize = int64(trun.Samples[0].Size)
			}
			start := int64(moof.StartPos) + int64(trun.DataOffset)
			if !trun.HasDataOffset() {
				start = pos + int64(hdr.Hdrlen)
			}
			end := start + sampleSize
			if start < pos+int64(hdr.Hdrlen) || end > pos+boxSize {
				return 0, false, fmt.Errorf("keyframe: first sample [%d,%d) outside the mdat", start, end)
			}
			return end, false, nil
		}
		pos += boxSize
	}
	if int64(len(head)) >= size {
		return 0, false, fmt.Errorf("keyframe: no moof and mdat in %d bytes", size)
	}
	return 0, true, nil
}
