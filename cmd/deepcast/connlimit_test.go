package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
)

// holdConns opens n connections to addr from the loopback address from,
// each an HTTP/2 connection over TLS that sent its preface and SETTINGS
// and then idles (a node keeps such a connection for minutes), and
// reports how many the node kept: a refused connection is closed at once.
func holdConns(t *testing.T, from, addr string, n int) (kept int) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 3 * time.Second}
	var alive atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			raw, err := d.Dial("tcp", addr)
			if err != nil {
				return
			}
			t.Cleanup(func() { raw.Close() })
			c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) // a flood does not check certificates
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if c.Handshake() != nil {
				return
			}
			if _, err := c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
				return
			}
			// Kept: the node's SETTINGS come, then nothing until the read
			// times out. Refused: the handshake or a read fails.
			buf := make([]byte, 256)
			for {
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						alive.Add(1)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	return int(alive.Load())
}

// connMetric reads one of deepcast_connections_* from a node's metrics.
func connMetric(t *testing.T, metricsURL, series string) int {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(regexp.QuoteMeta(series) + ` (\d+)`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in the metrics", series)
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// TestConnectionFloodsLeaveRoomForViewers: one client opening idle
// HTTP/2 connections used to be able to hold an edge's every file
// descriptor: the node then accepted nobody else, and its cache fills
// failed for want of a socket. Now a client holds at most
// -max-conns-per-client connections, and all clients together at most
// -max-conns, by default the open-file limit less a reserve for the
// node's own sockets and files.
func TestConnectionFloodsLeaveRoomForViewers(t *testing.T) {
	needPrlimit(t)
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	ca, leaf := testCerts(t)
	o, plain, secure, admin := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNode(t, bin, o, "origin", "-library", lib, "-listen", o, "-access-log=false")
	// 256 files: -max-conns defaults to 256 less 64.
	startNode(t, "prlimit", plain, "--nofile=256:256", bin, "edge", "-upstream", "http://"+o, "-listen", plain,
		"-tls-listen", secure, "-tls-cert", leaf.Cert, "-tls-key", leaf.Key, "-admin-listen", admin, "-max-conns-per-client", "32")
	metrics := "http://" + admin + "/metrics"

	// A viewer, from an address of its own, on one HTTP/2 connection
	// opened before the floods.
	viewer := clientFor(t, ca, nil, false)
	tr := viewer.Transport.(*http.Transport)
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 3 * time.Second}).DialContext
	tr.MaxConnsPerHost = 1
	base := "https://" + secure + "/vod/" + mediatest.AssetName + "/"
	if resp, _ := getBody(t, viewer, base+"manifest.mpd"); resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest before the flood: %s", resp.Status)
	}

	// One client: it keeps 32 connections, the rest are closed at once.
	if kept := holdConns(t, "127.0.0.2", secure, 100); kept > 32 {
		t.Errorf("one client kept %d connections, limit 32", kept)
	}
	if n := connMetric(t, metrics, `deepcast_connections_refused_total{reason="per-client"}`); n < 60 {
		t.Errorf("%d connections refused per client, want at least 60 of 100", n)
	}
	for _, u := range []string{"http://" + plain, "https://" + secure} {
		c := clientFor(t, ca, nil, false)
		c.Transport.(*http.Transport).DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).DialContext
		if resp, _ := getBody(t, c, u+"/vod/"+mediatest.AssetName+"/manifest.mpd"); resp.StatusCode != http.StatusOK {
			t.Errorf("another client during the flood, %s: %s", u, resp.Status)
		}
	}

	// Ten clients, 320 connections, more than the node has files for:
	// it keeps at most -max-conns of them.
	var wg sync.WaitGroup
	var kept atomic.Int64
	for i := range 10 {
		wg.Go(func() { kept.Add(int64(holdConns(t, fmt.Sprintf("127.0.1.%d", i+1), secure, 32))) })
	}
	wg.Wait()
	if n := connMetric(t, metrics, "deepcast_connections_open"); n > 192 {
		t.Errorf("%d connections open, -max-conns 192", n)
	}
	if n := connMetric(t, metrics, `deepcast_connections_refused_total{reason="total"}`); n == 0 {
		t.Errorf("no connection refused for the total, with %d kept", kept.Load())
	}
	// The viewer's misses (every segment of the asset, at once, on its
	// connection) still find sockets to fetch them with.
	a, err := media.LoadAsset(mustResolve(t, lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	var fails atomic.Int64
	var fetches sync.WaitGroup
	for _, r := range a.Renditions {
		for n := 1; n <= len(r.Segments); n++ {
			fetches.Go(func() {
				resp, err := viewer.Get(fmt.Sprintf("%s%s/%d.m4s", base, r.ID, n))
				if err != nil {
					fails.Add(1)
					t.Errorf("segment %s/%d during the flood: %v", r.ID, n, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fails.Add(1)
					t.Errorf("segment %s/%d during the flood: %s", r.ID, n, resp.Status)
				}
			})
		}
	}
	fetches.Wait()
	t.Logf("floods kept %d connections; the viewer's misses failed %d times", kept.Load(), fails.Load())
}

func TestConnTotal(t *testing.T) {
	for _, c := range []struct {
		flag  int
		files uint64
		want  int
	}{
		{0, 20000, 16000},    // a fifth kept back
		{0, 256, 192},        // at least 64 kept back
		{0, 64, 1},           // nothing left: one connection, not none
		{0, 0, 0},            // limit unknown: no total
		{0, 1 << 40, 0},      // effectively unlimited
		{500, 20000, 500},    // the flag wins
		{-1, 20000, 0},       // -1: no total
		{50000, 1024, 50000}, // trusted as given
	} {
		if got := connTotal(c.flag, c.files); got != c.want {
			t.Errorf("connTotal(%d, %d) = %d, want %d", c.flag, c.files, got, c.want)
		}
	}
}

// TestHTTP3ConnectionsPerClientAreBounded: QUIC connections hold no file,
// but each holds memory and goroutines, and one client could open them
// without end; now -max-conns-per-client bounds them as it does TCP ones.
func TestHTTP3ConnectionsPerClientAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	ca, leaf := testCerts(t)
	o, d, admin := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNode(t, bin, o, "origin", "-library", lib, "-listen", o, "-access-log=false")
	startNode(t, bin, d, "edge", "-upstream", "http://"+o, "-listen", "", "-tls-listen", d, "-http3",
		"-tls-cert", leaf.Cert, "-tls-key", leaf.Key, "-admin-listen", admin, "-max-conns-per-client", "3")
	url := "https://" + d + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	get := func(c *http.Client) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	// Each client is a QUIC connection of its own, kept open.
	var clients []*http.Client
	for i := range 5 {
		c := clientFor(t, ca, nil, true)
		t0 := time.Now()
		err := get(c)
		t.Logf("connection %d: %v in %v", i+1, err, time.Since(t0))
		switch {
		case i < 3 && err != nil:
			t.Fatalf("connection %d of 3 allowed: %v", i+1, err)
		case i >= 3 && err == nil:
			t.Errorf("connection %d answered, past the 3 allowed", i+1)
		case i >= 3 && !strings.Contains(err.Error(), "H3_EXCESSIVE_LOAD") && !strings.Contains(err.Error(), "0x107"):
			t.Errorf("connection %d refused with %v, want H3_EXCESSIVE_LOAD", i+1, err)
		}
		clients = append(clients, c)
	}
	// Each refused request is one refused connection, or two: quic-go's
	// client dials once more when the refusal closed the connection
	// before it could open its request stream (errConnUnusable), which
	// under load it sometimes does (seen in CI: 3 for 2 requests).
	if n := connMetric(t, "http://"+admin+"/metrics", `deepcast_connections_refused_total{reason="per-client"}`); n < 2 || n > 4 {
		t.Errorf("%d connections refused per client, want 2 to 4 (2 requests refused, each redialed at most once)", n)
	}
	// One closes: its place is free again.
	clients[0].Transport.(*http3.Transport).Close()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = get(clientFor(t, ca, nil, true)); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("a new connection after one closed: %v", err)
	}
}
