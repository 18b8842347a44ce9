package httpsem

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNormalizeRange(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want []string // nil: removed
	}{
		{nil, nil},
		{[]string{"bytes=0-99"}, []string{"bytes=0-99"}},
		{[]string{"Bytes=0-99"}, []string{"bytes=0-99"}},
		{[]string{"BYTES=-500"}, []string{"bytes=-500"}},
		{[]string{" bytes=1-2"}, []string{"bytes=1-2"}},
		{[]string{"items=0-1"}, nil},
		{[]string{"0-99"}, nil},
		{[]string{"bytes"}, nil},
		{[]string{""}, nil},
		{[]string{"bytes 0-99"}, nil},
		{[]string{"bytes=abc"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes=0-1", "bytes=5-6"}, []string{"bytes=0-1"}},
		{[]string{"bytes=0-1, 5-6"}, []string{"bytes=0-1, 5-6"}},
		{[]string{"bytes=-0"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes=-000"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes=0-0, -0"}, []string{"bytes=0-0"}},
		{[]string{"bytes=0-99999999999999999999"}, []string{"bytes=0-9223372036854775807"}},
		{[]string{"bytes=-99999999999999999999"}, []string{"bytes=-9223372036854775807"}},
		{[]string{"bytes=99999999999999999999-"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes=99999999999999999999-, 1-2"}, []string{"bytes=1-2"}},
		{[]string{"bytes=5-1"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes=0-1,5-1"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes=-"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes=,"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes=-+0"}, []string{"bytes=9223372036854775807-"}},
		{[]string{"bytes= 0 - 1 ,, 2-3"}, []string{"bytes= 0 - 1 ,, 2-3"}},
		{[]string{manyRanges(MaxRanges)}, []string{manyRanges(MaxRanges)}},
		{[]string{manyRanges(MaxRanges) + ",,"}, []string{manyRanges(MaxRanges) + ",,"}},
		{[]string{manyRanges(MaxRanges + 1)}, nil},
		{[]string{manyRanges(MaxRanges+1) + ",5-1"}, []string{"bytes=9223372036854775807-"}},
	} {
		h := http.Header{}
		if c.in != nil {
			h["Range"] = slices.Clone(c.in)
		}
		NormalizeRange(h)
		if got := h["Range"]; !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

// manyRanges is a set of n one-byte ranges.
func manyRanges(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%d-%d", i, i)
	}
	return "bytes=" + strings.Join(parts, ",")
}

// TestServeContentAfterNormalizeRange: what a client gets from ServeContent
// behind Ranges, for the ranges ServeContent alone gets wrong.
func TestServeContentAfterNormalizeRange(t *testing.T) {
	body := strings.Repeat("0123456789", 10)
	h := Ranges(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Unix(0, 0), strings.NewReader(body))
	}))
	for _, c := range []struct {
		rng    string
		status int
		body   string
	}{
		{"bytes=0-9", 206, body[:10]},
		{"Bytes=90-", 206, body[90:]},
		{"items=0-1", 200, body},
		{"bytes=abc", 416, ""},
		{"bytes=200-", 416, ""},
		{"bytes=-0", 416, ""},
		{"bytes=0-1,-0", 206, body[:2]},
		{"bytes=10-99999999999999999999", 206, body[10:]},
		{"bytes=-99999999999999999999", 206, body},
		{"bytes=99999999999999999999-", 416, ""},
		{"bytes=-+0", 416, ""},
		{"bytes=+0-+1", 416, ""},
	} {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Range", c.rng)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status || (c.body != "" && rec.Body.String() != c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.rng, rec.Code, rec.Body.String(), c.status, c.body)
		}
		if cr := rec.Header().Get("Content-Range"); c.status == 416 && cr != "bytes */100" {
			t.Errorf("%s: Content-Range %q, want bytes */100", c.rng, cr)
		}
	}
}

// FuzzNormalizeRange: whatever the header, NormalizeRange leaves either no
// Range or one that starts with the lower-case unit, normalizing twice
// changes nothing more, and ServeContent behind it answers 200, 206 or 416
// with a 206's Content-Range inside the body and as long as what it sends.
func FuzzNormalizeRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "Bytes=1-", "items=0-1", "", " bytes=-5", "bYtEs=0-1,2-3", "bytes=-0", "bytes=0-99999999999999999999", manyRanges(MaxRanges), manyRanges(MaxRanges + 1)} {
		f.Add(s)
	}
	body := strings.Repeat("0123456789", 10)
	h := Ranges(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Unix(0, 0), strings.NewReader(body))
	}))
	f.Fuzz(func(t *testing.T, s string) {
		hdr := http.Header{"Range": {s}}
		NormalizeRange(hdr)
		v, ok := hdr["Range"]
		if ok {
			if len(v) != 1 || !strings.HasPrefix(v[0], unit) {
				t.Fatalf("%q became %q", s, v)
			}
			again := http.Header{"Range": {v[0]}}
			NormalizeRange(again)
			if again.Get("Range") != v[0] {
				t.Fatalf("%q: %q, then %q", s, v[0], again.Get("Range"))
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header["Range"] = []string{s}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 416:
		case 206:
			var first, last, size int64
			cr := rec.Header().Get("Content-Range")
			if ct := rec.Header().Get("Content-Type"); strings.HasPrefix(ct, "multipart/") {
				_, boundary, _ := strings.Cut(ct, "boundary=")
				if parts := strings.Count(rec.Body.String(), "--"+boundary+"\r\n"); parts > MaxRanges {
					t.Fatalf("%q: %d parts", s, parts)
				}
				return
			}
			if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &size); err != nil || first > last || last >= size || size != 100 {
				t.Fatalf("%q: Content-Range %q", s, cr)
			}
			if int64(rec.Body.Len()) != last-first+1 {
				t.Fatalf("%q: %d bytes for Content-Range %q", s, rec.Body.Len(), cr)
			}
		default:
			t.Fatalf("%q: status %d", s, rec.Code)
		}
	})
}
