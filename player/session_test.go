package player

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// stepFetcher answers every request in 100 ms of virtual time and records
// what was asked, failing the URLs in fail.
type stepFetcher struct {
	now    time.Duration
	got    []string
	fail   map[string]bool
	cmcd   []string
	sentAt []time.Duration
}

func (f *stepFetcher) Now() time.Duration { return f.now }

func (f *stepFetcher) Sleep(_ context.Context, d time.Duration) error { f.now += d; return nil }

func (f *stepFetcher) Fetch(_ context.Context, req Request) (Download, error) {
	f.sentAt = append(f.sentAt, f.now)
	name := req.URL
	if req.Range != "" {
		name += "@" + req.Range
	}
	f.got = append(f.got, name)
	f.cmcd = append(f.cmcd, (&HTTPFetcher{}).cmcd(req))
	if f.fail[req.URL] {
		return Download{}, errors.New("404 Not Found")
	}
	sent := f.now
	f.now += 100 * time.Millisecond
	return Download{Bytes: 1000, Sent: sent, FirstByte: sent, LastByte: f.now}, nil
}

// scripted chooses the renditions it is given, in turn.
type scripted []int

func (s scripted) Name() string         { return "scripted" }
func (s scripted) Choose(st *State) int { return s[st.Chunk] }

// TestSessionFetchesInitializationSegments: with FetchInit, each
// rendition's initialization segment comes once, before its first segment
// (a switch back does not fetch it again), the sound's before its first,
// byte ranges kept, and their time counts toward the chunk; a later
// Period's are fetched where it begins; a missing one fails the session,
// naming it. Without FetchInit none is fetched.
func TestSessionFetchesInitializationSegments(t *testing.T) {
	v := &Video{ChunkDuration: 2 * time.Second, Bitrates: []float64{300, 750}, Chunks: 4,
		InitURLs: []string{"v0/init.mp4", "v1/init.mp4"}, InitRanges: []string{"0-99", ""},
		AudioInit: "a/init.mp4", AudioURLs: []string{"a/1", "a/2", "a/3", "a/4"}, AudioSize: make([]int64, 4)}
	for k := range v.Chunks {
		v.Sizes = append(v.Sizes, []int64{1000, 2000})
		v.URLs = append(v.URLs, []string{"v0/" + string(rune('1'+k)), "v1/" + string(rune('1'+k))})
	}
	q, _ := NewQoE("lin")
	run := func(fetchInit bool, fail ...string) (*stepFetcher, Result, error) {
		f := &stepFetcher{fail: map[string]bool{}}
		for _, u := range fail {
			f.fail[u] = true
		}
		cfg := DefaultConfig()
		cfg.FetchInit = fetchInit
		s := &Session{Video: v, ABR: scripted{0, 1, 0, 1}, QoE: q, Clock: f, Fetcher: f, Config: cfg}
		r, err := s.Run(context.Background())
		return f, r, err
	}
	f, r, err := run(true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"v0/init.mp4@0-99", "v0/1", "a/init.mp4", "a/1", "v1/init.mp4", "v1/2", "a/2", "v0/3", "a/3", "v1/4", "a/4"}
	if !slices.Equal(f.got, want) {
		t.Errorf("requests %q,\nwant %q", f.got, want)
	}
	if r.Startup != 400*time.Millisecond {
		t.Errorf("startup %v, want 400ms (two initialization segments and two segments)", r.Startup)
	}
	for i, c := range f.cmcd {
		if isInit := strings.Contains(f.got[i], "init"); isInit != strings.Contains(c, "ot=i") {
			t.Errorf("%s: CMCD %q", f.got[i], c)
		}
	}

	f, _, err = run(false)
	if err != nil || slices.ContainsFunc(f.got, func(u string) bool { return strings.Contains(u, "init") }) {
		t.Errorf("without FetchInit: %v, requests %q", err, f.got)
	}

	// A later Period from chunk 3 (audio segment 3) on, with its own
	// initialization segments: each is fetched when first needed.
	v.noteInit(2, 0, "p2/v0/init.mp4", "")
	v.noteInit(2, 1, "p2/v1/init.mp4", "0-49")
	v.noteInit(2, -1, "p2/a/init.mp4", "")
	f, _, err = run(true)
	want = []string{"v0/init.mp4@0-99", "v0/1", "a/init.mp4", "a/1", "v1/init.mp4", "v1/2", "a/2",
		"p2/v0/init.mp4", "v0/3", "p2/a/init.mp4", "a/3", "p2/v1/init.mp4@0-49", "v1/4", "a/4"}
	if err != nil || !slices.Equal(f.got, want) {
		t.Errorf("two periods: %v, requests %q,\nwant %q", err, f.got, want)
	}

	_, _, err = run(true, "v1/init.mp4")
	if err == nil || !strings.Contains(err.Error(), "initialization segment of rendition 1") {
		t.Errorf("missing initialization segment: %v", err)
	}
	_, _, err = run(true, "a/init.mp4")
	if err == nil || !strings.Contains(err.Error(), "initialization segment of audio") {
		t.Errorf("missing audio initialization segment: %v", err)
	}
}

// watching records the buffer each choice saw, and chooses rendition 0.
type watching struct{ seen, idle []time.Duration }

func (w *watching) Name() string { return "watching" }
func (w *watching) Choose(st *State) int {
	w.seen, w.idle = append(w.seen, st.Buffer), append(w.idle, st.Idle)
	return 0
}

// TestSessionWaitsForLiveSegments: a live chunk is asked for when it is
// published, not before; the choice sees the buffer drained by the wait,
// and a wait within the buffer is no stall.
func TestSessionWaitsForLiveSegments(t *testing.T) {
	v := &Video{ChunkDuration: 2 * time.Second, Bitrates: []float64{300}, Chunks: 4}
	for k := range v.Chunks {
		v.Sizes = append(v.Sizes, []int64{1000})
		v.URLs = append(v.URLs, []string{"v/" + string(rune('1'+k))})
	}
	f := &stepFetcher{}
	published := func(k int) time.Duration { return time.Second + time.Duration(k)*2*time.Second }
	cfg := DefaultConfig()
	cfg.Ready = func(ctx context.Context, k, _ int) error { return f.Sleep(ctx, max(0, published(k)-f.now)) }
	q, _ := NewQoE("lin")
	abr := &watching{}
	r, err := (&Session{Video: v, ABR: abr, QoE: q, Clock: f, Fetcher: f, Config: cfg}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k, at := range f.sentAt {
		if at != published(k) {
			t.Errorf("chunk %d asked for at %v, published at %v", k+1, at, published(k))
		}
	}
	// Chunk 1 comes at 1.1 s with 2 s in it; chunk 2 is published at 3 s:
	// 1.9 s later, 0.1 s of buffer left when it is chosen.
	want := []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	if !slices.Equal(abr.seen, want) || r.Rebuffer != 0 || r.Startup != 1100*time.Millisecond {
		t.Errorf("buffers seen %v, stalls %v, startup %v; want %v, none, 1.1s", abr.seen, r.Rebuffer, r.Startup, want)
	}
	// The 1.9 s waited for each chunk after the first is idle time (what
	// BOLA-E's placeholder buffer counts).
	if want := []time.Duration{0, 1900 * time.Millisecond, 1900 * time.Millisecond, 1900 * time.Millisecond}; !slices.Equal(abr.idle, want) {
		t.Errorf("idle times seen %v, want %v", abr.idle, want)
	}
}

// retryingFetcher spends a second on a failed attempt before each
// successful one, as HTTPFetcher's retries and backoff do.
type retryingFetcher struct{ *stepFetcher }

func (f retryingFetcher) Fetch(ctx context.Context, req Request) (Download, error) {
	f.now += time.Second
	return f.stepFetcher.Fetch(ctx, req)
}

// TestSessionCountsRetriesAsDownloadTime: the time a segment's failed
// attempts took drains the buffer as its download does (it was measured
// from the last attempt alone).
func TestSessionCountsRetriesAsDownloadTime(t *testing.T) {
	v := &Video{ChunkDuration: 2 * time.Second, Bitrates: []float64{300}, Chunks: 2, Sizes: [][]int64{{1000}, {1000}}}
	f := retryingFetcher{&stepFetcher{}}
	q, _ := NewQoE("lin")
	r, err := (&Session{Video: v, ABR: scripted{0, 0}, QoE: q, Clock: f, Fetcher: f, Config: DefaultConfig()}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Startup != 1100*time.Millisecond {
		t.Errorf("startup %v, want 1.1s (a failed attempt of 1 s, then 0.1 s)", r.Startup)
	}
}

// TestSessionAsksTheChosenRenditionReady: a live chunk is waited for at
// the rendition last played before the choice, and again at the one
// chosen when the player switches (whose HLS playlist may not list it
// yet); a stream that ends while it waits ends the session there.
func TestSessionAsksTheChosenRenditionReady(t *testing.T) {
	v := &Video{ChunkDuration: 2 * time.Second, Bitrates: []float64{300, 750}, Chunks: 4}
	for range v.Chunks {
		v.Sizes = append(v.Sizes, []int64{1000, 2000})
	}
	var asked [][2]int
	cfg := DefaultConfig()
	cfg.Ready = func(_ context.Context, k, q int) error {
		asked = append(asked, [2]int{k, q})
		if k == 3 && q == 0 {
			return ErrStreamEnded // the lower rendition's playlist says the stream is over
		}
		return nil
	}
	f := &stepFetcher{}
	q, _ := NewQoE("lin")
	r, err := (&Session{Video: v, ABR: scripted{0, 1, 0, 0}, QoE: q, Clock: f, Fetcher: f, Config: cfg}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := [][2]int{{0, 0}, {1, 0}, {1, 1}, {2, 1}, {2, 0}, {3, 0}}; !slices.Equal(asked, want) || r.Chunks != 3 || !r.StreamEnded {
		t.Errorf("asked ready %v, played %d chunks (ended %v); want %v, 3, ended", asked, r.Chunks, r.StreamEnded, want)
	}
}

// slowFetcher is a stepFetcher whose downloads of the URLs in slow take
// that long.
type slowFetcher struct {
	stepFetcher
	slow map[string]time.Duration
}

func (f *slowFetcher) Fetch(ctx context.Context, req Request) (Download, error) {
	dl, err := f.stepFetcher.Fetch(ctx, req)
	if d, ok := f.slow[req.URL]; ok && err == nil {
		f.now += d
		dl.LastByte = f.now
	}
	return dl, err
}

// TestSessionReportsStallsInCMCD: the first request after playback
// stalled carries CMCD's bs (CTA-5004: the buffer ran dry since the
// previous request), an initialization segment in its media segment's
// place, and no request after it does, until the next stall.
func TestSessionReportsStallsInCMCD(t *testing.T) {
	v := &Video{ChunkDuration: time.Second, Bitrates: []float64{300, 750}, Chunks: 6, InitURLs: []string{"v0/init.mp4", "v1/init.mp4"},
		AudioInit: "a/init.mp4", AudioSize: make([]int64, 6)}
	for k := range v.Chunks {
		v.Sizes = append(v.Sizes, []int64{1000, 2000})
		v.URLs = append(v.URLs, []string{"v0/" + string(rune('1'+k)), "v1/" + string(rune('1'+k))})
		v.AudioURLs = append(v.AudioURLs, "a/"+string(rune('1'+k)))
	}
	// The sound's later Period from chunk 6 on: its initialization
	// segment follows chunk 6's video, which reports the stall before it.
	v.noteInit(5, -1, "p2/a/init.mp4", "")
	q, _ := NewQoE("lin")
	cfg := DefaultConfig()
	cfg.FetchInit = true
	// Chunk 2 takes 3 s with about a second buffered: a stall, reported
	// by chunk 3's first request, the new rendition's initialization
	// segment. Chunk 5 stalls too; chunk 6 reports it (and not the
	// sound's initialization segment after it).
	f := &slowFetcher{stepFetcher: stepFetcher{fail: map[string]bool{}}, slow: map[string]time.Duration{"v0/2": 3 * time.Second, "v1/5": 3 * time.Second}}
	s := &Session{Video: v, ABR: scripted{0, 0, 1, 1, 1, 1}, QoE: q, Clock: f, Fetcher: f, Config: cfg}
	r, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.RebufferCount != 2 {
		t.Fatalf("%d stalls, want 2", r.RebufferCount)
	}
	var starved []string
	for i, c := range f.cmcd {
		if slices.Contains(strings.Split(c, ","), "bs") {
			starved = append(starved, f.got[i])
		}
	}
	if want := []string{"v1/init.mp4", "v1/6"}; !slices.Equal(starved, want) {
		t.Errorf("bs sent with %q, want %q (requests %q)", starved, want, f.got)
	}
	if !strings.Contains(f.cmcd[0], "st=v") {
		t.Errorf("CMCD %q lacks st=v", f.cmcd[0])
	}
	if c, want := (&HTTPFetcher{Format: "h", SessionID: "s"}).cmcd(Request{}), `ot=v,sf=h,sid="s",st=v`; !strings.HasSuffix(c, want) {
		t.Errorf("CMCD %q does not end %q (keys in order, the format among them)", c, want)
	}
	if c := (&HTTPFetcher{Live: true}).cmcd(Request{}); !strings.Contains(c, "st=l") {
		t.Errorf("a live stream's CMCD %q lacks st=l", c)
	}
}
