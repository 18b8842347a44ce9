package httpsem

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"sync"
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
	if got := gunzip(t, a); got != string(text) {
		t.Errorf("Gzip's output decodes to %d bytes, not the %d given", len(got), len(text))
	}
	if _, ok := Gzip([]byte("x")); ok {
		t.Errorf("Gzip of one byte reported a saving")
	}
	// Its writers are pooled: calls at once each get their own output.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			in := strings.Repeat(fmt.Sprintf("#EXTINF:4.000,\n%d.m4s\n", i), 50+i)
			out, ok := Gzip([]byte(in))
			if !ok || gunzip(t, out) != in {
				t.Errorf("concurrent Gzip %d: ok %v, output does not decode to its input", i, ok)
			}
		})
	}
	wg.Wait()
	for ct, want := range map[string]bool{"application/dash+xml": true, "Application/vnd.apple.mpegURL; charset=utf-8": true, "video/mp4": false, "": false} {
		if IsManifestType(ct) != want {
			t.Errorf("IsManifestType(%q) = %v", ct, !want)
		}
	}
}

// gunzip decodes gzip bytes (reporting, not stopping, on a failure: it
// runs on other goroutines).
func gunzip(t *testing.T, b []byte) string {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Error(err)
		return ""
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Error(err)
	}
	return string(out)
}

// BenchmarkGzipManifest is the router's work per session it starts: a
// rewritten MPD of a few KiB compressed.
func BenchmarkGzipManifest(b *testing.B) {
	var mpd strings.Builder
	for i := range 24 {
		fmt.Fprintf(&mpd, `<Representation id="v%d" bandwidth="%d" width="1280" height="720" codecs="avc1.64001f"/>`, i, 100000*(i+1))
	}
	body := []byte(mpd.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		Gzip(body)
	}
}
