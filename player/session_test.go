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
	now  time.Duration
	got  []string
	fail map[string]bool
	cmcd []string
}

func (f *stepFetcher) Now() time.Duration { return f.now }

func (f *stepFetcher) Sleep(_ context.Context, d time.Duration) error { f.now += d; return nil }

func (f *stepFetcher) Fetch(_ context.Context, req Request) (Download, error) {
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
