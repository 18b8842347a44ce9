package h2front

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/fastpath"
	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
)

// testServer serves s over TLS (h2 by ALPN) on a loopback port; it
// returns the address and a client that trusts the server's CA, with
// cfg's HTTP/2 settings when given.
func testServer(t testing.TB, s *Server, cfg *http.HTTP2Config) (string, *http.Client) {
	t.Helper()
	dir := t.TempDir()
	caFile, pair, _, err := tlsserve.LocalCA(dir, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsserve.LoadPair(pair, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcfg := &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	done := make(chan error, 1)
	go func() { done <- s.Serve(tls.NewListener(ln, tcfg)) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, HTTP2: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return ln.Addr().String(), &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// pattern is n bytes that differ from position to position.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// mediaServer answers /vod/ from memory (and /vod/file from a file) on the
// fast path and everything else with a handler that echoes what it got.
func mediaServer(t testing.TB, objects map[string][]byte) *Server {
	dir := t.TempDir()
	file := filepath.Join(dir, "seg.m4s")
	if err := os.WriteFile(file, objects["/vod/file"], 0o644); err != nil {
		t.Fatal(err)
	}
	return &Server{
		Respond: func(q fastpath.Request) (fastpath.Response, bool) {
			if q.Path == "/vod/file" {
				f, err := os.Open(file)
				if err != nil {
					return fastpath.Response{}, false
				}
				return fastpath.Response{Header: []byte("Content-Type: video/mp4\r\n"), File: f, Size: int64(len(objects[q.Path]))}, true
			}
			if q.Path == "/vod/loop" { // what an edge checks loops with
				return fastpath.Response{Header: []byte("X-Loop: " + q.Loop + "\r\n"), Body: []byte{}}, true
			}
			b, ok := objects[q.Path]
			if !ok {
				return fastpath.Response{}, false
			}
			return fastpath.Response{Header: []byte("Content-Type: video/mp4\r\nCache-Control: max-age=60\r\nConnection: keep-alive\r\n"), Body: b}, true
		},
		Claims:      func(q fastpath.Request) bool { return strings.HasPrefix(q.Path, "/vod/") },
		ExtraHeader: []byte("Alt-Svc: h3=\":443\"\r\n"),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/echo":
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				w.Header().Set("X-Sum", sum(body))
				w.Write(body)
			case "/page":
				w.Write([]byte("<!doctype html><p>page</p>"))
			case "/big":
				w.Write(objects["/vod/big"])
			default:
				w.Header().Set("X-Proto", r.Proto)
				w.Header().Set("X-Query", r.URL.RawQuery)
				w.Header().Set("X-Range", r.Header.Get("Range"))
				w.WriteHeader(http.StatusTeapot)
			}
		}),
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute,
	}
}

func TestServesFastPathAndHandler(t *testing.T) {
	objects := map[string][]byte{"/vod/small": pattern(2048), "/vod/big": pattern(3<<20 + 17), "/vod/file": pattern(1<<20 + 5), "/vod/empty": {}}
	for _, window := range []int{0, 65535} {
		t.Run(fmt.Sprintf("client stream window %d", window), func(t *testing.T) {
			s := mediaServer(t, objects)
			var cfg *http.HTTP2Config
			if window > 0 {
				cfg = &http.HTTP2Config{MaxReceiveBufferPerStream: window, MaxReceiveBufferPerConnection: 65536}
			}
			addr, client := testServer(t, s, cfg)
			upload := pattern(5<<20 + 3)
			for _, tc := range []struct {
				method, path string
				header       map[string]string
				body         []byte
				status       int
				want         []byte // the body
				wantHeader   map[string]string
			}{
				{"GET", "/vod/small", nil, nil, 200, objects["/vod/small"], map[string]string{"Content-Type": "video/mp4", "Alt-Svc": `h3=":443"`, "Content-Length": "2048"}},
				{"GET", "/vod/big", nil, nil, 200, objects["/vod/big"], nil},
				{"GET", "/vod/file", nil, nil, 200, objects["/vod/file"], map[string]string{"Content-Length": "1048581"}},
				{"GET", "/vod/empty", nil, nil, 200, []byte{}, map[string]string{"Content-Length": "0"}},
				{"HEAD", "/vod/big", nil, nil, 200, []byte{}, map[string]string{"Content-Length": "3145745"}},
				{"GET", "/vod/small?CMCD=bl%3D200", nil, nil, 200, objects["/vod/small"], nil},
				// What the fast path leaves to the handler: a range, an
				// escaped path, an unknown object, another method.
				{"GET", "/vod/small", map[string]string{"Range": "bytes=0-9"}, nil, http.StatusTeapot, []byte{}, map[string]string{"X-Range": "bytes=0-9", "X-Proto": "HTTP/2.0"}},
				{"GET", "/vod/sm%61ll", nil, nil, http.StatusTeapot, []byte{}, nil},
				{"GET", "/vod/missing?a=b", nil, nil, http.StatusTeapot, []byte{}, map[string]string{"X-Query": "a=b"}},
				{"GET", "/page", nil, nil, 200, []byte("<!doctype html><p>page</p>"), map[string]string{"Content-Type": "text/html; charset=utf-8", "Content-Length": "26"}},
				{"GET", "/big", nil, nil, 200, objects["/vod/big"], nil},
				{"POST", "/echo", nil, upload, 200, upload, map[string]string{"X-Sum": sum(upload)}},
			} {
				req, err := http.NewRequest(tc.method, "https://"+addr+tc.path, bytes.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				if tc.body == nil {
					req.Body = nil
				}
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", tc.method, tc.path, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s %s: body: %v", tc.method, tc.path, err)
				}
				if resp.ProtoMajor != 2 {
					t.Errorf("%s %s: protocol %s", tc.method, tc.path, resp.Proto)
				}
				if resp.StatusCode != tc.status {
					t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
				}
				if !bytes.Equal(got, tc.want) {
					t.Errorf("%s %s: %d bytes (sum %s), want %d (sum %s)", tc.method, tc.path, len(got), sum(got), len(tc.want), sum(tc.want))
				}
				for k, v := range tc.wantHeader {
					if g := resp.Header.Get(k); g != v {
						t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, k, g, v)
					}
				}
				if resp.Header.Get("Date") == "" || resp.Header.Get("Connection") != "" {
					t.Errorf("%s %s: header %v", tc.method, tc.path, resp.Header)
				}
			}
			if st := s.Stats(); st.Answered < 6 || st.Handled < 6 {
				t.Errorf("stats %+v: want >= 6 answered by the fast path and >= 6 by the handler", st)
			}
		})
	}
}

// TestManyStreamsAtOnce multiplexes fast-path and handler requests over
// shared connections (run with -race).
func TestManyStreamsAtOnce(t *testing.T) {
	objects := map[string][]byte{"/vod/a": pattern(100 << 10), "/vod/file": pattern(300 << 10), "/vod/big": pattern(1 << 20)}
	s := mediaServer(t, objects)
	addr, client := testServer(t, s, nil)
	paths := []string{"/vod/a", "/vod/file", "/big", "/page", "/vod/a"}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			p := paths[i%len(paths)]
			resp, err := client.Get("https://" + addr + p)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 {
				errs <- fmt.Errorf("%s: %d %v", p, resp.StatusCode, err)
				return
			}
			want := objects[p]
			if p == "/big" {
				want = objects["/vod/big"]
			}
			if p != "/page" && !bytes.Equal(got, want) {
				errs <- fmt.Errorf("%s: %d bytes, want %d", p, len(got), len(want))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// recordingConn records each Write as one slice.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// tcpPair is a connected pair of loopback TCP connections (unlike
// net.Pipe they buffer, as real peers do).
func tcpPair(t testing.TB) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// rawClient speaks HTTP/2 over conn with prior knowledge (no TLS): the
// preface, empty SETTINGS, and frames by hand.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

func newRawClient(t testing.TB, conn net.Conn) *rawClient {
	c := &rawClient{t: t, conn: conn}
	c.fr = http2.NewFramer(conn, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, preface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rawClient) get(id uint32, path string) {
	c.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "127.0.0.1"}, {":path", path}} {
		c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// until reads frames until one for which done reports true.
func (c *rawClient) until(done func(http2.Frame) bool) {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			c.fr.WriteSettingsAck()
		}
		if done(f) {
			return
		}
	}
}

// TestPlainAnswerIsOneWrite is the reason for this package: a plain media
// answer's HEADERS and DATA (with END_STREAM) leave in a single write, so
// over TLS in a single record.
func TestPlainAnswerIsOneWrite(t *testing.T) {
	s := mediaServer(t, map[string][]byte{"/vod/m.mpd": pattern(2048), "/vod/file": pattern(10)})
	client, server := tcpPair(t)
	rec := &recordingConn{Conn: server}
	go s.ServeConn(rec)
	defer client.Close()
	c := newRawClient(t, client)
	c.until(func(f http2.Frame) bool { sf, ok := f.(*http2.SettingsFrame); return ok && sf.IsAck() })
	for id := uint32(1); id <= 5; id += 2 {
		rec.mu.Lock()
		before := len(rec.writes)
		rec.mu.Unlock()
		c.get(id, "/vod/m.mpd")
		c.until(func(f http2.Frame) bool {
			return f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream)
		})
		rec.mu.Lock()
		writes := rec.writes[before:]
		rec.mu.Unlock()
		if len(writes) != 1 {
			t.Fatalf("stream %d: answered in %d writes, want 1", id, len(writes))
		}
		fr := http2.NewFramer(nil, bytes.NewReader(writes[0]))
		var types []string
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				break
			}
			types = append(types, f.Header().Type.String())
		}
		if strings.Join(types, ",") != "HEADERS,DATA" {
			t.Errorf("stream %d: the write held %v, want HEADERS,DATA", id, types)
		}
	}
}

// TestClientResetCancelsHandler: RST_STREAM from the client (a cancelled
// request) ends the handler's context.
func TestClientResetCancelsHandler(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	}), IdleTimeout: time.Minute}
	addr, client := testServer(t, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/wait", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	resp.Body.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context did not end after the client reset the stream")
	}
}

// TestStreamingHandlerFlushes: what a handler flushes reaches the client
// before the handler returns.
func TestStreamingHandlerFlushes(t *testing.T) {
	release := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first\n"))
		w.(http.Flusher).Flush()
		<-release
		w.Write([]byte("second\n"))
	}), IdleTimeout: time.Minute}
	addr, client := testServer(t, s, nil)
	resp, err := client.Get("https://" + addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("first chunk %q, %v", buf, err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// TestShutdownLetsStreamsFinish: Shutdown sends GOAWAY, serves the
// streams in flight to the end, refuses new connections and returns.
func TestShutdownLetsStreamsFinish(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		w.Write([]byte("done"))
	}), IdleTimeout: time.Minute}
	addr, client := testServer(t, s, nil)
	result := make(chan string, 1)
	go func() {
		resp, err := client.Get("https://" + addr + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprintf("%s %v", b, err)
	}()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond) // Shutdown is waiting on the stream
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a stream in flight", err)
	default:
	}
	close(release)
	if got := <-result; got != "done <nil>" {
		t.Fatalf("in-flight request got %q", got)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last stream ended")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Shutdown")
	}
}

// TestIdleConnectionGoesAway: a connection without streams gets GOAWAY
// and is closed after IdleTimeout; a peer that never sends its preface is
// dropped after ReadHeaderTimeout.
func TestIdleConnectionGoesAway(t *testing.T) {
	s := &Server{Handler: http.NotFoundHandler(), IdleTimeout: 200 * time.Millisecond, ReadHeaderTimeout: 200 * time.Millisecond}
	client, server := tcpPair(t)
	done := make(chan struct{})
	go func() { s.ServeConn(server); close(done) }()
	c := newRawClient(t, client)
	var away *http2.GoAwayFrame
	c.until(func(f http2.Frame) bool { away, _ = f.(*http2.GoAwayFrame); return away != nil })
	if away.ErrCode != http2.ErrCodeNo {
		t.Errorf("GOAWAY %v, want NO_ERROR", away.ErrCode)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an idle connection was not closed")
	}
	client, server = tcpPair(t)
	done = make(chan struct{})
	go func() { s.ServeConn(server); close(done) }()
	go io.Copy(io.Discard, client)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection without a preface was not closed")
	}
}

// TestH2Spec runs h2spec (the HTTP/2 conformance suite, strict mode: all
// 146 cases of RFC 7540 and RFC 7541) against the server.
func TestH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("builds h2spec")
	}
	out, err := exec.Command("go", "tool", "-n", "h2spec").Output()
	if err != nil {
		t.Fatalf("build h2spec (a tool in go.mod): %v", err)
	}
	h2spec := strings.TrimSpace(string(out))
	s := mediaServer(t, map[string][]byte{"/vod/file": pattern(10), "/vod/small": pattern(2048)})
	s.WriteTimeout = 3 * time.Second
	addr, _ := testServer(t, s, nil)
	_, port, _ := net.SplitHostPort(addr)
	// Once answered by the fast path, once by a handler.
	for _, path := range []string{"/vod/small", "/page"} {
		cmd := exec.Command(h2spec, "--strict", "--tls", "--insecure", "--port", port, "--path", path, "--timeout", "2")
		res, err := cmd.CombinedOutput()
		summary := ""
		if i := bytes.LastIndex(res, []byte("tests,")); i >= 0 {
			summary = string(bytes.TrimSpace(res[max(0, bytes.LastIndexByte(res[:i], '\n')):]))
		}
		if err != nil || !strings.Contains(summary, " 0 failed") || !strings.Contains(summary, " 0 skipped") {
			if i := bytes.Index(res, []byte("Failures:")); i >= 0 {
				res = res[i:]
			}
			t.Errorf("h2spec %s: %v: %s\n%s", path, err, summary, res)
			continue
		}
		t.Logf("h2spec %s: %s", path, summary)
	}
}

// FuzzServerFrames feeds arbitrary bytes after the preface to a
// connection: whatever they are, the server must not panic, must answer
// only with well-formed frames, and must finish once the peer is gone.
func FuzzServerFrames(f *testing.F) {
	var seed bytes.Buffer
	fr := http2.NewFramer(&seed, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/echo"}, {"content-length", "3"}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	fr.WriteData(1, true, []byte("abc"))
	fr.WriteWindowUpdate(1, 100)
	fr.WriteRSTStream(1, http2.ErrCodeCancel)
	fr.WritePing(false, [8]byte{1})
	f.Add(seed.Bytes())
	hb.Reset()
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/vod/file"}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	seed.Reset()
	fr.WriteSettings()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
	fr.WriteGoAway(3, http2.ErrCodeNo, nil)
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
	objects := map[string][]byte{"/vod/file": pattern(40000)}
	s := mediaServer(f, objects)
	s.ReadHeaderTimeout, s.IdleTimeout, s.WriteTimeout, s.ReadTimeout = time.Second, time.Second, time.Second, time.Second
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() { s.ServeConn(server); close(done) }()
		read := make(chan error, 1)
		go func() {
			fr := http2.NewFramer(nil, client)
			fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
			for {
				if _, err := fr.ReadFrame(); err != nil {
					var se http2.StreamError
					if errors.As(err, &se) {
						continue
					}
					read <- err
					return
				}
			}
		}()
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write([]byte(preface))
		client.Write(in)
		time.Sleep(time.Millisecond)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection did not end after the peer left")
		}
		if err := <-read; err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("the server wrote a malformed frame: %v", err)
		}
	})
}

// TestRapidResetIsBounded: a peer that resets every stream it opens
// (CVE-2023-44487) cannot have more handlers running than the streams it
// may open: streams past that are refused, and a peer that keeps at it
// is told to calm down (GOAWAY ENHANCE_YOUR_CALM).
func TestRapidResetIsBounded(t *testing.T) {
	const limit = 8
	var running, most atomic.Int64
	release := make(chan struct{})
	s := &Server{MaxConcurrentStreams: limit, IdleTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release // a handler busy with something that ignores its context
	})}
	defer close(release)
	client, server := tcpPair(t)
	go s.ServeConn(server)
	c := newRawClient(t, client)
	c.until(func(f http2.Frame) bool { sf, ok := f.(*http2.SettingsFrame); return ok && sf.IsAck() })
	// The frames are made here and written from another goroutine, which
	// stops when the server has gone away.
	var frames bytes.Buffer
	fw := http2.NewFramer(&frames, nil)
	open := func(id uint32) {
		c.hbuf.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "127.0.0.1"}, {":path", "/slow"}} {
			c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fw.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: true, EndHeaders: true})
	}
	// As many streams as allowed, reset once their handlers run.
	for i := range limit {
		open(uint32(2*i + 1))
	}
	if _, err := client.Write(frames.Bytes()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); running.Load() < limit; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d handlers started, want %d", running.Load(), limit)
		}
	}
	frames.Reset()
	for i := range limit {
		fw.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel)
	}
	// Then open and reset at once, again and again.
	for i := limit; i < 200; i++ {
		open(uint32(2*i + 1))
		fw.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel)
	}
	go client.Write(frames.Bytes())
	var code http2.ErrCode
	refused := 0
	c.until(func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.ErrCode == http2.ErrCodeRefusedStream {
				refused++
			}
		case *http2.GoAwayFrame:
			code = f.ErrCode
			return true
		}
		return false
	})
	if n := most.Load(); n > limit {
		t.Errorf("%d handlers ran at once for a peer allowed %d streams", n, limit)
	}
	if code != http2.ErrCodeEnhanceYourCalm || refused == 0 {
		t.Errorf("GOAWAY %v after %d refused streams, want ENHANCE_YOUR_CALM after some", code, refused)
	}
}

// TestPlainRequestsKeepCDNLoop: a request the fast path answers keeps its
// CDN-Loop fields (RFC 8586), as one list, so that an edge behind this
// front can refuse a request that went round a loop of caches.
func TestPlainRequestsKeepCDNLoop(t *testing.T) {
	addr, client := testServer(t, mediaServer(t, map[string][]byte{}), nil)
	for _, values := range [][]string{nil, {"home; id=1"}, {"a, b", "home; id=1"}} {
		req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/vod/loop", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header["Cdn-Loop"] = values
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.Header.Get("X-Loop"), strings.Join(values, ", "); resp.StatusCode != 200 || got != want {
			t.Errorf("CDN-Loop %q: %s, X-Loop %q, want %q", values, resp.Status, got, want)
		}
	}
}
