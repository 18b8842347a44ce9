package player

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// BrowserVideo is what a player in a browser knows of the video it plays,
// as the page's adapter hands it to the ABR core (JSON): the chunk
// duration, the number of chunks and the video renditions' bitrates.
type BrowserVideo struct {
	ChunkSeconds float64   `json:"chunkSeconds"`
	Chunks       int       `json:"chunks"`
	Bitrates     []float64 `json:"bitrates"` // kbit/s, ascending: the MPD's @bandwidth
	// Sizes are the chunks' sizes, [chunk][rendition] in bytes; when absent
	// each is its rendition's bitrate over the chunk duration (what a
	// player that has only the MPD can know).
	Sizes [][]int64 `json:"sizes,omitempty"`
	// LiveDelay, for a live stream, is how far behind its live edge the
	// player plays (seconds; dash.js's target live delay): a live buffer
	// holds no more, and the plans count on no more, as in play and sim
	// -live. 0 for VOD. A live stream's Chunks is however many the page
	// lets the session run (up to 100000).
	LiveDelay float64 `json:"liveDelay,omitempty"`
}

// BrowserSample is one finished video segment download as the browser
// measured it.
type BrowserSample struct {
	Bytes int64   `json:"bytes"`
	Ms    float64 `json:"ms"` // request sent to last byte
}

// BrowserState is what the adapter knows before a chunk is chosen: the
// same fields State has, in plain units.
type BrowserState struct {
	Chunk     int             `json:"chunk"`     // from 0
	Buffer    float64         `json:"buffer"`    // seconds of video buffered
	MaxBuffer float64         `json:"maxBuffer"` // seconds; 0 when unknown
	Last      int             `json:"last"`      // the previous chunk's rendition; -1 before the first
	History   []BrowserSample `json:"history"`   // every video download so far, oldest first
}

// BrowserSession runs one ABR algorithm for one viewing session in a
// browser: the code sim and play run, fed states the page measured.
// Asking twice for the same chunk returns the first answer, since the
// algorithms keep history from one chunk to the next and players ask
// more than once per segment.
type BrowserSession struct {
	abr       ABR
	video     *Video
	lastChunk int
	lastPick  int
}

// maxBrowserChunks and maxBrowserRenditions bound what a page may hand over.
const (
	maxBrowserChunks     = 100_000
	maxBrowserRenditions = 64
)

// NewBrowserSession makes a session of the named algorithm (sim-only
// ones, such as the optimum, are refused) for v.
func NewBrowserSession(algorithm string, v BrowserVideo) (*BrowserSession, error) {
	abr, err := NewABR(algorithm)
	if err != nil {
		return nil, err
	}
	video, err := v.video()
	if err != nil {
		return nil, err
	}
	return &BrowserSession{abr: abr, video: video, lastChunk: -1}, nil
}

// video checks the description and lays it out as a Video.
func (v BrowserVideo) video() (*Video, error) {
	switch {
	case !(v.ChunkSeconds > 0) || v.ChunkSeconds > 60:
		return nil, fmt.Errorf("browser video: chunk duration %v s", v.ChunkSeconds)
	case v.Chunks < 1 || v.Chunks > maxBrowserChunks:
		return nil, fmt.Errorf("browser video: %d chunks", v.Chunks)
	case len(v.Bitrates) == 0 || len(v.Bitrates) > maxBrowserRenditions:
		return nil, fmt.Errorf("browser video: %d renditions", len(v.Bitrates))
	case v.Sizes != nil && len(v.Sizes) != v.Chunks:
		return nil, fmt.Errorf("browser video: sizes for %d chunks of %d", len(v.Sizes), v.Chunks)
	case !(v.LiveDelay >= 0) || v.LiveDelay > 3600:
		return nil, fmt.Errorf("browser video: live delay %v s", v.LiveDelay)
	}
	for i, b := range v.Bitrates {
		if !(b > 0) || math.IsInf(b, 0) || i > 0 && b <= v.Bitrates[i-1] {
			return nil, errors.New("browser video: bitrates must be positive and ascending")
		}
	}
	out := &Video{Name: "browser", ChunkDuration: time.Duration(v.ChunkSeconds * float64(time.Second)), Chunks: v.Chunks,
		Bitrates: append([]float64(nil), v.Bitrates...), LiveDelay: seconds(v.LiveDelay)}
	// Without sizes every chunk of a rendition is its bitrate's worth:
	// one row serves them all (Size reads the last row past the end), so
	// a live stream of 100000 chunks costs no more than one.
	rows := v.Chunks
	if v.Sizes == nil {
		rows = 1
	}
	out.Sizes = make([][]int64, rows)
	for k := range out.Sizes {
		out.Sizes[k] = make([]int64, len(v.Bitrates))
		for q, b := range v.Bitrates {
			if v.Sizes != nil {
				if len(v.Sizes[k]) != len(v.Bitrates) || v.Sizes[k][q] <= 0 {
					return nil, fmt.Errorf("browser video: chunk %d sizes", k)
				}
				out.Sizes[k][q] = v.Sizes[k][q]
				continue
			}
			out.Sizes[k][q] = int64(b * 1000 / 8 * v.ChunkSeconds)
		}
	}
	return out, nil
}

// Choose returns the rendition (index into the bitrates) for the state's
// chunk.
func (b *BrowserSession) Choose(s BrowserState) (int, error) {
	n := len(b.video.Bitrates)
	switch {
	case s.Chunk == b.lastChunk:
		return b.lastPick, nil
	case s.Chunk < b.lastChunk:
		return 0, fmt.Errorf("chunk %d after chunk %d: a session goes forward", s.Chunk, b.lastChunk)
	case s.Chunk >= b.video.Chunks:
		return 0, fmt.Errorf("chunk %d of %d", s.Chunk, b.video.Chunks)
	case s.Last < -1 || s.Last >= n:
		return 0, fmt.Errorf("previous rendition %d of %d", s.Last, n)
	case !(s.Buffer >= 0) || s.Buffer > 3600 || s.MaxBuffer < 0:
		return 0, fmt.Errorf("buffer %v s", s.Buffer)
	}
	st := &State{Video: b.video, Chunk: s.Chunk, Chunks: b.video.Chunks, Last: s.Last,
		Buffer: seconds(s.Buffer), MaxBuffer: seconds(s.MaxBuffer)}
	for _, h := range s.History {
		if h.Bytes <= 0 || !(h.Ms > 0) {
			continue // a cache hit in memory can take no measurable time
		}
		st.addSample(Download{Bytes: h.Bytes, Sent: 0, LastByte: seconds(h.Ms / 1000)})
	}
	q := b.abr.Choose(st)
	if q < 0 || q >= n {
		return 0, fmt.Errorf("%s chose rendition %d of %d", b.abr.Name(), q, n)
	}
	b.lastChunk, b.lastPick = s.Chunk, q
	return q, nil
}

// BrowserProgress is a video segment download in progress, as the page
// measured it when its player asked whether to give it up.
type BrowserProgress struct {
	Chunk     int   `json:"chunk"`     // from 0
	Rendition int   `json:"rendition"` // the download's
	Bytes     int64 `json:"bytes"`     // in so far
	// Size is the segment's bytes (its Content-Length); 0 when unknown,
	// for its rendition's bitrate over the chunk duration.
	Size        int64   `json:"size"`
	Ms          float64 `json:"ms"`          // since the request was sent
	FirstByteMs float64 `json:"firstByteMs"` // from the request to its first byte
	Buffer      float64 `json:"buffer"`      // seconds of video buffered now
	Last        int     `json:"last"`        // the previous chunk's rendition; -1 before the first
}

// Abandon says whether the download p describes should be given up for
// a lower rendition, by the stall rule play -abandon stall and sim
// -abandon stall apply (scored by QoE_lin, as the page's sessions are):
// the rendition to fetch the chunk at instead, or -1 to let it go on.
// It changes nothing the session's next choices see: as in play and sim,
// a download given up is not a throughput sample.
func (b *BrowserSession) Abandon(p BrowserProgress) (int, error) {
	n := len(b.video.Bitrates)
	switch {
	case p.Chunk < 0 || p.Chunk >= b.video.Chunks:
		return 0, fmt.Errorf("chunk %d of %d", p.Chunk, b.video.Chunks)
	case p.Rendition < 0 || p.Rendition >= n:
		return 0, fmt.Errorf("rendition %d of %d", p.Rendition, n)
	case p.Last < -1 || p.Last >= n:
		return 0, fmt.Errorf("previous rendition %d of %d", p.Last, n)
	case p.Bytes < 0 || p.Size < 0:
		return 0, fmt.Errorf("%d of %d bytes", p.Bytes, p.Size)
	case !(p.Ms >= 0) || p.Ms > 3.6e6 || !(p.FirstByteMs >= 0) || p.FirstByteMs > p.Ms:
		return 0, fmt.Errorf("first byte after %v ms of %v", p.FirstByteMs, p.Ms)
	case !(p.Buffer >= 0) || p.Buffer > 3600:
		return 0, fmt.Errorf("buffer %v s", p.Buffer)
	}
	size := p.Size
	if size == 0 {
		size = b.video.Size(p.Chunk, p.Rendition)
	}
	st := &State{Video: b.video, Chunk: p.Chunk, Chunks: b.video.Chunks, Last: p.Last}
	q, ok := stallAbandoner{}.Abandon(st, Progress{Rendition: p.Rendition, Size: size, Bytes: min(p.Bytes, size),
		Elapsed: seconds(p.Ms / 1000), FirstByte: seconds(p.FirstByteMs / 1000), Buffer: seconds(p.Buffer)})
	if !ok {
		return -1, nil
	}
	return q, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
