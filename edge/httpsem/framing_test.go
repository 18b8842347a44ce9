package httpsem

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestCloseAfterTransferCoding: a request with Transfer-Encoding (and
// Content-Length) is answered and its connection closed, so the request
// pipelined after it is never read; a plain one keeps the connection.
func TestCloseAfterTransferCoding(t *testing.T) {
	ts := httptest.NewServer(CloseAfterTransferCoding(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "answer to "+r.URL.Path+"\n")
	})))
	defer ts.Close()
	next := "GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, c := range []struct {
		name, first string
		answers     int
	}{
		{"TE and CL", "GET /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1},
		{"TE", "GET /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1},
		{"CL", "GET /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 2},
		{"plain", "GET /first HTTP/1.1\r\nHost: x\r\n\r\n", 2},
	} {
		c2, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c2, c.first+next)
		// Without the close, the server waits for a third request until
		// the deadline; read what came before it.
		var got strings.Builder
		buf := make([]byte, 4096)
		for strings.Count(got.String(), "answer to") < c.answers {
			n, err := c2.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if c.answers == 1 {
			rest, err := io.ReadAll(c2)
			got.Write(rest)
			if err != nil {
				t.Errorf("%s: the connection stayed open (%v)", c.name, err)
			}
			if !strings.Contains(got.String(), "Connection: close") {
				t.Errorf("%s: no Connection: close in %q", c.name, got.String())
			}
		}
		if n := strings.Count(got.String(), "answer to"); n != c.answers {
			t.Errorf("%s: %d answers, want %d: %q", c.name, n, c.answers, got.String())
		}
		c2.Close()
	}
}
