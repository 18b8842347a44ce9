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
	// Progress is called after each session (done, total).
	Progress func(done, total int)
}

// SimResult is one (trace, algorithm) session.
type SimResult struct {
	Trace  string
	Family string // the trace's family (its folder)
	ABR    string
	Result
}

// Simulate runs every algorithm on every trace; results come in (trace,
// algorithm) order whatever the parallelism.
func Simulate(ctx context.Context, opt SimOptions) ([]SimResult, error) {
	qoe, err := NewQoE(opt.QoE)
	if err != nil {
		return nil, err
	}
	for _, a := range opt.Algorithms {
		if _, err := NewABR(a); err != nil {
			return nil, err
		}
	}
	jobs := opt.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	total := len(opt.Traces) * len(opt.Algorithms)
	out := make([]SimResult, total)
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	done := 0
	for range jobs {
		wg.Go(func() {
			for i := range work {
				t := opt.Traces[i/len(opt.Algorithms)]
				name := opt.Algorithms[i%len(opt.Algorithms)]
				res, err := simulateOne(ctx, opt, t, name, qoe)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("trace %s, %s: %w", t.Name, name, err)
				}
				out[i] = SimResult{Trace: t.Name, Family: t.Family, ABR: name, Result: res}
				done++
				if opt.Progress != nil {
					opt.Progress(done, total)
				}
				mu.Unlock()
			}
		})
	}
	for i := range total {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func simulateOne(ctx context.Context, opt SimOptions, t *Trace, name string, qoe QoEModel) (Result, error) {
	abr, _ := NewABR(name)
	cfg := DefaultConfig()
	var link *TraceLink
	if opt.Pensieve {
		link = NewTraceLink(t, 0.95, 80*time.Millisecond)
		cfg.StartRendition = min(1, len(opt.Video.Bitrates)-1)
		cfg.SleepQuantum = 500 * time.Millisecond
		cfg.SkipFirstQoE = true
		if opt.Video.Chunks > PensieveChunks {
			cfg.Chunks = PensieveChunks
		}
	} else {
		link = NewTraceLink(t, 1, opt.RTT)
	}
	s := &Session{Video: opt.Video, ABR: abr, QoE: qoe, Clock: link, Fetcher: link, Config: cfg, KeepLog: opt.KeepLogs}
	return s.Run(ctx)
}
