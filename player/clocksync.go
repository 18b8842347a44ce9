//go:build !js

package player

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/deepcast/deepcast/manifest"
)

// The UTCTiming schemes a player can read over HTTP or from the MPD
// (ISO/IEC 23009-1 Annex G, without their year: 2012 and 2014 alike).
const (
	utcHTTPXSDate = "urn:mpeg:dash:utc:http-xsdate:"
	utcHTTPISO    = "urn:mpeg:dash:utc:http-iso:"
	utcHTTPHead   = "urn:mpeg:dash:utc:http-head:"
	utcDirect     = "urn:mpeg:dash:utc:direct:"
)

// maxClockTries bounds the clock sources tried (a hostile MPD may list
// thousands).
const maxClockTries = 4

// serverClockOffset reads the server's clock from the first of clocks
// that answers and returns how far it is ahead of this machine's; false
// when none does (the local clock is used, and the log says so). mpdURL
// resolves relative source URLs; fetched is when the MPD was received
// (for the direct scheme, whose value is the time it was sent).
func serverClockOffset(ctx context.Context, client *http.Client, clocks []manifest.UTCTiming, mpdURL string, fetched time.Time) (time.Duration, bool) {
	base, _ := url.Parse(mpdURL)
	for i, c := range clocks {
		if i >= maxClockTries {
			break
		}
		off, err := readClock(ctx, client, c, base, fetched)
		if err == nil {
			return off, true
		}
		slog.Debug("live clock source failed", "scheme", c.Scheme, "value", c.Value, "err", err)
	}
	if len(clocks) > 0 {
		slog.Warn("no UTCTiming clock source of the live MPD answered: segment availability follows this machine's clock", "sources", len(clocks))
	}
	return 0, false
}

// readClock reads one clock source: the server's time less this
// machine's at the moment it was read (the middle of the request).
func readClock(ctx context.Context, client *http.Client, c manifest.UTCTiming, base *url.URL, fetched time.Time) (time.Duration, error) {
	scheme := c.Scheme
	if i := strings.LastIndexByte(scheme, ':'); i >= 0 {
		scheme = scheme[:i+1]
	}
	if scheme == utcDirect {
		t, err := manifest.ParseDateTime(c.Value)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", c.Value, err)
		}
		return t.Sub(fetched), nil
	}
	method := http.MethodGet
	switch scheme {
	case utcHTTPXSDate, utcHTTPISO:
	case utcHTTPHead:
		method = http.MethodHead
	default:
		return 0, fmt.Errorf("scheme %s is not read here", c.Scheme)
	}
	// The value may list several URLs: the first is used.
	fields := strings.Fields(c.Value)
	if len(fields) == 0 {
		return 0, fmt.Errorf("no URL")
	}
	u, err := base.Parse(fields[0])
	if err != nil || u.Scheme != "http" && u.Scheme != "https" {
		return 0, fmt.Errorf("%q is not an http(s) URL", fields[0])
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return 0, err
	}
	sent := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	mid := sent.Add(time.Since(sent) / 2)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var server time.Time
	if method == http.MethodHead {
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			return 0, fmt.Errorf("%s: Date %q: %w", u, resp.Header.Get("Date"), err)
		}
		server = d.Add(500 * time.Millisecond) // Date is cut to the second
	} else {
		body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
		if err != nil {
			return 0, err
		}
		if server, err = manifest.ParseDateTime(string(body)); err != nil {
			return 0, fmt.Errorf("%s: %q: %w", u, body, err)
		}
	}
	return server.Sub(mid), nil
}

// liveClock is the server's clock of a live stream: skew ahead of this
// machine's, read from the MPD's UTCTiming sources the first time one is
// read (zero when it names none or none answers).
type liveClock struct {
	skew   time.Duration
	synced bool
}

// sync reads the server's clock from the sources the live MPD data names,
// once. A nil clock does nothing.
func (c *liveClock) sync(ctx context.Context, client *http.Client, data []byte, mpdURL string) {
	if c == nil || c.synced {
		return
	}
	c.synced = true
	if clocks := manifest.LiveClocks(data); len(clocks) > 0 {
		c.skew, _ = serverClockOffset(ctx, client, clocks, mpdURL, time.Now())
	}
}

// now is the server's time (this machine's for a nil clock).
func (c *liveClock) now() time.Time {
	if c == nil {
		return time.Now()
	}
	return time.Now().Add(c.skew)
}
