package storetest

import "testing"

func TestPortsOutside(t *testing.T) {
	for _, c := range []struct{ low, high, lo, hi int }{
		{32768, 60999, 10000, 32768}, // Linux's default
		{49152, 65535, 10000, 49152}, // IANA's
		{1024, 40000, 40001, 65536},
		{1024, 65535, 10000, 65536}, // no room: any port
		{10500, 65000, 10000, 65536},
	} {
		if lo, hi := portsOutside(c.low, c.high); lo != c.lo || hi != c.hi {
			t.Errorf("ephemeral %d-%d: %d-%d, want %d-%d", c.low, c.high, lo, hi, c.lo, c.hi)
		}
	}
}
