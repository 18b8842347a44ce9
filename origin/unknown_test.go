package origin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/media/store"
)

// TestUnknownNamesBudget: within the budget every unknown name may be
// looked up; past it the listing decides, read once per interval for all;
// a name found absent is not asked about again within the interval, and
// a name loaded since is forgotten as absent.
func TestUnknownNamesBudget(t *testing.T) {
	u := newUnknownNames(time.Hour)
	var lists atomic.Int64
	library := []string{"real-b", "real-a"}
	list := func(context.Context) ([]string, error) {
		lists.Add(1)
		return append([]string(nil), library...), nil
	}
	ctx := context.Background()
	for i := range lookupBurst {
		if err := u.admit(ctx, fmt.Sprintf("made-up-%d", i), list); err != nil {
			t.Fatalf("lookup %d within the budget: %v", i, err)
		}
	}
	if lists.Load() != 0 {
		t.Errorf("the listing was read within the budget")
	}
	// The budget is spent (20 a second come back: the names below come
	// in far less than a second).
	for i := range 100 {
		err := u.admit(ctx, fmt.Sprintf("past-budget-%d", i), list)
		if !errors.Is(err, media.ErrNoAsset) {
			t.Fatalf("unlisted name %d past the budget: %v, want no such asset", i, err)
		}
	}
	for _, name := range []string{"real-a", "real-b"} {
		if err := u.admit(ctx, name, list); err != nil {
			t.Errorf("listed name %s past the budget: %v", name, err)
		}
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("listing read %d times for one interval, want 1", n)
	}
	if n := u.spared.Load(); n != 100 {
		t.Errorf("%d lookups spared, want 100", n)
	}
	// Found absent: not asked again, whatever the budget.
	u2 := newUnknownNames(time.Hour)
	u2.noteAbsent("gone")
	if err := u2.admit(ctx, "gone", list); !errors.Is(err, media.ErrNoAsset) {
		t.Errorf("a name found absent: %v, want no such asset from memory", err)
	}
	u2.forget("gone")
	if err := u2.admit(ctx, "gone", list); err != nil {
		t.Errorf("a name loaded since: %v", err)
	}
	// An empty library's listing is read once per interval too.
	u4 := newUnknownNames(time.Hour)
	u4.budget.SetBurst(0)
	var emptyLists atomic.Int64
	empty := func(context.Context) ([]string, error) { emptyLists.Add(1); return nil, nil }
	for range 10 {
		if err := u4.admit(ctx, "any", empty); !errors.Is(err, media.ErrNoAsset) {
			t.Fatalf("empty library: %v, want no such asset", err)
		}
		u4.forget("any") // not from the absent memo: from the listing
	}
	if n := emptyLists.Load(); n != 1 {
		t.Errorf("an empty library's listing read %d times, want 1", n)
	}
	// A listing that cannot be read is the store being unavailable.
	u3 := newUnknownNames(time.Hour)
	u3.budget.SetBurst(0)
	down := func(context.Context) ([]string, error) { return nil, fmt.Errorf("list: %w", store.ErrUnavailable) }
	if err := u3.admit(ctx, "any", down); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("listing down: %v, want unavailable", err)
	}
}

// TestS3UnknownNamesSpareTheStore: every request for a name not in an
// object-store library used to cost a request to the store (a GET of its
// pointer), so a flood of made-up names, each new and so past every
// cache, reached the store at full rate. Now those lookups are bounded by
// a budget and the listing, and a real asset is still found during the
// flood.
func TestS3UnknownNamesSpareTheStore(t *testing.T) {
	s3lib, srv := s3Library(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var pointerGets, lists atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Has("list-type"):
			lists.Add(1)
		case r.Method == http.MethodGet && !strings.Contains(r.URL.Path, "/.versions/"):
			pointerGets.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	counted, err := store.Open(context.Background(), s3lib.String(), store.S3Options{Endpoint: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, ts := start(t, mediatest.Library(t), func(c *Config) { c.Store = counted; c.CheckEvery = time.Second })

	const flood = 600
	var next atomic.Int64
	var wrong atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1); i <= flood; i = next.Add(1) {
				resp, err := http.Get(fmt.Sprintf("%s/vod/made-up-%d/manifest.mpd", ts.URL, i))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					wrong.Add(1)
				}
			}
		})
	}
	// A real asset, never asked for on this origin before, in the middle
	// of the flood.
	time.Sleep(50 * time.Millisecond)
	if resp, _ := get(t, ts.URL+"/vod/"+mediatest.AssetName+"/manifest.mpd"); resp.StatusCode != http.StatusOK {
		t.Errorf("the real asset during the flood: %s", resp.Status)
	}
	wg.Wait()
	took := time.Since(began)
	if wrong.Load() > 0 {
		t.Errorf("%d of %d made-up names not answered 404", wrong.Load(), flood)
	}
	// The budget's burst and rate over the flood's time, the real
	// asset's pointer, and slack for the clock.
	allowed := int64(lookupBurst+lookupRate*took.Seconds()) + 1 + 5
	if n := pointerGets.Load(); n > allowed {
		t.Errorf("%d made-up names cost %d store lookups in %v, want at most %d", flood, n, took.Round(time.Millisecond), allowed)
	}
	if n := lists.Load(); n > int64(took/time.Second)+2 {
		t.Errorf("the listing was read %d times in %v", n, took.Round(time.Millisecond))
	}
	t.Logf("%d made-up names in %v: %d pointer lookups, %d listings", flood, took.Round(time.Millisecond), pointerGets.Load(), lists.Load())
}
