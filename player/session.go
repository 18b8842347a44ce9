package player

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Clock is the session's time: the wall clock for play, a virtual clock
// driven by a trace for sim. Times are durations since the session began.
type Clock interface {
	Now() time.Duration
	// Sleep waits d (the player idles while its buffer is full).
	Sleep(ctx context.Context, d time.Duration) error
}

// Request is one segment download, with the player's state at the time
// (which CMCD reports).
type Request struct {
	Chunk     int
	Rendition int // -1 for audio
	URL       string
	// Range is the segment's byte range in URL ("first-last"), "" for the
	// whole resource.
	Range string
	Size  int64 // expected bytes (known to sim; a hint for play)
	// Player state for CMCD: bitrate (kbit/s), buffer, throughput estimate,
	// object duration, the next object's URL and byte range, and whether
	// playback has yet to start.
	Bitrate   float64
	Buffer    time.Duration
	Estimate  float64
	Duration  time.Duration
	NextURL   string
	NextRange string
	Startup   bool
	// Starved: playback stalled since the session's previous request
	// (CMCD bs), which the first request after a stall reports.
	Starved bool
	// Init marks an initialization segment (CMCD ot=i).
	Init bool
	// Abandon, if set, is asked every AbandonEvery of the download (the
	// fetcher fills in all but Progress.Buffer) whether to give it up:
	// on true the fetch stops and returns what came, Download.Abandoned.
	Abandon func(Progress) bool
}

// Download is what a fetch measured, on the session's clock.
type Download struct {
	Bytes     int64
	Sent      time.Duration // request sent
	FirstByte time.Duration
	LastByte  time.Duration
	// Abandoned: Request.Abandon gave the download up at LastByte, with
	// Bytes of it in.
	Abandoned bool
}

// Elapsed is the time from request to last byte.
func (d Download) Elapsed() time.Duration { return d.LastByte - d.Sent }

// Fetcher downloads segments: over HTTP for play, over a trace for sim.
type Fetcher interface {
	Fetch(ctx context.Context, req Request) (Download, error)
}

// Config shapes a session's buffer model.
type Config struct {
	MaxBuffer time.Duration // the loop waits when the buffer is fuller (60 s)
	// StartRendition is the first chunk's rendition; -1 lets the ABR choose.
	StartRendition int
	// SleepQuantum rounds buffer-full waits up (Pensieve: 500 ms); 0 waits exactly.
	SleepQuantum time.Duration
	// SkipFirstQoE leaves the first chunk out of the QoE sum (Pensieve).
	SkipFirstQoE bool
	// Chunks caps how many chunks are played (0: all).
	Chunks int
	// Ready, for a live stream, returns once chunk k of rendition q
	// (audio segment k when q is -1) is published, sleeping on the
	// session's clock; the buffer drains meanwhile. It is asked for the
	// rendition last played before the choice, and again for the one
	// chosen when that differs. nil for VOD.
	Ready func(ctx context.Context, k, q int) error
	// FetchInit fetches each rendition's initialization segment the first
	// time the ABR chooses it, and the sound's before its first segment,
	// as a player must before it can decode them; the time counts toward
	// that chunk's download. play sets it; sim's models leave it out
	// (Pensieve's has no initialization segments).
	FetchInit bool
	// Rejoin, for a live stream, jumps ahead to the live edge from chunk
	// k when the player fell so far behind that chunk k left the
	// stream's time-shift buffer (ErrFellBehind), and returns the media
	// time skipped (Video.Rejoin). The session then plays on from there,
	// as hls.js and dash.js do, rather than fail; it fails after
	// maxRejoins jumps in a row without a chunk played. nil: it fails.
	Rejoin func(ctx context.Context, k int) (time.Duration, error)
	// CatchUp, for a live stream, is the playback rate (above 1, at most
	// MaxCatchUp) at which the session plays while it is further behind
	// the live edge than it joined, after the startup and every stall,
	// as long as the buffer holds more than a chunk (and a second); 0 or
	// 1 plays at normal speed throughout. The media won back is
	// Result.CaughtUp.
	CatchUp float64
	// CatchUpLaw is how the rate follows the lag: CatchUpFixed (or "")
	// plays at CatchUp whenever behind, CatchUpSigmoid scales it with the
	// lag as dash.js does.
	CatchUpLaw string
	// LiveEdge, for a live stream, is where the live edge stands on the
	// session's media timeline (the chunks' Ends) at session time now;
	// with it, each chunk's log gives the playhead's distance from the
	// edge (ChunkLog.Latency). nil for VOD.
	LiveEdge func(now time.Duration) time.Duration
	// OnChunk, if set, sees every chunk as it completes.
	OnChunk func(ChunkLog)
	// Abandon, if set, may give a video segment's download up while it
	// runs and have the chunk fetched at a lower rendition (dash.js's
	// AbandonRequestsRule); nil never abandons, as Pensieve's simulator.
	// The first chunk's is not given up when StartRendition fixes it.
	Abandon Abandoner
	// ServerCap keeps each chunk, with the sound, within the highest
	// bitrate the serving node last suggested, when the Fetcher reads one
	// (a ServerAdvisor: CMSD's mb), as dash.js does with applyMb: the
	// ABR's choice is lowered to the best rendition that fits (the lowest
	// when none does).
	ServerCap bool
}

// DefaultConfig is the buffer model of `play` and of `sim` without -pensieve.
func DefaultConfig() Config { return Config{MaxBuffer: 60 * time.Second, StartRendition: -1} }

// ChunkLog is one row of a session's per-chunk log.
type ChunkLog struct {
	Time         time.Duration // when the chunk's download completed
	Chunk        int
	Rendition    int
	BitrateKbps  float64
	Bytes        int64
	DownloadTime time.Duration
	Estimate     float64 // throughput estimate (kbit/s) after this chunk
	Buffer       time.Duration
	Rebuffer     time.Duration
	QoE          float64 // this chunk's QoE term (0 when left out)
	// Skipped is the media a live session jumped over to the live edge
	// just before this chunk (see Config.Rejoin).
	Skipped time.Duration
	// Behind is how much further behind the live edge than it joined a
	// live session plays once this chunk is in: the startup and the
	// stalls, less what it caught up (Config.CatchUp); since the last
	// jump to the edge, if any.
	Behind time.Duration
	// Latency is how far behind the live edge the playhead stood once
	// this chunk was in (with Config.LiveEdge; 0 otherwise).
	Latency time.Duration
	// Rate is the playback rate the playhead went on at once this chunk
	// was in: above 1 while catching up with the live edge, else 1.
	Rate float64
	// Abandoned is how many downloads of this chunk were given up
	// (Config.Abandon) before the one that played.
	Abandoned int
	// Capped: the serving node's suggested bitrate (Config.ServerCap)
	// lowered this chunk's rendition from the ABR's choice.
	Capped bool
}

// Result summarises a session.
type Result struct {
	Chunks        int
	MeanBitrate   float64 // kbit/s over played chunks
	Rebuffer      time.Duration
	RebufferCount int
	Switches      int
	Startup       time.Duration
	QoE           float64
	PlayTime      time.Duration // media time played
	// StreamEnded: a live stream ended before the session's length, and
	// the session with it.
	StreamEnded bool
	// Rejoins is how often a live session fell behind the stream's
	// time-shift buffer and jumped ahead to the live edge, and Skipped
	// the media time it jumped over (neither played nor stalled on).
	Rejoins int
	Skipped time.Duration
	// CaughtUp is the media time a live session won back on the live
	// edge by playing faster (Config.CatchUp).
	CaughtUp time.Duration
	// Abandoned is how many downloads were given up for a lower
	// rendition (Config.Abandon), and AbandonedBytes what they had
	// brought in, thrown away.
	Abandoned      int
	AbandonedBytes int64
	// Capped is how many chunks the serving node's suggested bitrate
	// (Config.ServerCap) lowered, and ServerCapKbps the last suggestion
	// seen (0: none).
	Capped        int
	ServerCapKbps int64
	Log           []ChunkLog
}

// RebufferRatio is stall time over media time.
func (r Result) RebufferRatio() float64 {
	if r.PlayTime <= 0 {
		return 0
	}
	return r.Rebuffer.Seconds() / r.PlayTime.Seconds()
}

// Session is one playback: the loop choose → download → measure → update
// buffer → repeat, written once for both clocks.
type Session struct {
	Video   *Video
	ABR     ABR
	QoE     QoEModel
	Clock   Clock
	Fetcher Fetcher
	Config  Config
	// KeepLog keeps every ChunkLog in the Result.
	KeepLog bool
}

// Run plays the whole video (or Config.Chunks of it).
func (s *Session) Run(ctx context.Context) (Result, error) {
	v := s.Video
	if v == nil || s.ABR == nil || s.QoE == nil || s.Clock == nil || s.Fetcher == nil {
		return Result{}, errors.New("session: video, ABR, QoE, clock and fetcher are required")
	}
	chunks := v.Chunks
	if s.Config.Chunks > 0 && s.Config.Chunks < chunks {
		chunks = s.Config.Chunks
	}
	wanted := chunks
	st := &State{Video: v, Chunks: chunks, Last: -1, MaxBuffer: s.Config.MaxBuffer, QoE: s.QoE}
	var res Result
	var buffer, lastDone time.Duration
	ph := newPlayhead(v, s.Config.CatchUp, s.Config.CatchUpLaw)
	var bitrateSum float64
	inits := newInitFetcher(s)
	// A live chunk that left the time-shift buffer is played again from
	// the live edge (up to maxRejoins times in a row): its time runs from
	// its first try.
	rejoins, retryFrom := 0, time.Duration(-1)
	var jumped time.Duration // skipped since the last chunk's log
	rejoin := func(k int, err error, began time.Duration) (bool, error) {
		if !errors.Is(err, ErrFellBehind) || s.Config.Rejoin == nil {
			return false, err
		}
		if rejoins == maxRejoins {
			return false, fmt.Errorf("%w, after %d jumps to the live edge in a row: the link cannot fetch a chunk while the stream keeps it", err, rejoins)
		}
		skipped, rerr := s.Config.Rejoin(ctx, k)
		switch {
		case errors.Is(rerr, ErrStreamEnded): // the next try finds the end
		case rerr != nil:
			return false, fmt.Errorf("%w (and no rejoining the live edge: %v)", err, rerr)
		default:
			res.Rejoins++
			res.Skipped += skipped
			jumped += skipped
			ph.behind = 0 // joined afresh
		}
		rejoins++
		retryFrom = began
		return true, nil
	}
	// await waits for chunk k of rendition q of a live stream to be
	// published, and says what comes next.
	await := func(k, q int, began time.Duration) (chunkStep, error) {
		err := s.waitFor(ctx, k, q)
		if s.Video.Chunks < chunks {
			chunks, st.Chunks = s.Video.Chunks, s.Video.Chunks // the stream ended
		}
		if errors.Is(err, ErrStreamEnded) || err == nil && k >= chunks {
			res.StreamEnded = true
			return endSession, nil
		}
		if again, err := rejoin(k, err, began); again {
			return redoChunk, nil
		} else if err != nil {
			return 0, err
		}
		return playChunk, nil
	}
play:
	for k := 0; k < chunks; k++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		// The chunk's time runs from here: a wait for a live segment to
		// be published, initialization segments, failed attempts and
		// their backoff drain the buffer as the download does.
		chunkStart := s.Clock.Now()
		if retryFrom >= 0 {
			chunkStart, retryFrom = retryFrom, -1
		}
		// A live chunk not yet published is waited for before it is
		// chosen, as a player schedules its request: the choice sees
		// the buffer as it is then.
		cur := st.Last
		if cur < 0 {
			cur = min(max(s.Config.StartRendition, 0), len(v.Bitrates)-1)
		}
		next, err := await(k, cur, chunkStart)
		q := cur
		capped := false
		// drained is the buffer left once d has played since the chunk's
		// time began (the playhead itself moves only when it is in).
		drained := func(d time.Duration) time.Duration {
			view := ph
			b, _ := view.play(buffer, d)
			return b
		}
		if err == nil && next == playChunk {
			st.Chunk = k
			st.Buffer = drained(s.Clock.Now() - chunkStart)
			if k > 0 {
				st.Idle = s.Clock.Now() - lastDone
			}
			if q, capped, err = s.choose(st); err == nil && q != cur {
				// A live rendition the player switches to: its playlist
				// may not list the chunk yet.
				next, err = await(k, q, chunkStart)
			}
		}
		switch {
		case err != nil:
			return res, err
		case next == redoChunk:
			k--
			continue
		case next == endSession:
			break play
		}
		chunkDur := v.ChunkDur(k)
		var dl Download
		var req Request
		var abandoned int
		// A download given up is fetched again at the rendition the
		// Abandoner named (lower each time, so at most once a rendition);
		// the time it took stays in the chunk's.
		for {
			req = s.request(st, k, q, chunks)
			if abandoned > 0 {
				req.Buffer = drained(s.Clock.Now() - chunkStart) // CMCD's: what is left of it now
				req.Starved = false                              // the first try reported it
			}
			if err = inits.fetch(ctx, k, q, &req); err != nil {
				return res, err
			}
			var lower int
			// A first chunk whose rendition the config fixes (Pensieve's
			// start at rendition 1) is played at it: giving it up would
			// choose what every session is told, and, its startup unscored
			// there, buy a later start on the trace for nothing.
			if a := s.Config.Abandon; a != nil && q > 0 && (k > 0 || s.Config.StartRendition < 0) {
				sent := s.Clock.Now()
				req.Abandon = func(p Progress) bool {
					p.Buffer = drained(sent - chunkStart + p.Elapsed)
					var ok bool
					lower, ok = a.Abandon(st, p)
					return ok && lower >= 0 && lower < q
				}
			}
			dl, err = s.Fetcher.Fetch(ctx, req)
			req.Starved = false // reported: the sound's initialization segment must not again
			if err != nil || !dl.Abandoned {
				break
			}
			abandoned++
			res.Abandoned++
			res.AbandonedBytes += dl.Bytes
			q = lower
			// A live rendition's playlist may not list the chunk yet.
			if err = s.waitFor(ctx, k, q); err != nil {
				break
			}
		}
		if errors.Is(err, ErrStreamEnded) {
			res.StreamEnded = true
			break
		}
		if err != nil {
			again, err := rejoin(k, err, chunkStart)
			if again {
				k--
				continue
			}
			return res, fmt.Errorf("chunk %d at rendition %d: %w", k+1, q, err)
		}
		elapsed := dl.LastByte - chunkStart
		// Sound follows the video's timeline at its one rendition: what
		// this chunk needs of it, the rest of it after the last.
		from, to := v.AudioAt(k)
		for i := from; i < to && !res.StreamEnded; i++ {
			if err := s.waitFor(ctx, i, -1); errors.Is(err, ErrStreamEnded) {
				res.StreamEnded = true // the sound ends first: the chunk plays without the rest
				break
			} else if again, err := rejoin(k, err, chunkStart); again {
				// The chunk's video is dropped: its sound is gone.
				k--
				continue play
			} else if err != nil {
				return res, err
			}
			if err := inits.fetch(ctx, i, -1, &req); err != nil {
				return res, err
			}
			areq := Request{Chunk: i, Rendition: -1, URL: v.AudioURLs[i], Size: v.AudioSize[i],
				Buffer: buffer, Estimate: st.Estimate(), Duration: v.audioDuration(i), Startup: k == 0}
			if i < len(v.AudioRanges) {
				areq.Range = v.AudioRanges[i]
			}
			adl, err := s.Fetcher.Fetch(ctx, areq)
			if errors.Is(err, ErrStreamEnded) {
				res.StreamEnded = true
				break
			}
			if again, err := rejoin(k, err, chunkStart); again {
				k--
				continue play
			} else if err != nil {
				return res, fmt.Errorf("audio segment %d: %w", i+1, err)
			}
			elapsed = adl.LastByte - chunkStart
		}
		st.addSample(dl)
		if k == 0 {
			res.Startup = elapsed // playback starts once the first segment is in
		}
		var rebuf time.Duration
		buffer, rebuf = ph.arrive(k, buffer, elapsed, chunkDur)
		if rebuf > 0 {
			res.Rebuffer += rebuf
			res.RebufferCount++
		}
		if k > 0 && q != st.Last {
			res.Switches++
		}
		lastDone = s.Clock.Now()
		played := chunkPlayed(v, s.Config, &ph, k, rebuf, buffer, lastDone)
		term := chunkTerm(s.QoE, s.Config, v, k, q, st.Last, played, res.Startup)
		res.QoE += term
		bitrateSum += v.Bitrates[q]
		st.Last = q
		res.Chunks++
		if capped {
			res.Capped++
		}
		res.PlayTime += chunkDur
		rejoins = 0
		st.Stalled = rebuf > 0
		log := ChunkLog{Time: lastDone, Chunk: k + 1, Rendition: q, BitrateKbps: v.Bitrates[q], Bytes: dl.Bytes,
			DownloadTime: elapsed, Estimate: st.Estimate(), Buffer: buffer, Rebuffer: rebuf, QoE: term, Skipped: jumped, Behind: ph.behind,
			Latency: played.Latency, Rate: played.Rate, Abandoned: abandoned, Capped: capped}
		jumped = 0
		// A full buffer makes the loop wait before the next request.
		if s.Config.MaxBuffer > 0 && buffer > s.Config.MaxBuffer {
			wait := buffer - s.Config.MaxBuffer
			if q := s.Config.SleepQuantum; q > 0 {
				wait = (wait + q - 1) / q * q
			}
			if k+1 < chunks {
				if err := s.Clock.Sleep(ctx, wait); err != nil {
					return res, err
				}
				buffer, _ = ph.play(buffer, wait)
			}
		}
		res.CaughtUp = ph.caughtUp
		if s.KeepLog {
			res.Log = append(res.Log, log)
		}
		if s.Config.OnChunk != nil {
			s.Config.OnChunk(log)
		}
		if res.StreamEnded {
			break
		}
	}
	if res.Chunks > 0 {
		res.MeanBitrate = bitrateSum / float64(res.Chunks)
	}
	if a, ok := s.Fetcher.(ServerAdvisor); ok {
		res.ServerCapKbps = a.MaxBitrateKbps()
	}
	res.StreamEnded = res.StreamEnded || chunks < wanted
	return res, nil
}

// request is the download of chunk k (of chunks) at rendition q, with
// the player's state in st for CMCD.
func (s *Session) request(st *State, k, q, chunks int) Request {
	v := s.Video
	req := Request{Chunk: k, Rendition: q, Size: v.Size(k, q), Bitrate: v.Bitrates[q], Buffer: st.Buffer,
		Estimate: st.Estimate(), Duration: v.ChunkDur(k), Startup: k == 0, Starved: st.Stalled}
	if v.URLs != nil {
		req.URL = v.URLs[k][q]
		if k+1 < chunks {
			req.NextURL = v.URLs[k+1][q]
		}
	}
	if v.Ranges != nil {
		req.Range = v.Ranges[k][q]
		if k+1 < chunks {
			req.NextRange = v.Ranges[k+1][q]
		}
	}
	return req
}

// choose is the rendition of chunk st.Chunk: the start rendition's for the
// first, if the config names one, else the ABR's; then kept within the
// serving node's suggestion (Config.ServerCap), capped saying it lowered
// the choice.
func (s *Session) choose(st *State) (q int, capped bool, err error) {
	n := len(s.Video.Bitrates)
	if st.Chunk == 0 && s.Config.StartRendition >= 0 {
		q = min(s.Config.StartRendition, n-1)
	} else if q = s.ABR.Choose(st); q < 0 || q >= n {
		return 0, false, fmt.Errorf("session: %s chose rendition %d of %d", s.ABR.Name(), q, n)
	}
	if a, ok := s.Fetcher.(ServerAdvisor); ok && s.Config.ServerCap {
		if limit := a.MaxBitrateKbps(); limit > 0 {
			within := highestBelow(s.Video.Bitrates, float64(limit)-s.Video.AudioKbps)
			if within < q {
				return within, true, nil
			}
		}
	}
	return q, false, nil
}

// ServerAdvisor is a Fetcher that reads the bitrate the serving node
// suggests (CMSD-Dynamic's mb).
type ServerAdvisor interface {
	// MaxBitrateKbps is the last suggestion, in kbit/s, for video and
	// sound together; 0 when none was made.
	MaxBitrateKbps() int64
}

// waitFor sleeps until chunk k of rendition q (audio segment k when q is
// -1) of a live stream is published.
func (s *Session) waitFor(ctx context.Context, k, q int) error {
	if s.Config.Ready == nil {
		return nil
	}
	return s.Config.Ready(ctx, k, q)
}

// maxRejoins is how often in a row a live session jumps to the live edge
// without playing a chunk before it gives up: a link too slow to fetch a
// chunk while the stream keeps it would jump for ever.
const maxRejoins = 3

// chunkStep is what a session does once a live chunk's wait is over.
type chunkStep int

const (
	playChunk  chunkStep = iota
	redoChunk            // from the live edge, after a rejoin
	endSession           // the stream ended before the chunk
)

// initFetcher fetches initialization segments once each, for a session
// with Config.FetchInit.
type initFetcher struct {
	s    *Session
	have map[[2]string]bool // URL and range of those already in
}

func newInitFetcher(s *Session) *initFetcher {
	return &initFetcher{s: s, have: map[[2]string]bool{}}
}

// fetch gets the initialization segment that chunk k of rendition q needs
// (q -1: audio segment k) unless it is already in, with the state of seg,
// the media request it comes before. An initialization segment fetched
// reports seg's stall (CMCD bs) in its place, as the first request after it.
func (f *initFetcher) fetch(ctx context.Context, k, q int, seg *Request) error {
	if !f.s.Config.FetchInit {
		return nil
	}
	u, rng := f.s.Video.InitFor(k, q)
	if u == "" || f.have[[2]string{u, rng}] {
		return nil // fetched, or none (MPEG-TS, self-initializing segments)
	}
	f.have[[2]string{u, rng}] = true
	req := Request{Chunk: k, Rendition: q, URL: u, Range: rng, Bitrate: seg.Bitrate, Buffer: seg.Buffer,
		Estimate: seg.Estimate, Startup: seg.Startup, Starved: seg.Starved, Init: true}
	seg.Starved = false
	what := fmt.Sprintf("rendition %d", q)
	if q < 0 {
		req.Bitrate, what = 0, "audio"
	}
	if _, err := f.s.Fetcher.Fetch(ctx, req); err != nil {
		return fmt.Errorf("initialization segment of %s: %w", what, err)
	}
	return nil
}
