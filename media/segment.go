package media

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Cut is a segment boundary of a track: the index of its first sample and
// its presentation instant in the track's timescale (edit-list shift removed).
type Cut struct {
	Sample int
	Time   int64
}

// PlanVideoCuts cuts a video track at the first sync sample at or after each
// k×seg instant. The first cut is always sample 0, which must be a sync sample.
func PlanVideoCuts(t *Track, seg int64) ([]Cut, error) {
	if seg <= 0 {
		return nil, fmt.Errorf("segment duration must be positive")
	}
	if t.Len() == 0 || !t.IsSync(0) {
		return nil, fmt.Errorf("%s: first video sample is not a keyframe", t.Path)
	}
	cuts := []Cut{{Sample: 0, Time: t.PTS(0) - t.Shift}}
	target := seg
	for i := 1; i < t.Len(); i++ {
		if !t.IsSync(i) {
			continue
		}
		pt := t.PTS(i) - t.Shift
		if pt < target {
			continue
		}
		cuts = append(cuts, Cut{Sample: i, Time: pt})
		for target <= pt {
			target += seg
		}
	}
	return cuts, nil
}

// PlanFollowerCuts cuts a track (audio) at the first sample whose presentation
// time is at or after each of the leader's cut instants. Cuts that would leave
// the follower with an empty segment at its end are dropped.
func PlanFollowerCuts(t *Track, leader []Cut, leaderTimescale uint32) []Cut {
	cuts := []Cut{{Sample: 0, Time: 0}}
	i := 0
	for _, lc := range leader[1:] {
		for i < t.Len() && (int64(t.DTS[i])-t.Shift)*int64(leaderTimescale) < lc.Time*int64(t.Timescale) {
			i++
		}
		if i >= t.Len() {
			break
		}
		if i > cuts[len(cuts)-1].Sample {
			cuts = append(cuts, Cut{Sample: i, Time: int64(t.DTS[i]) - t.Shift})
		}
	}
	return cuts
}

// SameInstants reports whether two cut lists share every instant, comparing
// across timescales exactly (or within a millisecond when the timescales
// cannot express each other's instants).
func SameInstants(a []Cut, ats uint32, b []Cut, bts uint32) (bool, int) {
	if len(a) != len(b) {
		return false, min(len(a), len(b))
	}
	for k := range a {
		l, r := a[k].Time*int64(bts), b[k].Time*int64(ats)
		if l == r {
			continue
		}
		diff := float64(l-r) / float64(int64(ats)*int64(bts))
		if diff > 0.001 || diff < -0.001 {
			return false, k
		}
	}
	return true, -1
}

// SegmentInfo describes one written media segment.
type SegmentInfo struct {
	Number int `json:"n"`
	// Time is the earliest presentation time in media time (the MPD's S@t;
	// presentationTimeOffset is subtracted by players).
	Time     uint64 `json:"t"`
	Duration uint64 `json:"d"`
	Samples  int    `json:"samples"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	// Key is, for video, the length of the segment's prefix that holds its
	// first frame (a keyframe) whole: styp, moof, the mdat header and that
	// sample. An HLS I-frame playlist addresses it as a byte range; 0 when
	// not recorded (assets packaged before it was: see KeyframeLength).
	Key int64 `json:"key,omitempty"`
}

// FileInfo describes a written file.
type FileInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// WriteInit writes the CMAF header (ftyp+moov, one track, no samples) for t.
func WriteInit(t *Track, path string) (FileInfo, error) {
	init := mp4.CreateEmptyInit()
	init.Moov.Mvhd.Timescale = t.Timescale
	out := init.AddEmptyTrack(t.Timescale, t.Kind, t.Lang)
	in := t.trak.Mdia.Minf.Stbl.Stsd
	switch t.Kind {
	case "video":
		out.Mdia.Minf.Stbl.Stsd.AddChild(in.AvcX)
		out.Tkhd.Width = t.trak.Tkhd.Width
		out.Tkhd.Height = t.trak.Tkhd.Height
		// The display matrix too: a phone's video copied (-copy) as it
		// was stored, landscape with a quarter turn, plays upright (an
		// encoded rendition is upright already, its matrix the unity).
		out.Tkhd.Matrix = t.trak.Tkhd.Matrix
	case "audio":
		out.Mdia.Minf.Stbl.Stsd.AddChild(in.Mp4a)
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		return FileInfo{}, fmt.Errorf("init %s: %w", path, err)
	}
	return writeFileSum(path, buf.Bytes())
}

// WriteSegments cuts t at cuts and writes segment files "N.m4s" (N from 1)
// into dir. Every sample lands in exactly one segment, with its decode time,
// duration, composition offset and sync flag unchanged.
func WriteSegments(t *Track, cuts []Cut, dir string) ([]SegmentInfo, error) {
	src, err := os.Open(t.Path)
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", t.Path, err)
	}
	defer src.Close()
	infos := make([]SegmentInfo, 0, len(cuts))
	var buf bytes.Buffer
	samples := make([]mp4.Sample, 0, 256)
	for k, c := range cuts {
		end := t.Len()
		if k+1 < len(cuts) {
			end = cuts[k+1].Sample
		}
		samples = samples[:0]
		for i := c.Sample; i < end; i++ {
			flags := mp4.NonSyncSampleFlags
			if t.IsSync(i) {
				flags = mp4.SyncSampleFlags
			}
			var cto int32
			if t.CTOs != nil {
				cto = t.CTOs[i]
			}
			samples = append(samples, mp4.NewSample(flags, t.Durs[i], t.Sizes[i], cto))
		}
		frag, err := mp4.CreateFragment(uint32(k+1), 1)
		if err != nil {
			return nil, fmt.Errorf("segment %d of %s: %w", k+1, t.Path, err)
		}
		frag.AddSamples(samples, t.DTS[c.Sample])
		if t.signedCTO {
			frag.Moof.Traf.Trun.Version = 1 // composition offsets may be negative
		}
		buf.Reset()
		if err := mp4.CreateStyp().Encode(&buf); err != nil {
			return nil, fmt.Errorf("segment %d of %s: %w", k+1, t.Path, err)
		}
		if err := frag.Encode(&buf); err != nil { // moof and the mdat header: the mdat is lazy
			return nil, fmt.Errorf("segment %d of %s: %w", k+1, t.Path, err)
		}
		var key int64
		if t.Kind == "video" && t.IsSync(c.Sample) {
			key = int64(buf.Len()) + int64(t.Sizes[c.Sample])
		}
		if err := t.appendSampleData(&buf, src, c.Sample, end); err != nil {
			return nil, fmt.Errorf("segment %d of %s: %w", k+1, t.Path, err)
		}
		name := filepath.Join(dir, fmt.Sprintf("%d.m4s", k+1))
		fi, err := writeFileSum(name, buf.Bytes())
		if err != nil {
			return nil, err
		}
		ept, last := t.presentationSpan(c.Sample, end)
		infos = append(infos, SegmentInfo{Number: k + 1, Time: uint64(ept), Duration: uint64(last - ept),
			Samples: end - c.Sample, Size: fi.Size, SHA256: fi.SHA256, Key: key})
	}
	// Make the timeline continuous: each segment lasts until the next starts.
	for k := 0; k+1 < len(infos); k++ {
		infos[k].Duration = infos[k+1].Time - infos[k].Time
	}
	return infos, nil
}

// presentationSpan returns the earliest presentation time and the end of
// presentation of samples [from, to), in media time.
func (t *Track) presentationSpan(from, to int) (int64, int64) {
	lo, hi := t.PTS(from), t.PTS(from)+int64(t.Durs[from])
	for i := from + 1; i < to; i++ {
		p := t.PTS(i)
		lo = min(lo, p)
		hi = max(hi, p+int64(t.Durs[i]))
	}
	return lo, hi
}

// appendSampleData copies the bytes of samples [from, to) from src, reading
// each run of contiguous samples with one call.
func (t *Track) appendSampleData(buf *bytes.Buffer, src *os.File, from, to int) error {
	for i := from; i < to; {
		start := t.Offsets[i]
		size := int64(t.Sizes[i])
		j := i + 1
		for j < to && t.Offsets[j] == start+size {
			size += int64(t.Sizes[j])
			j++
		}
		buf.Grow(int(size))
		dst := buf.AvailableBuffer()[:size]
		if _, err := src.ReadAt(dst, start); err != nil {
			return fmt.Errorf("read samples %d-%d at offset %d: %w (truncated file?)", i+1, j, start, err)
		}
		buf.Write(dst)
		i = j
	}
	return nil
}

// writeFileSum writes data to path and returns its size and SHA-256.
func writeFileSum(path string, data []byte) (FileInfo, error) {
	sum := sha256.Sum256(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return FileInfo{}, fmt.Errorf("write %s: %w", path, err)
	}
	return FileInfo{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}
