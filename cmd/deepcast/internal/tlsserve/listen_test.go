package tlsserve

import (
	"net"
	"strings"
	"testing"
)

// TestListenTCPAndUDP: HTTP/3 shares the TLS port; a port taken for UDP is
// an error when it was asked for, and any port gives both on one port.
func TestListenTCPAndUDP(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if ln, _, err := listenTCPAndUDP(taken.LocalAddr().String(), true); err == nil || !strings.Contains(err.Error(), "http3 listen udp") {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("a port taken for UDP: %v", err)
	}
	// The TCP port was let go with the failure.
	if ln, err := net.Listen("tcp", taken.LocalAddr().String()); err != nil {
		t.Fatalf("TCP port kept after the failure: %v", err)
	} else {
		ln.Close()
	}
	for range 20 {
		ln, udp, err := listenTCPAndUDP("127.0.0.1:0", true)
		if err != nil {
			t.Fatal(err)
		}
		if tp, up := ln.Addr().(*net.TCPAddr).Port, udp.LocalAddr().(*net.UDPAddr).Port; tp != up {
			t.Errorf("TCP on %d, UDP on %d", tp, up)
		}
		ln.Close()
		udp.Close()
	}
}
