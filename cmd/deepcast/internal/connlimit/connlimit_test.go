package connlimit

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestClientKey(t *testing.T) {
	for _, c := range []struct {
		remote net.Addr
		want   string // "" for no key
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"}, // a v4-mapped address is the v4 client
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1}, "2001:db8:1:2::"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 1}, "2001:db8:1:2::"}, // same /64, same client
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 1}, "2001:db8:1:3::"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, ""},
	} {
		got, ok := ClientKey(c.remote)
		if c.want == "" {
			if ok {
				t.Errorf("%v: key %v, want none", c.remote, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(c.want) {
			t.Errorf("%v: key %v (%v), want %s", c.remote, got, ok, c.want)
		}
	}
}

func TestLimitsAndPlacesGivenBack(t *testing.T) {
	addr := func(s string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(s), Port: 5} }
	for _, c := range []struct {
		name    string
		limits  Limits
		clients []string // one connection each, in order
		want    []bool   // admitted
	}{
		{"per client", Limits{PerClient: 2}, []string{"10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2"}, []bool{true, true, false, true}},
		{"total", Limits{Total: 3}, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}, []bool{true, true, true, false}},
		{"both", Limits{PerClient: 1, Total: 2}, []string{"10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"}, []bool{true, false, true, false}},
		{"none", Limits{}, []string{"10.0.0.1", "10.0.0.1", "10.0.0.1"}, []bool{true, true, true}},
		{"an IPv6 /64 is one client", Limits{PerClient: 1}, []string{"2001:db8::1", "2001:db8::2", "2001:db8:0:1::1"}, []bool{true, false, true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := New(c.limits, slog.New(slog.DiscardHandler))
			var releases []func()
			for i, cl := range c.clients {
				release, ok := l.Admit(addr(cl))
				if ok != c.want[i] {
					t.Fatalf("connection %d from %s: admitted %v, want %v", i, cl, ok, c.want[i])
				}
				if ok {
					releases = append(releases, release)
				}
			}
			if st := l.Stats(); st.Open != len(releases) || int(st.RefusedPerClient+st.RefusedTotal) != len(c.clients)-len(releases) {
				t.Errorf("stats %+v after %d admitted of %d", st, len(releases), len(c.clients))
			}
			for _, r := range releases {
				r()
			}
			if st := l.Stats(); st.Open != 0 || len(l.byClient) != 0 {
				t.Errorf("after every release: %+v, %d clients still counted", st, len(l.byClient))
			}
			// Every place is free again.
			for i, cl := range c.clients {
				if _, ok := l.Admit(addr(cl)); ok != c.want[i] {
					t.Errorf("again, connection %d from %s: admitted %v, want %v", i, cl, ok, c.want[i])
				}
			}
		})
	}
}

// TestConnGivesItsPlaceBackOnce: Close twice, or Detach and then the
// detached release and Close, give the place back once.
func TestConnGivesItsPlaceBackOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(Limits{PerClient: 1}, slog.New(slog.DiscardHandler))
	lln := l.Listener(ln)
	defer lln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := lln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func() *Conn {
		select {
		case c := <-accepted:
			return c.(*Conn)
		case <-time.After(5 * time.Second):
			t.Fatal("nothing accepted")
			return nil
		}
	}
	dial()
	first := next()
	// A second connection from the same client is closed, never returned.
	refused := dial()
	refused.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := refused.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("refused connection: read %v, want EOF", err)
	}
	first.Close()
	first.Close()
	if open := l.Stats().Open; open != 0 {
		t.Fatalf("%d open after Close twice", open)
	}
	dial()
	second := next()
	release := second.Detach()
	second.Close() // the socket lives on elsewhere: still counted
	if open := l.Stats().Open; open != 1 {
		t.Fatalf("%d open after a detached Close, want 1", open)
	}
	release()
	release()
	if open := l.Stats().Open; open != 0 {
		t.Fatalf("%d open after the detached release, want 0", open)
	}
	if st := l.Stats(); st.RefusedPerClient != 1 {
		t.Errorf("stats %+v, want one refused", st)
	}
}
