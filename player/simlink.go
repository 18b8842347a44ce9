package player

import (
	"context"
	"fmt"
	"time"
)

// maxSimDownload bounds one simulated download: a trace whose rates are
// near zero (a unit mistake, a broken capture) would otherwise loop over
// itself for hours of real time to carry one chunk.
const maxSimDownload = 24 * 60 * 60.0 // seconds of trace time

// TraceLink is the virtual clock and the fetcher of a simulated session: a
// link whose capacity follows a trace. Downloads consume the trace's bytes
// (times the payload share), add the round-trip time, and waiting advances
// along the trace without sending. The trace loops when it ends.
type TraceLink struct {
	trace   *Trace
	Payload float64       // share of the rate that carries payload (Pensieve: 0.95)
	RTT     time.Duration // added to every download (Pensieve: 80 ms)
	ptr     int           // current trace row
	lastT   float64       // trace time reached within row ptr's interval
	now     time.Duration // virtual time since the session began
}

// NewTraceLink starts at the trace's second row, as Pensieve's simulator
// does (the first row only marks time zero).
func NewTraceLink(t *Trace, payload float64, rtt time.Duration) *TraceLink {
	if payload <= 0 {
		payload = 1
	}
	return &TraceLink{trace: t, Payload: payload, RTT: rtt, ptr: 1, lastT: t.Time[0]}
}

// Now implements Clock.
func (l *TraceLink) Now() time.Duration { return l.now }

// Sleep implements Clock: time passes along the trace, nothing is sent.
func (l *TraceLink) Sleep(ctx context.Context, d time.Duration) error {
	left := d.Seconds()
	for guard := 0; left > 0; guard++ {
		dur := l.trace.Time[l.ptr] - l.lastT
		if dur > left {
			l.lastT += left
			break
		}
		left -= dur
		l.advance()
		if guard%4096 == 4095 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	l.now += d
	return nil
}

func (l *TraceLink) advance() {
	l.lastT = l.trace.Time[l.ptr]
	l.ptr++
	if l.ptr >= len(l.trace.Time) {
		l.ptr = 1
		l.lastT = l.trace.Time[0]
	}
}

// Fetch implements Fetcher: the download takes as long as the trace needs
// to carry req.Size payload bytes, plus the RTT. A trace that carries its
// own latency (Sabre's) has it spent first, along the trace, in place of
// the RTT: the latency of the moment a request is sent, as Sabre has it.
// With req.Abandon, the download is checked every AbandonEvery after its
// wait, and stops where it is given up.
func (l *TraceLink) Fetch(ctx context.Context, req Request) (Download, error) {
	wait := l.RTT
	if l.trace.Latency != nil {
		wait = seconds(l.latency())
	}
	size := float64(req.Size)
	sent := 0.0
	delay := 0.0
	every := AbandonEvery.Seconds()
	check := every
	for guard := 0; ; guard++ {
		rate := l.trace.Mbps[l.ptr] * 1e6 / 8 * l.Payload // payload bytes per second
		dur := l.trace.Time[l.ptr] - l.lastT
		// A check due within this row cuts it there; without checks the
		// walk is row by row, as it always was.
		cut := req.Abandon != nil && delay+dur > check
		if cut {
			dur = check - delay
		}
		chunk := rate * dur
		if sent+chunk > size {
			frac := (size - sent) / rate
			delay += frac
			l.lastT += frac
			break
		}
		sent += chunk
		delay += dur
		if cut {
			l.lastT += dur
			p := Progress{Rendition: req.Rendition, Size: req.Size, Bytes: int64(sent),
				Elapsed: wait + seconds(delay), FirstByte: wait}
			if req.Abandon(p) {
				start := l.now
				l.now += p.Elapsed
				return Download{Bytes: p.Bytes, Sent: start, FirstByte: start + wait, LastByte: l.now, Abandoned: true}, nil
			}
			check += every
		} else {
			l.advance()
		}
		if delay > maxSimDownload {
			return Download{}, fmt.Errorf("trace %s carries %.0f of %d bytes in 24 h: its rates are near zero (are they in Mbit/s?)",
				l.trace.Name, sent, req.Size)
		}
		if guard%4096 == 4095 && ctx.Err() != nil {
			return Download{}, ctx.Err()
		}
	}
	start := l.now
	l.now += seconds(delay) + wait
	return Download{Bytes: req.Size, Sent: start, FirstByte: start + wait, LastByte: l.now}, nil
}
