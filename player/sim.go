package player

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// SimOptions configure a sweep of simulated sessions.
type SimOptions struct {
	Video      *Video
	Traces     []*Trace
	Algorithms []string
	QoE        string
	// Pensieve applies Pensieve's simulator assumptions: 95% payload, 80 ms
	// RTT per chunk, 60 s buffer cap with 500 ms waits, the trace from its
	// second row (looping), start at rendition 1, the first chunk left out
	// of the QoE sum, and the video's first 48 chunks.
	Pensieve bool
	RTT      time.Duration // without Pensieve
	Jobs     int           // parallel sessions; GOMAXPROCS when zero
	KeepLogs bool
	// OptimalGrid is the buffer resolution of the "optimal" algorithm's
	// dynamic program (DefaultOptimalGrid when zero).
	OptimalGrid time.Duration
	// Progress is called after each session (done, total).
	Progress func(done, total int)
	// Policies are learned policies to run besides the named algorithms,
	// by the names Algorithms uses for them.
	Policies map[string]*PolicyModel
	// Live plays the video as a live stream joined this far behind its
	// live edge (0: VOD): chunk k can be fetched once its end is
	// published, at Ends[k] - Live on the session's clock, so the buffer
	// never holds more than the distance to the edge, and every stall
	// adds to it (SimResult.Latency). At least one chunk.
	Live time.Duration
	// CatchUp, live, is the playback rate at which sessions catch up
	// with the distance they joined at after the startup and each stall
	// (Config.CatchUp); the optimum plays by the same rule.
	CatchUp float64
	// CatchUpLaw is how the rate follows the lag (Config.CatchUpLaw).
	CatchUpLaw string
	// Abandon names the rule (NewAbandoner) by which every algorithm's
	// sessions may give a download up for a lower rendition; "" never
	// does. The optimum never abandons: knowing the trace, it has no
	// download to regret.
	Abandon string
}

// newABR makes the named algorithm: one of opt.Policies or a built-in.
func (opt SimOptions) newABR(name string) (ABR, error) {
	if m, ok := opt.Policies[name]; ok {
		return &Learned{Model: m, name: name}, nil
	}
	return NewABR(name)
}

// abandonRule is the abandonment rule algorithm name's sessions run
// with: opt.Abandon, but none for the optimum, which knowing the trace
// has no download to regret.
func (opt SimOptions) abandonRule(name string) string {
	if name == Optimal {
		return ""
	}
	return opt.Abandon
}

// SimResult is one (trace, algorithm) session.
type SimResult struct {
	Trace  string
	Family string // the trace's family (its folder)
	ABR    string
	// Latency is, live, how far behind the live edge the session ended:
	// the join's distance, plus the startup and every stall, less what
	// it caught up (0 for VOD).
	Latency time.Duration
	// AbandonRule is the abandonment rule the session ran with
	// (SimOptions.Abandon; "" for none, and for the optimum).
	AbandonRule string
	Result
}

// Simulate runs every algorithm on every trace; results come in (trace,
// algorithm) order whatever the parallelism.
func Simulate(ctx context.Context, opt SimOptions) ([]SimResult, error) {
	qoe, err := NewQoE(opt.QoE)
	if err != nil {
		return nil, err
	}
	if err := CheckSimCatchUp(opt.Live, opt.CatchUp); err != nil {
		return nil, err
	}
	if err := CheckCatchUpLaw(opt.CatchUpLaw); err != nil {
		return nil, err
	}
	if a, err := NewAbandoner(opt.Abandon); err != nil {
		return nil, err
	} else if a == nil {
		opt.Abandon = "" // "none"
	}
	if opt.Live != 0 {
		if opt.Live < opt.Video.ChunkDuration || opt.Live > MaxLiveDelay {
			return nil, fmt.Errorf("live delay %v: want one chunk (%v) to %v behind the live edge", opt.Live, opt.Video.ChunkDuration, MaxLiveDelay)
		}
		// The ABRs see it as play's would: the buffer can hold no more.
		live := *opt.Video
		live.LiveDelay = opt.Live
		opt.Video = &live
	}
	for _, a := range opt.Algorithms {
		if a == Optimal {
			continue
		}
		if _, err := opt.newABR(a); err != nil {
			return nil, err
		}
	}
	out := make([]SimResult, len(opt.Traces)*len(opt.Algorithms))
	err = forEach(ctx, len(out), opt.Jobs, opt.Progress, func(i int) error {
		t := opt.Traces[i/len(opt.Algorithms)]
		name := opt.Algorithms[i%len(opt.Algorithms)]
		res, err := simulateOne(ctx, opt, t, name, qoe)
		out[i] = SimResult{Trace: t.Name, Family: t.Family, ABR: name, AbandonRule: opt.abandonRule(name), Result: res}
		if opt.Live > 0 {
			out[i].Latency = opt.Live + res.Startup + res.Rebuffer - res.CaughtUp
		}
		if err != nil {
			return fmt.Errorf("trace %s, %s: %w", t.Name, name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// forEach runs fn for 0…n-1 on jobs goroutines (GOMAXPROCS when zero),
// reporting progress (done, n) after each, one report at a time. It
// returns the first error fn returned, else the context's: no more work
// starts once the context is done.
func forEach(ctx context.Context, n, jobs int, progress func(done, total int), fn func(i int) error) error {
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	done := 0
	for range jobs {
		wg.Go(func() {
			for i := range work {
				err := fn(i)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				done++
				if progress != nil {
					progress(done, n)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func simulateOne(ctx context.Context, opt SimOptions, t *Trace, name string, qoe QoEModel) (Result, error) {
	opt.Abandon = opt.abandonRule(name)
	cfg, link := simSetup(opt, t)
	var abr ABR
	if name == Optimal {
		seq, err := optimalSequence(ctx, opt, t, qoe)
		if err != nil {
			return Result{}, err
		}
		abr = &replay{seq: seq}
	} else {
		abr, _ = opt.newABR(name)
	}
	s := &Session{Video: opt.Video, ABR: abr, QoE: qoe, Clock: link, Fetcher: link, Config: cfg, KeepLog: opt.KeepLogs}
	return s.Run(ctx)
}

// PensieveRTT is the round trip Pensieve's simulator adds to every
// download (SimOptions.Pensieve).
const PensieveRTT = 80 * time.Millisecond

// MaxLiveDelay bounds how far behind a live edge a session joins, played
// (play -live-delay, the player page's livedelay) or simulated
// (SimOptions.Live): an hour.
const MaxLiveDelay = time.Hour

// simSetup is a simulated session's buffer model and link.
func simSetup(opt SimOptions, t *Trace) (Config, *TraceLink) {
	cfg := DefaultConfig()
	cfg.Abandon, _ = NewAbandoner(opt.Abandon) // checked by Simulate
	link := NewTraceLink(t, 1, opt.RTT)
	if opt.Pensieve {
		cfg.StartRendition = min(1, len(opt.Video.Bitrates)-1)
		cfg.SleepQuantum = 500 * time.Millisecond
		cfg.SkipFirstQoE = true
		if opt.Video.Chunks > PensieveChunks {
			cfg.Chunks = PensieveChunks
		}
		link = NewTraceLink(t, 0.95, PensieveRTT)
	}
	if opt.Video.LiveDelay > 0 {
		cfg.Ready = func(ctx context.Context, k, q int) error { return awaitSimPublished(ctx, link, opt.Video, k, q < 0) }
		cfg.CatchUp, cfg.CatchUpLaw = opt.CatchUp, opt.CatchUpLaw
		// Media is published up to the delay ahead of the session's clock.
		cfg.LiveEdge = func(now time.Duration) time.Duration { return now + opt.Video.LiveDelay }
	}
	return cfg, link
}

// awaitSimPublished waits on link until chunk k (audio segment k) of v,
// simulated live and joined v.LiveDelay behind the edge at time 0, is
// published: at its end less that delay. It returns at once for VOD.
func awaitSimPublished(ctx context.Context, link *TraceLink, v *Video, k int, audio bool) error {
	if v.LiveDelay <= 0 {
		return nil
	}
	if wait := v.endOf(k, audio) - v.LiveDelay - link.Now(); wait > 0 {
		return link.Sleep(ctx, wait)
	}
	return nil
}

// optimalSequence plans the optimum on trace t, with every other
// algorithm's choices on it as incumbents.
func optimalSequence(ctx context.Context, opt SimOptions, t *Trace, qoe QoEModel) ([]int, error) {
	var incumbents [][]int
	inner := opt
	inner.KeepLogs = true
	for _, a := range Algorithms() {
		res, err := simulateOne(ctx, inner, t, a, qoe)
		if err != nil {
			return nil, err
		}
		seq := make([]int, len(res.Log))
		for i, l := range res.Log {
			seq[i] = l.Rendition
		}
		incumbents = append(incumbents, seq)
	}
	cfg, link := simSetup(opt, t)
	seq, _, err := planOptimal(ctx, newOptModel(opt.Video, qoe, cfg), *link, opt.OptimalGrid, incumbents)
	return seq, err
}

// newOptModel steps sessions of v under cfg, over as many chunks as
// Session.Run plays.
func newOptModel(v *Video, qoe QoEModel, cfg Config) *optModel {
	chunks := v.Chunks
	if cfg.Chunks > 0 && cfg.Chunks < chunks {
		chunks = cfg.Chunks
	}
	return &optModel{video: v, qoe: qoe, cfg: cfg, chunks: chunks}
}
