package httpsem

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestReprDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("segment"))
	hexSum := hex.EncodeToString(sum[:])
	field := ReprDigest(hexSum)
	if field == "" {
		t.Fatal("no field for a whole SHA-256")
	}
	for _, c := range []struct {
		name, field string
		ok          bool
	}{
		{"ours", field, true},
		{"after another algorithm", "sha-512=:AAAA:, " + field, true},
		{"with a parameter", field + ";p=1", true},
		{"no spaces", "unixsum=:AA==:," + field, true},
		{"absent", "sha-512=:AAAA:", false},
		{"empty", "", false},
		{"not a byte sequence", "sha-256=abc", false},
		{"unterminated", "sha-256=:" + field[len("sha-256=:"):len(field)-1], false},
		{"short", "sha-256=:AAAA:", false},
		{"bad base64", "sha-256=:" + string(make([]byte, 44)) + ":", false},
		{"the key differs in case", "SHA-256=" + field[len("sha-256="):], false},
	} {
		got, ok := ReprSHA256(c.field)
		if ok != c.ok || ok && got != sum {
			t.Errorf("%s: ReprSHA256(%q) = %x, %v; want ok %v", c.name, c.field, got, ok, c.ok)
		}
	}
	for _, bad := range []string{"", hexSum[:32], hexSum[:63] + "g", hexSum + "00"} {
		if f := ReprDigest(bad); f != "" {
			t.Errorf("ReprDigest(%q) = %q, want none", bad, f)
		}
	}
}

func FuzzReprSHA256(f *testing.F) {
	sum := sha256.Sum256(nil)
	f.Add(ReprDigest(hex.EncodeToString(sum[:])))
	f.Add("sha-512=:AAAA:, sha-256=:AAAA:")
	f.Add("sha-256=:;:")
	f.Fuzz(func(t *testing.T, field string) {
		got, ok := ReprSHA256(field)
		if !ok {
			return
		}
		// What parses must format back to a field that parses the same.
		again, ok := ReprSHA256(ReprDigest(hex.EncodeToString(got[:])))
		if !ok || again != got {
			t.Fatalf("%q: %x does not round-trip", field, got)
		}
	})
}
