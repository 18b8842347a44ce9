//go:build !js

package player

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/deepcast/deepcast/manifest"
)

// TestServerClockOffset: each UTCTiming scheme a player reads over HTTP
// or from the MPD gives the server's clock; sources that fail are passed
// over for the next; with none that answers the local clock stands.
func TestServerClockOffset(t *testing.T) {
	const skew = 90 * time.Second
	server := func() time.Time { return time.Now().Add(skew) }
	mux := http.NewServeMux()
	mux.HandleFunc("/iso", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, server().UTC().Format(time.RFC3339Nano))
	})
	mux.HandleFunc("/xsdate", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, server().UTC().Format("2006-01-02T15:04:05.000")+"\n")
	})
	mux.HandleFunc("/head", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", server().UTC().Format(http.TimeFormat))
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tea time") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mpd := srv.URL + "/live/m.mpd"
	for _, tc := range []struct {
		name      string
		clocks    []manifest.UTCTiming
		tolerance time.Duration
		ok        bool
	}{
		{"http-iso", []manifest.UTCTiming{{Scheme: "urn:mpeg:dash:utc:http-iso:2014", Value: srv.URL + "/iso"}}, 50 * time.Millisecond, true},
		{"http-xsdate, relative", []manifest.UTCTiming{{Scheme: "urn:mpeg:dash:utc:http-xsdate:2014", Value: "/xsdate"}}, 50 * time.Millisecond, true},
		{"http-head", []manifest.UTCTiming{{Scheme: "urn:mpeg:dash:utc:http-head:2014", Value: srv.URL + "/head"}}, 600 * time.Millisecond, true},
		{"direct", []manifest.UTCTiming{{Scheme: "urn:mpeg:dash:utc:direct:2014", Value: server().UTC().Format(time.RFC3339Nano)}}, 50 * time.Millisecond, true},
		{"after failing sources", []manifest.UTCTiming{{Scheme: "urn:mpeg:dash:utc:ntp:2014", Value: "pool.ntp.org"},
			{Scheme: "urn:mpeg:dash:utc:http-iso:2014", Value: srv.URL + "/garbage"},
			{Scheme: "urn:mpeg:dash:utc:http-iso:2014", Value: srv.URL + "/missing"},
			{Scheme: "urn:mpeg:dash:utc:http-iso:2014", Value: srv.URL + "/iso"}}, 50 * time.Millisecond, true},
		{"none answers", []manifest.UTCTiming{{Scheme: "urn:mpeg:dash:utc:http-iso:2014", Value: "file:///etc/passwd"}}, 0, false},
	} {
		off, ok := serverClockOffset(context.Background(), srv.Client(), tc.clocks, mpd, time.Now())
		if ok != tc.ok || ok && (off-skew).Abs() > tc.tolerance || !ok && off != 0 {
			t.Errorf("%s: offset %v (%v), want %v within %v", tc.name, off, ok, skew, tc.tolerance)
		}
	}
}
