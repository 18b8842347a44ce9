// Package accesslog is the one access-log format of every deepcast node
// (origin, edges, router): a JSON object a line, with the fields an
// operator greps for. It lives beside the edge, whose fields are the
// richest; the origin and the router write the same record.
package accesslog

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/deepcast/deepcast/edge/cmcd"
)

// Record is one answered request.
type Record struct {
	Remote   string        // the client's address
	Method   string        //
	Path     string        // as requested, escaped
	Status   int           //
	Bytes    int64         // body bytes sent
	Duration time.Duration // to the last byte written
	// Cache is the node's cache outcome: hit, stale, miss, pass (relayed
	// uncached) or error; empty on a node without a cache (the origin).
	Cache string
	// Tier is where the body came from: memory, disk, upstream (edges),
	// library (origin); empty when none (redirects, errors).
	Tier string
	// Upstream is the upstream or sibling an edge fetched from, if any.
	Upstream string
	// CMCD is what the viewer's player reported with the request (edges;
	// nil when it sent none): logged as a "cmcd" group of the keys an
	// operator follows a session by.
	CMCD *cmcd.Data
}

// Logger writes records for one node.
type Logger struct {
	log *slog.Logger
}

// New writes the records of node as JSON lines to w.
func New(w io.Writer, node string) *Logger {
	return &Logger{log: slog.New(slog.NewJSONHandler(w, nil)).With("node", node)}
}

// Log writes r. A nil Logger (access logging off) writes nothing.
func (l *Logger) Log(r Record) {
	if l == nil {
		return
	}
	if r.Status == 0 {
		r.Status = 200 // what net/http sent for a handler that wrote nothing
	}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "access",
		slog.String("remote", r.Remote), slog.String("method", r.Method), slog.String("path", r.Path),
		slog.Int("status", r.Status), slog.Int64("bytes", r.Bytes),
		slog.Float64("duration_ms", float64(r.Duration.Microseconds())/1000),
		slog.String("cache", r.Cache), slog.String("tier", r.Tier), slog.String("upstream", r.Upstream), cmcdGroup(r.CMCD))
}

// cmcdGroup is the keys of d that were sent; an empty group, which slog
// leaves out, for none.
func cmcdGroup(d *cmcd.Data) slog.Attr {
	if d == nil {
		return slog.Group("cmcd")
	}
	var as []any
	str := func(k, v string) {
		if v != "" {
			as = append(as, slog.String(k, v))
		}
	}
	num := func(k string, v int64) {
		if v >= 0 {
			as = append(as, slog.Int64(k, v))
		}
	}
	str("sid", d.Session)
	str("cid", d.Content)
	str("ot", d.Object)
	str("sf", d.Format)
	str("st", d.StreamType)
	num("br", d.Bitrate)
	num("bl", d.Buffer)
	num("mtp", d.Throughput)
	num("d", d.Duration)
	num("tb", d.TopBitrate)
	if d.Starved {
		as = append(as, slog.Bool("bs", true))
	}
	if d.Startup {
		as = append(as, slog.Bool("su", true))
	}
	if d.Rate > 0 {
		as = append(as, slog.Float64("pr", d.Rate))
	}
	return slog.Group("cmcd", as...)
}

// Recorder is a ResponseWriter that notes the status and body bytes of
// the answer, for the log and the metrics.
type Recorder struct {
	http.ResponseWriter
	Status int   // 200 when the handler wrote a body without a status
	Bytes  int64 // body bytes written
}

// WriteHeader notes the first status.
func (r *Recorder) WriteHeader(code int) {
	if r.Status == 0 {
		r.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write counts the body.
func (r *Recorder) Write(p []byte) (int, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.Bytes += int64(n)
	return n, err
}

// ReadFrom counts the body and keeps the underlying writer's
// io.ReaderFrom, so http.ServeContent of a file still uses sendfile.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(r.ResponseWriter, src)
	}
	r.Bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
