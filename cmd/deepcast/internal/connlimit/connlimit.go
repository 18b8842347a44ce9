// Package connlimit bounds the connections a server holds open: per
// client address and in all.
//
// Every connection is a file, and a node's open-file limit is shared by
// its viewers' connections, its own upstream connections and its disk
// tier. Without a bound, one client that opens connections and keeps them
// idle (an HTTP/2 connection may idle for minutes by design) fills the
// file table: the node then accepts nobody, and its cache fills fail for
// lack of a socket. A Limiter closes, as soon as they are accepted, the
// connections of a client that already holds its share, and any
// connection past the total, which stays below the open-file limit so
// that upstream fetches and disk files always find room.
package connlimit

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits are the bounds; zero means none.
type Limits struct {
	// PerClient is the most connections one client may hold open: an
	// IPv4 address, or an IPv6 /64 (what one subscriber line gets).
	PerClient int
	// Total is the most connections the listeners of one Limiter hold.
	Total int
}

// Limiter counts the open connections of the listeners it wraps.
type Limiter struct {
	limits Limits
	log    *slog.Logger

	mu       sync.Mutex
	byClient map[netip.Addr]int
	open     int
	lastLog  time.Time

	refusedClient, refusedTotal atomic.Int64
}

// New returns a Limiter; log (nil: slog's default) hears of refusals, at
// most once every ten seconds.
func New(l Limits, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{limits: l, log: log, byClient: map[netip.Addr]int{}}
}

// Limits returns the bounds the Limiter applies.
func (l *Limiter) Limits() Limits { return l.limits }

// Stats are a Limiter's figures.
type Stats struct {
	Open             int   // connections open now
	RefusedPerClient int64 // closed at accept: their client held its share
	RefusedTotal     int64 // closed at accept: the total was reached
}

// Stats returns the figures now.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return Stats{Open: open, RefusedPerClient: l.refusedClient.Load(), RefusedTotal: l.refusedTotal.Load()}
}

// ClientKey is what connections are counted by for a remote address: the
// IPv4 address, or the /64 of an IPv6 one; ok is false for an address
// that is not IP (a Unix socket), which is not counted per client.
func ClientKey(remote net.Addr) (netip.Addr, bool) {
	var ap netip.AddrPort
	switch a := remote.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(remote.String()); err != nil {
			return netip.Addr{}, false
		}
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr(), true
	}
	return ip, true
}

// Admit counts a new connection from remote and returns the func that
// gives its place back (call it once, when the connection ends), or
// reports false for a connection past a limit. Listener calls it; a
// server whose connections are not a listener's (QUIC) calls it itself.
func (l *Limiter) Admit(remote net.Addr) (release func(), ok bool) {
	key, keyed := ClientKey(remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.limits.Total > 0 && l.open >= l.limits.Total:
		l.refusedTotal.Add(1)
		l.noteRefusal(remote, "the node's connection limit is reached", l.limits.Total)
		return nil, false
	case keyed && l.limits.PerClient > 0 && l.byClient[key] >= l.limits.PerClient:
		l.refusedClient.Add(1)
		l.noteRefusal(remote, "the client holds its share of connections", l.limits.PerClient)
		return nil, false
	}
	l.open++
	if keyed {
		l.byClient[key]++
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.open--
		if keyed {
			if l.byClient[key] <= 1 {
				delete(l.byClient, key)
			} else {
				l.byClient[key]--
			}
		}
	}, true
}

// noteRefusal logs a refusal unless one was logged in the last ten
// seconds (l.mu held): a flood must not become a flood of log lines.
func (l *Limiter) noteRefusal(remote net.Addr, why string, limit int) {
	now := time.Now()
	if now.Sub(l.lastLog) < 10*time.Second {
		return
	}
	l.lastLog = now
	l.log.Warn("connection refused: "+why, "client", remote.String(), "limit", limit,
		"refused_per_client", l.refusedClient.Load(), "refused_total", l.refusedTotal.Load())
}

// Listener wraps ln: what it accepts is counted until closed, and a
// connection past a limit is closed at once and never returned.
func (l *Limiter) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, l: l}
}

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next connection within the limits.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := ln.l.Admit(c.RemoteAddr())
		if !ok {
			c.Close()
			continue
		}
		return Wrap(c, release), nil
	}
}

// Conn is a counted connection: closing it gives its place back, once.
type Conn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Wrap makes c a Conn whose Close (or the holder of Detach's func) calls
// release, once.
func Wrap(c net.Conn, release func()) *Conn {
	return &Conn{Conn: c, release: release}
}

// Close closes the connection and gives its place back.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the connection c wraps.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Detach is for a server that moves the socket elsewhere (a duplicate
// descriptor in an event loop) and then closes c: Close no longer gives
// the place back, the func returned does (once), when the socket is
// finally closed.
func (c *Conn) Detach() func() {
	release := func() {}
	c.once.Do(func() { release = sync.OnceFunc(c.release) })
	return release
}

// ReadFrom lets a server send a file with sendfile(2) through c, as it
// would through the TCP connection c wraps.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite shuts down the writing side, when the connection c wraps can.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Unwrap returns the connection under c when c is a Conn, else c itself:
// for code that needs the socket (TCP_CORK, moving it to an event loop).
func Unwrap(c net.Conn) net.Conn {
	if cc, ok := c.(*Conn); ok {
		return cc.Conn
	}
	return c
}
