package tlsserve

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// startH3 serves h over HTTPS and HTTP/3 on loopback with the given
// header timeout; it returns the server, its address and a client's TLS
// configuration that trusts it.
func startH3(t *testing.T, h http.Handler, headerTimeout time.Duration) (*Server, string, *tls.Config) {
	t.Helper()
	ca, leaf, _, err := LocalCA(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Listen: "127.0.0.1:0", Pairs: []Pair{leaf}, HTTP3: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Server{ReadHeaderTimeout: headerTimeout, ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	served := make(chan error, 1)
	go func() { served <- s.Serve(h, base, Fronts{}) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	roots, err := CertPool(ca)
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Addr().String(), &tls.Config{RootCAs: roots, NextProtos: []string{http3.NextProtoH3}}
}

// TestHTTP3RequestMustBringItsHeaders: a request stream that opens and
// stalls before its HEADERS are complete is ended after the header
// timeout (http3.Server alone holds it for as long as the peer keeps the
// connection alive), while whole requests are answered, on a connection
// older than the timeout too.
func TestHTTP3RequestMustBringItsHeaders(t *testing.T) {
	const headerTimeout = 500 * time.Millisecond
	_, addr, tlsConf := startH3(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}), headerTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, addr, tlsConf, &quic.Config{KeepAlivePeriod: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A HEADERS frame (type 0x01) that says 100 bytes follow, and none do.
	if _, err := str.Write([]byte{0x01, 0x40, 100}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	str.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(str)
	if se := (*quic.StreamError)(nil); !errors.As(err, &se) {
		t.Fatalf("a stream without its HEADERS: %v after %v, want it reset", err, time.Since(start))
	}
	if took := time.Since(start); took < headerTimeout/2 {
		t.Errorf("reset after %v, header timeout %v", took, headerTimeout)
	}

	tr := &http3.Transport{TLSClientConfig: tlsConf}
	defer tr.Close()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for range 2 {
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello" || resp.ProtoMajor != 3 {
			t.Fatalf("%s %q over %s", resp.Status, body, resp.Proto)
		}
		time.Sleep(headerTimeout + 100*time.Millisecond)
	}
}

// TestHTTP3ShutdownFinishesRequests: Shutdown lets a request under way
// finish and its whole answer arrive, then returns.
func TestHTTP3ShutdownFinishesRequests(t *testing.T) {
	answer := bytes.Repeat([]byte("0123456789"), 200_000) // 2 MB: more than one flight
	started, release := make(chan struct{}), make(chan struct{})
	s, addr, tlsConf := startH3(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Write(answer)
	}), time.Second)
	tr := &http3.Transport{TLSClientConfig: tlsConf}
	defer tr.Close()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	type result struct {
		body []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Get("https://" + addr + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{body, err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	time.Sleep(200 * time.Millisecond) // Shutdown is under way
	close(release)
	if r := <-got; r.err != nil || !bytes.Equal(r.body, answer) {
		t.Errorf("the request under way: %d of %d bytes, %v", len(r.body), len(answer), r.err)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return once the request was done")
	}
}

// TestShutdownOfPlainNetHTTPReportsNoError: without fronts, net/http
// serves the listener itself, and Shutdown closed it first and then let
// net/http close it again, which sometimes came back as "use of closed
// network connection" from a clean shutdown (a router's HTTPS, say).
func TestShutdownOfPlainNetHTTPReportsNoError(t *testing.T) {
	for i := range 30 {
		s, addr, _ := startH3(t, http.NotFoundHandler(), time.Second)
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			c.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("shutdown %d: %v", i, err)
		}
	}
}
