// Package httpsemtest holds what tests of every node use to check the
// HTTP semantics of package httpsem on a real connection.
package httpsemtest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Smuggled is a GET of path with both Transfer-Encoding and
// Content-Length (RFC 9112 §6.1) and an empty chunked body, followed on
// the same connection by a plain GET of path: a server that closes after
// the first answer, as it must, never answers the second.
func Smuggled(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
		"GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"
}

// ExchangeUntilClosed sends raw on a new connection to addr and returns
// what the server sends until it closes; a server that keeps the
// connection fails the test after 5 s.
func ExchangeUntilClosed(t testing.TB, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Errorf("the connection stayed open: %v", err)
	}
	return string(out)
}

// SendMadeUpMethods sends n requests to each url, each with a method of its
// own that no RFC defines (M00X, M01X, …), as a client may.
func SendMadeUpMethods(n int, urls ...string) {
	for i := range n {
		for _, u := range urls {
			req, err := http.NewRequest(fmt.Sprintf("M%02dX", i), u, nil)
			if err != nil {
				continue
			}
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
}

// CheckNoMadeUpMethodLabel fails t when metrics (a /metrics page) has a
// label value of a method SendMadeUpMethods sent.
func CheckNoMadeUpMethodLabel(t testing.TB, metrics string) {
	t.Helper()
	if strings.Contains(metrics, `method="M`) {
		t.Error("a client's made-up method is a label value")
	}
}
