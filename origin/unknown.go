package origin

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
)

// An object store is asked about a name the origin has not loaded (a
// GET of its pointer object) before the origin can answer 404. A flood of
// made-up names, each new (so no cache on the way keeps its 404), would
// become as many store requests: paid for on a public cloud, and throttled
// there (S3 answers 503 SlowDown past a few thousand a second per prefix)
// for the real viewers' segments too. unknownNames keeps that cost bounded
// whatever the request rate:
//
//   - a name found absent is believed absent for the catalogue's check
//     interval, the time a new build may take to show anyway;
//   - lookups of names not known to exist come out of a budget
//     (lookupRate a second, lookupBurst at once), which ordinary traffic
//     never empties, so a name published a moment ago on another origin
//     is found at once;
//   - past the budget, the library's listing (read again at most once
//     per check interval, by one request for all) decides: a listed name
//     is looked up, any other is answered 404 from memory.
type unknownNames struct {
	every  time.Duration
	budget *rate.Limiter
	spared atomic.Int64 // 404s answered without asking the store

	listing singleflight.Group // one read of the listing for all waiting requests

	mu       sync.Mutex
	absent   map[string]time.Time // name -> when it was found absent
	listed   []string             // sorted, from the listing of listedAt
	listedAt time.Time
}

// Budget of lookups for names not known to exist, and the bound on the
// names remembered as absent (past it they are forgotten all at once: a
// flood of unique names gains nothing from them, the budget and the
// listing hold it).
const (
	lookupRate  = 20
	lookupBurst = 50
	maxAbsent   = 4096
)

func newUnknownNames(every time.Duration) *unknownNames {
	return &unknownNames{every: every, budget: rate.NewLimiter(lookupRate, lookupBurst), absent: map[string]time.Time{}}
}

// admit says whether name, which the catalogue has not loaded, may be
// looked up in the store: nil, or an error wrapping media.ErrNoAsset (no
// such asset, known without asking) or store.ErrUnavailable (the listing
// could not be read). list reads the library's names.
func (u *unknownNames) admit(ctx context.Context, name string, list func(context.Context) ([]string, error)) error {
	now := time.Now()
	u.mu.Lock()
	if at, ok := u.absent[name]; ok && now.Sub(at) < u.every {
		u.mu.Unlock()
		u.spared.Add(1)
		return fmt.Errorf("asset %q: %w", name, media.ErrNoAsset)
	}
	u.mu.Unlock()
	if u.budget.Allow() {
		return nil
	}
	names, err := u.names(ctx, now, list)
	if err != nil {
		return fmt.Errorf("asset %q: library listing: %w", name, err)
	}
	if _, found := slices.BinarySearch(names, name); found {
		return nil
	}
	u.noteAbsent(name)
	u.spared.Add(1)
	return fmt.Errorf("asset %q: %w", name, media.ErrNoAsset)
}

// names returns the library's names as listed at most one check interval
// ago, reading them again (once for all waiting requests) when older.
func (u *unknownNames) names(ctx context.Context, now time.Time, list func(context.Context) ([]string, error)) ([]string, error) {
	u.mu.Lock()
	if !u.listedAt.IsZero() && now.Sub(u.listedAt) < u.every {
		names := u.listed
		u.mu.Unlock()
		return names, nil
	}
	u.mu.Unlock()
	// Not bound to this request: a caller that gives up leaves the read
	// to the others (list bounds it in time).
	read := u.listing.DoChan("", func() (any, error) {
		names, err := list(context.WithoutCancel(ctx))
		slices.Sort(names)
		if err == nil {
			u.mu.Lock()
			u.listed, u.listedAt = names, time.Now()
			u.mu.Unlock()
		}
		return names, err
	})
	select {
	case r := <-read:
		names, _ := r.Val.([]string)
		return names, r.Err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
	}
}

// noteAbsent remembers that the store has no name.
func (u *unknownNames) noteAbsent(name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.absent) >= maxAbsent {
		clear(u.absent)
	}
	u.absent[name] = time.Now()
}

// forget drops what is remembered of name: it was just loaded.
func (u *unknownNames) forget(name string) {
	u.mu.Lock()
	delete(u.absent, name)
	u.mu.Unlock()
}
