package player

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Video describes what a session plays: chunk duration, the bitrate of
// each video rendition (lowest first) and every chunk's size at each.
type Video struct {
	Name string
	// ChunkDuration is the chunks' nominal duration (the median of a
	// manifest's), which the ABR algorithms plan with.
	ChunkDuration time.Duration
	// Ends is when each chunk ends, from the start of the first, where a
	// manifest gives each its own duration (a SegmentTimeline cut at
	// scene changes, a short last segment); nil when every chunk lasts
	// ChunkDuration. The buffer fills by each chunk's own.
	Ends     []time.Duration
	Bitrates []float64 // kbit/s, ascending
	// LadderChanges says, for each Period whose video ladder differs
	// from the one the session plays with (an advertisement's), which of
	// its renditions stand in for the ladder's, nearest by bandwidth: the
	// ABR keeps choosing among Bitrates, the ladder's.
	LadderChanges []string
	// Sizes[chunk][rendition] in bytes. It may hold more rows than Chunks
	// (Pensieve's video has a 49th row for robustMPC's look-ahead).
	Sizes  [][]int64
	Chunks int
	// URLs of each chunk's segment per rendition, and the audio segments
	// that follow the video's timeline; empty for size-only sources.
	URLs [][]string
	// InitURLs are each rendition's initialization segment ("" when it has
	// none), InitRanges their byte ranges ("" for a whole resource); the
	// sound's are AudioInit and AudioInitRange.
	InitURLs       []string
	InitRanges     []string
	AudioURLs      []string
	AudioInit      string
	AudioInitRange string
	AudioSize      []int64
	// AudioKbps is the sound's bitrate as the manifest declares it (0:
	// no sound, or not declared).
	AudioKbps float64
	// Ranges[chunk][rendition] and AudioRanges are the segments' byte
	// ranges in their URLs ("first-last"), "" for a whole resource; nil
	// when no segment is a range. The DASH on-demand profile keeps each
	// rendition in one file and addresses its segments this way.
	Ranges      [][]string
	AudioRanges []string
	// AudioEnds is when each audio segment ends on the video's timeline
	// (from the start of its first segment). A packager may cut sound on
	// other boundaries than video (AAC frames do not divide 2 s), so the
	// sound is fetched by time, not by index: see AudioAt.
	AudioEnds []time.Duration
	// Bases are the MPD's alternative locations (see manifest.Manifest),
	// the one the URLs above start with first.
	Bases []string
	// HLS is whether the video was read from HLS playlists, not an MPD
	// (what CMCD's sf reports).
	HLS bool

	// LiveStart is, for a live stream, the wall-clock time at which chunk
	// 0's media begins (zero for VOD): a chunk can be fetched once the
	// live edge has passed its end (see AvailableAt).
	LiveStart time.Time
	// LiveDelay is how far behind the live edge chunk 0 began when the
	// player joined: the most buffer a live session can hold (0 for VOD).
	LiveDelay time.Duration
	// liveOffset is chunk 0's start on the live stream's timeline, and
	// live how a live stream follows its MPD (nil for VOD).
	liveOffset time.Duration
	live       *liveFeed
	// liveNumbers is each chunk's segment number ($Number$, an HLS media
	// sequence number: alike in every rendition of an aligned stream).
	liveNumbers []int

	// reinit lists, by rendition (-1: the sound, by its segment index),
	// the chunks from which another initialization segment is needed (a
	// later Period's), in order.
	reinit map[int][]initChange

	lazy *lazySizes // sizes asked for as they are needed (play), or nil
}

// AvailableAt is when chunk k of a live stream can be fetched (audio
// segment k when audio): once its end has been published. The zero time
// for VOD, where every chunk can be.
func (v *Video) AvailableAt(k int, audio bool) time.Time {
	if v.LiveStart.IsZero() {
		return time.Time{}
	}
	return v.LiveStart.Add(v.endOf(k, audio))
}

// endOf is when chunk k (audio segment k) ends, from chunk 0's start; past
// the chunks laid out, at the chunk duration.
func (v *Video) endOf(k int, audio bool) time.Duration {
	ends := v.Ends
	if audio {
		ends = v.AudioEnds
	}
	if k < len(ends) {
		return ends[k]
	}
	return time.Duration(k+1) * v.ChunkDuration
}

// initChange is where a rendition's initialization segment changes.
type initChange struct {
	from     int // the first chunk (audio: segment) that needs it
	url, rng string
}

// InitFor is the initialization segment chunk k of rendition q needs (q
// -1: audio segment k), as URL and byte range; "" when there is none.
func (v *Video) InitFor(k, q int) (url, rng string) {
	switch {
	case q < 0:
		url, rng = v.AudioInit, v.AudioInitRange
	case q < len(v.InitURLs):
		url = v.InitURLs[q]
		if q < len(v.InitRanges) {
			rng = v.InitRanges[q]
		}
	}
	changes := v.reinit[q]
	if i, _ := slices.BinarySearchFunc(changes, k+1, func(c initChange, t int) int { return c.from - t }); i > 0 {
		url, rng = changes[i-1].url, changes[i-1].rng
	}
	return url, rng
}

// noteInit records that from chunk k rendition q needs the initialization
// segment url (at rng) when a segment says so.
func (v *Video) noteInit(k, q int, url, rng string) {
	if url == "" {
		return
	}
	if v.reinit == nil {
		v.reinit = map[int][]initChange{}
	}
	v.reinit[q] = append(v.reinit[q], initChange{k, url, rng})
}

// forgetInits drops what noteInit recorded of rendition q's
// initialization segments from chunk k on (a reload lays them out anew).
func (v *Video) forgetInits(k, q int) {
	if changes, ok := v.reinit[q]; ok {
		v.reinit[q] = slices.DeleteFunc(changes, func(c initChange) bool { return c.from >= k })
	}
}

// audioSlack is how far the sound may end short of the video and still
// cover it: two AAC frames (21.3 ms each at 48 kHz, 23.2 at 44.1), the
// most that packagers' cuts on frame boundaries leave between the two.
const audioSlack = 50 * time.Millisecond

// ChunkDur is chunk k's duration.
func (v *Video) ChunkDur(k int) time.Duration { return between(v.Ends, k, v.ChunkDuration) }

// between is the duration of item i of a timeline given by its items'
// ends, or fallback past them.
func between(ends []time.Duration, i int, fallback time.Duration) time.Duration {
	switch {
	case i >= len(ends):
		return fallback
	case i == 0:
		return ends[0]
	}
	return ends[i] - ends[i-1]
}

// chunkEnd is when chunk k ends, from the start of the first.
func (v *Video) chunkEnd(k int) time.Duration {
	if k < len(v.Ends) {
		return v.Ends[k]
	}
	return time.Duration(k+1) * v.ChunkDuration
}

// AudioAt gives the audio segments [from, to) fetched with video chunk
// k: those that cover the sound to the chunk's end, and all the rest with
// the last chunk.
func (v *Video) AudioAt(k int) (from, to int) {
	if k > 0 {
		from = v.audioDue(k - 1)
	}
	return from, v.audioDue(k)
}

// audioDue is how many audio segments must be in for video chunk k to play.
func (v *Video) audioDue(k int) int {
	n := len(v.AudioURLs)
	if len(v.AudioEnds) != n {
		return min(k+1, n) // no timing: one audio segment per chunk
	}
	if k >= v.Chunks-1 && v.LiveStart.IsZero() {
		return n // the rest of the sound: it may end in a short segment past the video
	}
	end := v.chunkEnd(k) - audioSlack
	for i, e := range v.AudioEnds {
		if e >= end {
			return i + 1
		}
	}
	return n
}

// audioDuration is audio segment i's duration, the chunk duration when
// the sound has no timing.
func (v *Video) audioDuration(i int) time.Duration {
	return between(v.AudioEnds, i, v.ChunkDuration)
}

// Size is the byte size of chunk at rendition; past the last row it repeats
// the last row, so look-ahead never falls off the end.
func (v *Video) Size(chunk, rendition int) int64 {
	if chunk >= len(v.Sizes) {
		chunk = len(v.Sizes) - 1
	}
	if v.lazy != nil {
		return v.lazy.get(v, chunk, rendition)
	}
	return v.Sizes[chunk][rendition]
}

// ParseVideoCSV reads a video description like envivio-4s-48.csv: a header
// "chunk,300kbps,750kbps,..." then one row per chunk with byte sizes.
func ParseVideoCSV(r io.Reader, name string, chunkDur time.Duration) (*Video, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	v := &Video{Name: name, ChunkDuration: chunkDur}
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		cols := strings.Split(text, ",")
		if v.Bitrates == nil {
			if len(cols) < 2 {
				return nil, fmt.Errorf("video %s line %d: header needs a chunk column and at least one bitrate", name, line)
			}
			for _, c := range cols[1:] {
				kbps, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(strings.ToLower(c)), "kbps"), 64)
				if err != nil || !(kbps > 0 && kbps <= 1e7) { // NaN fails too
					return nil, fmt.Errorf("video %s line %d: column %q is not a bitrate like 300kbps", name, line, c)
				}
				if len(v.Bitrates) > 0 && kbps <= v.Bitrates[len(v.Bitrates)-1] {
					return nil, fmt.Errorf("video %s line %d: bitrates must increase", name, line)
				}
				v.Bitrates = append(v.Bitrates, kbps)
			}
			if len(v.Bitrates) > 32 {
				return nil, fmt.Errorf("video %s: more than 32 renditions", name)
			}
			continue
		}
		if len(cols) != len(v.Bitrates)+1 {
			return nil, fmt.Errorf("video %s line %d: %d columns, want %d", name, line, len(cols), len(v.Bitrates)+1)
		}
		row := make([]int64, len(v.Bitrates))
		for i, c := range cols[1:] {
			n, err := strconv.ParseInt(strings.TrimSpace(c), 10, 64)
			if err != nil || n <= 0 || n > 1<<34 {
				return nil, fmt.Errorf("video %s line %d: size %q is not a positive byte count", name, line, c)
			}
			row[i] = n
		}
		v.Sizes = append(v.Sizes, row)
		if len(v.Sizes) > 1_000_000 {
			return nil, fmt.Errorf("video %s: too many chunks", name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("video %s: %w", name, err)
	}
	if len(v.Sizes) == 0 {
		return nil, fmt.Errorf("video %s: no chunks", name)
	}
	v.Chunks = len(v.Sizes)
	return v, nil
}

// PensieveChunks is the number of chunks Pensieve's simulator plays of its
// video; the file's extra row only feeds robustMPC's look-ahead.
const PensieveChunks = 48
