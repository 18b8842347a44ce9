//go:build !js

package player

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deepcast/deepcast/manifest"
)

// LoadVideo reads SOURCE: a video CSV, a Sabre video manifest (.json), a
// local MPD or asset folder (sizes from the segment files), or an MPD URL
// (sizes from HEAD requests, all of them before it returns, as a
// simulation needs).
func LoadVideo(ctx context.Context, source string, client *http.Client) (*Video, error) {
	return loadVideo(ctx, source, client, false)
}

// LoadVideoLazily is LoadVideo for a player: an MPD URL's segment sizes
// are asked for as the ABR first looks at each chunk, a few chunks ahead
// at a time, not all before playback starts (a two-hour film of 2 s
// segments in six renditions is 21600 HEAD requests). The Video is for
// one session at a time, bound to ctx. A live (dynamic) MPD is joined now
// for liveLength of media (see manifest.ParseLive), liveDelay behind its
// edge (0: the MPD's suggestedPresentationDelay, else three segments), and
// joined again there after falling behind; with liveLength 0 it is
// refused.
func LoadVideoLazily(ctx context.Context, source string, client *http.Client, liveLength, liveDelay time.Duration) (*Video, error) {
	if liveLength > 0 && isURL(source) {
		return loadRemoteMPD(ctx, source, client, true, &manifest.LiveJoin{Length: liveLength, Delay: liveDelay})
	}
	return loadVideo(ctx, source, client, true)
}

func isURL(source string) bool {
	return strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://")
}

func loadVideo(ctx context.Context, source string, client *http.Client, lazy bool) (*Video, error) {
	if isURL(source) {
		return loadRemoteMPD(ctx, source, client, lazy, nil)
	}
	st, err := os.Stat(source)
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", source, err)
	}
	if st.IsDir() {
		source = filepath.Join(source, "manifest.mpd")
	}
	if strings.HasSuffix(strings.ToLower(source), ".csv") {
		f, err := os.Open(source)
		if err != nil {
			return nil, fmt.Errorf("video %s: %w", source, err)
		}
		defer f.Close()
		// Chunk length from a name such as envivio-4s-48.csv; 4 s otherwise.
		dur := 4 * time.Second
		for part := range strings.SplitSeq(strings.TrimSuffix(filepath.Base(source), ".csv"), "-") {
			if d, err := time.ParseDuration(part); err == nil && d > 0 {
				dur = d
			}
		}
		return ParseVideoCSV(f, strings.TrimSuffix(filepath.Base(source), ".csv"), dur)
	}
	switch strings.ToLower(filepath.Ext(source)) {
	case ".mpd", ".m3u8", ".m3u", ".xml":
	case ".json":
		f, err := os.Open(source)
		if err != nil {
			return nil, fmt.Errorf("video %s: %w", source, err)
		}
		defer f.Close()
		return ParseSabreVideo(f, strings.TrimSuffix(filepath.Base(source), filepath.Ext(source)))
	default:
		// A media file (or anything else) given as the video: say what
		// is wanted rather than what a manifest parser made of it.
		return nil, fmt.Errorf("video %s: want a video CSV (chunk sizes per rendition, like envivio-4s-48.csv), a Sabre video manifest (.json), a packaged asset folder, its manifest.mpd or master.m3u8, or an http(s) URL of one; to simulate a video file, package it first (deepcast package)", source)
	}
	data, err := os.ReadFile(source)
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", source, err)
	}
	abs, _ := filepath.Abs(source)
	var m *manifest.Manifest
	if manifest.IsHLS(source, data) {
		m, err = manifest.ParseHLS(data, &url.URL{Scheme: "file", Path: abs}, func(u *url.URL) ([]byte, error) {
			path, err := localFile(u)
			if err != nil {
				return nil, err
			}
			return os.ReadFile(path)
		})
	} else {
		m, err = manifest.ParseIndexed(data, &url.URL{Scheme: "file", Path: abs}, readFileRange)
	}
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", source, err)
	}
	return videoFromManifest(ctx, m, filepath.Base(filepath.Dir(abs)), false, func(u string) (int64, error) {
		pu, err := url.Parse(u)
		if err != nil {
			return 0, err
		}
		path, err := localFile(pu)
		if err != nil {
			return 0, err
		}
		st, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	})
}

// localFile is the file a local manifest's URL names. A local manifest is
// read from the disk alone: an http:// URL in it is not the local file
// that has its path.
func localFile(u *url.URL) (string, error) {
	if u.Scheme != "file" {
		return "", fmt.Errorf("%s: a local manifest's playlists, segments and indexes must be local files (play the manifest from its server instead)", u)
	}
	return u.Path, nil
}

// FetchManifest downloads and parses a manifest: an MPD, or an HLS
// multivariant playlist (a .m3u8 URL, or a body starting #EXTM3U) with
// the media playlists it names.
func FetchManifest(ctx context.Context, mpdURL string, client *http.Client) (*manifest.Manifest, error) {
	return fetchManifest(ctx, mpdURL, client, nil, nil)
}

// fetchManifest is FetchManifest joining a live MPD as join says (its Now
// set when the MPD has come), or refusing one when join is nil.
func fetchManifest(ctx context.Context, mpdURL string, client *http.Client, join *manifest.LiveJoin, clock *liveClock) (*manifest.Manifest, error) {
	data, base, err := fetchDocument(ctx, mpdURL, client, manifest.MaxMPDSize)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", mpdURL, err)
	}
	var j manifest.LiveJoin
	if join != nil {
		j = *join
		if j.Now.IsZero() {
			// A live MPD's segments are published by the server's clock
			// (an HLS playlist names none: this machine's stands).
			clock.sync(ctx, client, data, mpdURL)
			j.Now = clock.now()
		}
	}
	var m *manifest.Manifest
	if manifest.IsHLS(mpdURL, data) {
		get := func(u *url.URL) ([]byte, error) {
			b, _, err := fetchDocument(ctx, u.String(), client, manifest.MaxPlaylistSize)
			return b, err
		}
		if join != nil {
			m, err = manifest.ParseHLSLive(data, base, get, j)
		} else {
			m, err = manifest.ParseHLS(data, base, get)
		}
	} else {
		index := func(u *url.URL, first, last int64) ([]byte, error) {
			return fetchRange(ctx, u.String(), first, last, client)
		}
		if join != nil {
			m, err = manifest.ParseLive(data, base, index, j)
		} else {
			m, err = manifest.ParseIndexed(data, base, index)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", mpdURL, err)
	}
	return m, nil
}

// readFileRange reads bytes first..last of a file:// URL's file.
func readFileRange(u *url.URL, first, last int64) ([]byte, error) {
	path, err := localFile(u)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, last-first+1)
	if _, err := f.ReadAt(buf, first); err != nil {
		return nil, fmt.Errorf("bytes %d-%d: %w", first, last, err)
	}
	return buf, nil
}

// fetchRange GETs bytes first..last of u (a segment index, at most
// manifest.MaxIndexSize bytes).
func fetchRange(ctx context.Context, u string, first, last int64, client *http.Client) ([]byte, error) {
	data, _, err := getBody(ctx, u, client, fmt.Sprintf("%d-%d", first, last), last-first+1)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != last-first+1 {
		return nil, fmt.Errorf("%s bytes %d-%d: got %d bytes", u, first, last, len(data))
	}
	return data, nil
}

// fetchDocument GETs a manifest or playlist of at most limit bytes; base
// is its URL after redirects, against which its relative URLs resolve.
func fetchDocument(ctx context.Context, u string, client *http.Client, limit int64) ([]byte, *url.URL, error) {
	return getBody(ctx, u, client, "", limit)
}

// getBody GETs u, or bytes rng ("first-last") of it, answered 200 (206
// for a range), and reads at most limit bytes of the body; final is u
// after redirects.
func getBody(ctx context.Context, u string, client *http.Client, rng string, limit int64) (data []byte, final *url.URL, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	want := http.StatusOK
	if rng != "" {
		req.Header.Set("Range", "bytes="+rng)
		want = http.StatusPartialContent
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		if rng != "" {
			return nil, nil, fmt.Errorf("%s bytes %s: %s, want 206 Partial Content", u, rng, resp.Status)
		}
		return nil, nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("%s: larger than %d bytes", u, limit)
	}
	final = req.URL
	if resp.Request != nil && resp.Request.URL != nil {
		final = resp.Request.URL // after redirects, relative URLs follow the final location
	}
	return data, final, nil
}

func loadRemoteMPD(ctx context.Context, mpdURL string, client *http.Client, lazy bool, join *manifest.LiveJoin) (*Video, error) {
	clock := &liveClock{}
	m, err := fetchManifest(ctx, mpdURL, client, join, clock)
	if err != nil {
		return nil, err
	}
	cache := &sync.Map{}
	head := func(u string) (int64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 {
			return 0, fmt.Errorf("HEAD %s: %s", u, resp.Status)
		}
		return resp.ContentLength, nil
	}
	v, err := videoFromManifest(ctx, m, mpdURL, lazy, func(u string) (int64, error) {
		if v, ok := cache.Load(u); ok {
			return v.(int64), nil
		}
		n, err := head(u)
		// A location that fails: the same object at the MPD's other ones.
		for i := 1; err != nil && i < len(m.Bases) && strings.HasPrefix(u, m.Bases[0]) && ctx.Err() == nil; i++ {
			var aerr error
			if n, aerr = head(m.Bases[i] + strings.TrimPrefix(u, m.Bases[0])); aerr == nil {
				err = nil
			}
		}
		if err != nil {
			return 0, err
		}
		cache.Store(u, n)
		return n, nil
	})
	if err != nil || m.Live == nil {
		return v, err
	}
	v.LiveStart = v.LiveStart.Add(-clock.skew) // on this machine's clock
	v.LiveDelay = max(time.Since(v.LiveStart), 0)
	var joinDelay time.Duration // a rejoin is as far behind as the join
	if join != nil {
		joinDelay = join.Delay
	}
	playlists := hlsPlaylists(m)
	// The ladder the session plays with, which every re-read lays the
	// Periods it lists onto (their segments are not kept).
	var ladder []*manifest.Representation
	for _, r := range m.Video {
		ladder = append(ladder, &manifest.Representation{ID: r.ID, Bandwidth: r.Bandwidth, Width: r.Width, Height: r.Height, Codecs: r.Codecs, MimeType: r.MimeType})
	}
	refresh := cmp.Or(m.Live.Location, mpdURL) // where the MPD is re-read: its Location, else where it was
	// reread reads the MPD again (following a Location it names), or the
	// multivariant playlist with every media playlist, laid out for join.
	reread := func(ctx context.Context, join manifest.LiveJoin) (*manifest.Manifest, error) {
		if playlists != nil {
			return fetchManifest(ctx, mpdURL, client, &join, clock)
		}
		m, err := fetchManifest(ctx, refresh, client, &join, clock)
		if err == nil && m.Live != nil {
			refresh = cmp.Or(m.Live.Location, refresh)
		}
		return m, err
	}
	v.live = &liveFeed{updateEvery: m.Live.MinimumUpdatePeriod, timeShift: m.Live.TimeShiftBufferDepth, read: time.Now(), relayout: func(ctx context.Context, k, q int) error {
		left := v.Chunks - k
		at := v.liveOffset + v.chunkStart(k)
		anchor := v.live.anchor(k, q)
		join := manifest.LiveJoin{Now: clock.now(), Length: time.Duration(left) * v.ChunkDuration,
			Resume: true, At: at, MinSegments: left, AnchorNumber: v.liveNumbers[anchor], AnchorStart: v.liveOffset + v.chunkStart(anchor),
			Ladder: ladder}
		if playlists != nil {
			if n, start, ok := v.soundAnchor(at); q < 0 && ok {
				join.AnchorNumber, join.AnchorStart = n, start
			}
			return v.reloadPlaylist(ctx, client, playlists, k, q, join)
		}
		m, err := reread(ctx, join)
		if err != nil {
			return err
		}
		return v.relayFrom(k, at, m)
	}}
	v.live.predicted, v.live.audioPredicted, v.live.audioNumbers = predictedOf(m)
	v.live.joinedAt, v.live.playlistWindow = v.LiveStart, m.Live.PlaylistWindow
	v.live.rejoin = func(ctx context.Context, k int) (time.Duration, error) {
		// Joined afresh, as at the start (the MPD's delay, or three
		// segments), for the chunks left: the whole ladder anew, as the
		// chunks from k on are all at another place on the timeline.
		left := v.Chunks - k
		m, err := reread(ctx, manifest.LiveJoin{Now: clock.now(), Length: time.Duration(left) * v.ChunkDuration, MinSegments: left, Delay: joinDelay, Ladder: ladder})
		if err != nil {
			return 0, err
		}
		if m.Live == nil || m.Live.Ended {
			v.live.ended = true
			v.Chunks = k
			return 0, ErrStreamEnded
		}
		return v.jumpTo(k, m, m.Live.Epoch.Add(-clock.skew))
	}
	return v, nil
}

// jumpTo lays chunks k on out from m, a fresh join of the live stream
// (its time zero at epoch on this machine's clock), further ahead on the
// timeline: the chunks keep following one another in the session's media
// time (Ends), and the stream's timeline moves under them (liveOffset,
// LiveStart). It returns how much media was skipped.
func (v *Video) jumpTo(k int, m *manifest.Manifest, epoch time.Time) (time.Duration, error) {
	if len(m.Video) == 0 || len(m.Video[0].Segments) == 0 {
		return 0, errors.New("the rejoined stream lists no video")
	}
	at := m.Video[0].Segments[0].Start
	offset, start := v.liveOffset, v.LiveStart
	v.liveOffset = at - v.chunkStart(k)
	v.LiveStart = epoch.Add(v.liveOffset)
	skipped := v.LiveStart.Sub(start)
	if skipped <= 0 {
		v.liveOffset, v.LiveStart = offset, start
		return 0, fmt.Errorf("the live edge is no further ahead than chunk %d", k+1)
	}
	if err := v.relayFrom(k, at, m); err != nil {
		v.liveOffset, v.LiveStart = offset, start
		return 0, err
	}
	v.live.since = k
	if k == 0 {
		v.live.joinedAt = v.LiveStart // nothing played from where it joined first
	}
	return skipped, nil
}

// VideoFromMPD makes a Video from an asset's MPD held in memory (read
// from an object store, say); sizeOf gives a segment's size from its path
// relative to the MPD, such as "720p/3.m4s".
func VideoFromMPD(data []byte, name string, sizeOf func(rel string) (int64, error)) (*Video, error) {
	base := &url.URL{Scheme: "file", Path: "/" + name + "/"}
	m, err := manifest.Parse(data, base.JoinPath("manifest.mpd"))
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", name, err)
	}
	return videoFromManifest(context.Background(), m, name, false, func(u string) (int64, error) {
		pu, err := url.Parse(u)
		if err != nil {
			return 0, err
		}
		rel, ok := strings.CutPrefix(pu.Path, base.Path)
		if !ok {
			return 0, fmt.Errorf("segment %s outside the asset", u)
		}
		return sizeOf(rel)
	})
}

// videoFromManifest lays the manifest's video Representations out as a
// Video. size gives a whole segment's size (a byte range is its own):
// every one before it returns, or, when lazy, as the ABR first looks at a
// chunk (see lazySizes); a lazy Video's audio sizes, which only a
// simulated link uses, are left unknown (0).
func videoFromManifest(ctx context.Context, m *manifest.Manifest, name string, lazy bool, size func(url string) (int64, error)) (*Video, error) {
	v := &Video{Name: name, Bases: m.Bases, HLS: len(m.Video) > 0 && m.Video[0].Playlist != ""}
	v.LadderChanges = ladderChanges(m.Remapped)
	if m.Live != nil {
		v.liveOffset = m.Video[0].Segments[0].Start
		v.LiveStart = m.Live.Epoch.Add(v.liveOffset)
		for _, s := range m.Video[0].Segments {
			v.liveNumbers = append(v.liveNumbers, s.Number)
		}
	}
	chunks := len(m.Video[0].Segments)
	for _, r := range m.Video {
		if len(r.Segments) != chunks {
			return nil, fmt.Errorf("video %s: representations have %d and %d segments: not aligned", name, chunks, len(r.Segments))
		}
	}
	v.Chunks = chunks
	lead := m.Video[0].Segments
	durs := make([]time.Duration, chunks)
	v.Ends = make([]time.Duration, chunks)
	for k, s := range lead {
		if s.Duration <= 0 {
			return nil, fmt.Errorf("video %s: segment %d lasts %v", name, k+1, s.Duration)
		}
		durs[k], v.Ends[k] = s.Duration, s.Start+s.Duration-lead[0].Start
	}
	slices.Sort(durs)
	v.ChunkDuration = durs[chunks/2]
	for _, r := range m.Video {
		v.Bitrates = append(v.Bitrates, float64(r.Bandwidth)/1000)
		v.InitURLs = append(v.InitURLs, r.Init)
		v.InitRanges = append(v.InitRanges, r.InitRange)
	}
	// Sizes still to ask for: (chunk, rendition), rendition -1 for audio.
	var asks []sizeAsk
	ranged := false
	v.Sizes = make([][]int64, chunks)
	v.URLs = make([][]string, chunks)
	v.Ranges = make([][]string, chunks)
	for k := range chunks {
		v.Sizes[k] = make([]int64, len(m.Video))
		v.URLs[k] = make([]string, len(m.Video))
		v.Ranges[k] = make([]string, len(m.Video))
		for i, r := range m.Video {
			s := r.Segments[k]
			v.URLs[k][i], v.Ranges[k][i] = s.URL, s.Range
			v.noteInit(k, i, s.Init, s.InitRange)
			ranged = ranged || s.Range != ""
			if v.Sizes[k][i] = s.RangeSize(); v.Sizes[k][i] == 0 {
				asks = append(asks, sizeAsk{k, i})
			}
		}
	}
	if !ranged {
		v.Ranges = nil
	}
	if sound := m.MainAudio(); len(sound) > 0 {
		a := sound[0] // the main sound's lowest: the ABR chooses video only
		v.AudioInit, v.AudioInitRange = a.Init, a.InitRange
		v.AudioKbps = float64(a.Bandwidth) / 1000
		for i, s := range a.Segments {
			v.AudioEnds = append(v.AudioEnds, s.Start+s.Duration-lead[0].Start)
			v.AudioURLs = append(v.AudioURLs, s.URL)
			v.AudioRanges = append(v.AudioRanges, s.Range)
			v.AudioSize = append(v.AudioSize, s.RangeSize())
			v.noteInit(i, -1, s.Init, s.InitRange)
			if v.AudioSize[i] == 0 && !lazy {
				asks = append(asks, sizeAsk{i, -1})
			}
		}
	}
	if lazy {
		v.lazy = &lazySizes{ctx: ctx, size: size, loaded: make([]bool, chunks)}
		return v, nil
	}
	if err := v.askSizes(ctx, asks, size); err != nil {
		return nil, fmt.Errorf("video %s: %w", name, err)
	}
	return v, nil
}

// ladderChanges tells of the Periods whose ladder differs, one line each:
// `period "ad" has another video ladder: its renditions of the nearest
// bandwidth stand in (ad-lo for lo, ad-lo for hi)`.
func ladderChanges(remaps []manifest.Remap) []string {
	var out []string
	for i := 0; i < len(remaps); {
		j := i
		var pairs []string
		for ; j < len(remaps) && remaps[j].Period == remaps[i].Period; j++ {
			pairs = append(pairs, remaps[j].To+" for "+remaps[j].From)
		}
		period := fmt.Sprintf("period %d", remaps[i].Period)
		if id := remaps[i].PeriodID; id != "" {
			period = fmt.Sprintf("period %q", id) // a live MPD's Periods are numbered anew as they go
		}
		out = append(out, period+" has another video ladder: its renditions of the nearest bandwidth stand in ("+strings.Join(pairs, ", ")+")")
		i = j
	}
	return out
}
