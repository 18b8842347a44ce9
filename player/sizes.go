package player

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// sizeAsk is a segment whose size must be asked for: chunk and rendition,
// or audio segment chunk when rendition is -1.
type sizeAsk struct{ chunk, rendition int }

// sizeAskers bounds the size requests in flight.
const sizeAskers = 8

// askSizes fills in the asked sizes, sizeAskers at a time.
func (v *Video) askSizes(ctx context.Context, asks []sizeAsk, size func(url string) (int64, error)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sizeAskers)
	for _, a := range asks {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // one failed (or the caller gave up): ask no more
			}
			if a.rendition < 0 {
				n, err := size(v.AudioURLs[a.chunk])
				if err != nil {
					return fmt.Errorf("audio segment %d: %w", a.chunk+1, err)
				}
				v.AudioSize[a.chunk] = n
				return nil
			}
			n, err := size(v.URLs[a.chunk][a.rendition])
			if err != nil {
				return fmt.Errorf("segment %d of rendition %d: %w", a.chunk+1, a.rendition, err)
			}
			v.Sizes[a.chunk][a.rendition] = n
			return nil
		})
	}
	return g.Wait()
}

// lazySizeWindow is how many chunks a lazy Video asks sizes for at once:
// more than the look-ahead of the MPC family (5), so a window's requests
// go out together once every few chunks.
const lazySizeWindow = 8

// lazySizes asks a Video's segment sizes when the ABR first looks at a
// chunk, for a window of chunks from there. A size that cannot be had
// (its HEAD failed) is taken as the rendition's bitrate over the chunk;
// fetching the segment itself will tell what is wrong.
type lazySizes struct {
	ctx    context.Context // the session's: the sizes are asked within it
	size   func(url string) (int64, error)
	mu     sync.Mutex
	loaded []bool
}

func (l *lazySizes) get(v *Video, chunk, rendition int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded[chunk] {
		var asks []sizeAsk
		for k := chunk; k < min(chunk+lazySizeWindow, len(l.loaded)); k++ {
			if l.loaded[k] || time.Now().Before(v.AvailableAt(k, false)) {
				continue // known, or a live chunk not published yet: asked when it is
			}
			l.loaded[k] = true
			for q, n := range v.Sizes[k] {
				if n == 0 && v.URLs[k][q] != "" { // a live segment predicted has no URL yet
					asks = append(asks, sizeAsk{k, q})
				}
			}
		}
		_ = v.askSizes(l.ctx, asks, func(u string) (int64, error) {
			n, err := l.size(u)
			if err != nil {
				slog.Debug("segment size unknown", "url", u, "err", err)
				return 0, nil
			}
			return n, nil
		})
		for _, a := range asks {
			if v.Sizes[a.chunk][a.rendition] == 0 {
				v.Sizes[a.chunk][a.rendition] = v.nominalSize(a.chunk, a.rendition)
			}
		}
	}
	if n := v.Sizes[chunk][rendition]; n > 0 {
		return n
	}
	return v.nominalSize(chunk, rendition)
}

// nominalSize is a segment's size at its rendition's declared bitrate.
func (v *Video) nominalSize(chunk, rendition int) int64 {
	return int64(v.Bitrates[rendition] * 1000 / 8 * v.ChunkDur(chunk).Seconds())
}
