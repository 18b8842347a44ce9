package httpsem

import (
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, c := range []struct {
		field string
		want  bool
	}{
		{"", false},
		{"gzip", true},
		{"GZip", true},
		{"x-gzip", true},
		{"gzip, deflate, br, zstd", true}, // Chromium
		{"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"deflate, br", false},
		{"identity", false},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"gzip;q=0.001", true},
		{"gzip ; q = 0.5", true},
		{"gzip;q=1.000", true},
		{"gzip;q=1.5", false},
		{"gzip;q=2", false},
		{"gzip;q=abc", false},
		{"gzip;level=9", false},
		{"*", true},
		{"*;q=0", false},
		{"*, gzip;q=0", false}, // gzip named: its own weight rules
		{"gzip;q=0, *", false},
		{"br, *;q=0.5", true},
		{",,, gzip", true},
		{"gzipx", false},
	} {
		if got := AcceptsGzip(c.field); got != c.want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", c.field, got, c.want)
		}
	}
}

// FuzzAcceptsGzip: any field is read without a panic, and a field that
// never names gzip, x-gzip or * never offers gzip.
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "br;q=1.0, gzip;q=0.8, *;q=0.1", "gzip;q=0", "*;q=0.5", "gzip;q=1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, field string) {
		got := AcceptsGzip(field)
		lower := strings.ToLower(field)
		if got && !strings.Contains(lower, "gzip") && !strings.Contains(field, "*") {
			t.Errorf("AcceptsGzip(%q) = true with no gzip or * in it", field)
		}
	})
}

func TestEncodedTagAndGzip(t *testing.T) {
	for _, c := range []struct{ tag, want string }{
		{`"abc"`, `"abc-gzip"`},
		{`W/"abc"`, `W/"abc-gzip"`},
		{`""`, `"-gzip"`},
		{``, ``},
		{`abc`, ``},
		{`"abc`, ``},
		{`W/`, ``},
	} {
		if got := EncodedTag(c.tag, "gzip"); got != c.want {
			t.Errorf("EncodedTag(%q) = %q, want %q", c.tag, got, c.want)
		}
	}
	text := []byte(strings.Repeat("#EXTINF:4.000,\n1.m4s\n", 100))
	a, ok := Gzip(text)
	b, _ := Gzip(text)
	if !ok || len(a) >= len(text) || string(a) != string(b) {
		t.Errorf("Gzip of %d bytes of text: %d bytes, ok %v, same output twice %v", len(text), len(a), ok, string(a) == string(b))
	}
	if _, ok := Gzip([]byte("x")); ok {
		t.Errorf("Gzip of one byte reported a saving")
	}
	for ct, want := range map[string]bool{"application/dash+xml": true, "Application/vnd.apple.mpegURL; charset=utf-8": true, "video/mp4": false, "": false} {
		if IsManifestType(ct) != want {
			t.Errorf("IsManifestType(%q) = %v", ct, !want)
		}
	}
}
