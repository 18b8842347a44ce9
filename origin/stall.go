package origin

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// DefaultUploadStall is Config.UploadStall's default.
const DefaultUploadStall = time.Minute

// uploadFloor is the least an upload must bring in each UploadStall
// window: 64 KiB a minute is about 9 kbit/s, far below any uploader that
// is still sending a video, and enough to end one that trickles.
const uploadFloor = 64 << 10

// stallGuard reads an upload under a read deadline that moves forward each
// time uploadFloor more bytes have come. The server's own ReadTimeout is
// sized for requests, not gigabytes, and a fixed long deadline would let a
// stalled uploader hold one of the few ingest places (and its partial file)
// for all of it.
type stallGuard struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	window  time.Duration
	got     int64 // bytes since the deadline last moved
	stalled bool  // the deadline passed: the uploader brought too little
}

func newStallGuard(body io.ReadCloser, rc *http.ResponseController, window time.Duration) *stallGuard {
	g := &stallGuard{body: body, rc: rc, window: window}
	g.extend()
	return g
}

func (g *stallGuard) extend() {
	// A front that cannot set deadlines keeps its ReadTimeout: no worse
	// than without the guard.
	_ = g.rc.SetReadDeadline(time.Now().Add(g.window))
}

func (g *stallGuard) Read(p []byte) (int, error) {
	n, err := g.body.Read(p)
	g.got += int64(n)
	if g.got >= uploadFloor {
		g.got = 0
		g.extend()
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		g.stalled = true
	}
	return n, err
}

func (g *stallGuard) Close() error { return g.body.Close() }
