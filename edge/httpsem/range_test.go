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

func TestSingleRange(t *testing.T) {
	cases := []struct {
		field       string
		size        int64
		first, last int64
		ok          bool
	}{
		{"bytes=0-99", 100, 0, 99, true},
		{"bytes=10-", 100, 10, 99, true},
		{"Bytes= 10 - 20", 100, 10, 20, true},
		{"bytes=50-999", 100, 50, 99, true},
		{"bytes=-10", 100, 90, 99, true},
		{"bytes=-1000", 100, 0, 99, true},
		{"bytes=0-99999999999999999999", 100, 0, 99, true},
		{"bytes=,5-6,", 100, 5, 6, true},
		{"bytes=100-", 100, 0, 0, false},
		{"bytes=-0", 100, 0, 0, false},
		{"bytes=0-1,5-6", 100, 0, 0, false},
		{"BYtes=0-,100-", 100, 0, 99, true}, // the second cannot be satisfied: one range, as ServeContent reads it
		{"bytes=200-300,-5", 100, 95, 99, true},
		{"bytes=100-,200-", 100, 0, 0, false},
		{"bytes=5-1", 100, 0, 0, false},
		{"items=0-1", 100, 0, 0, false},
		{"", 100, 0, 0, false},
		{"bytes=0-0", 0, 0, 0, false},
		{"bytes=99999999999999999999-", 100, 0, 0, false},
	}
	for _, c := range cases {
		first, last, ok := SingleRange(c.field, c.size)
		if first != c.first || last != c.last || ok != c.ok {
			t.Errorf("SingleRange(%q, %d) = %d, %d, %v; want %d, %d, %v", c.field, c.size, first, last, ok, c.first, c.last, c.ok)
		}
	}
}

// FuzzSingleRange: a range SingleRange reads is inside the representation,
// and ServeContent, behind NormalizeRange, answers that header with a 206
// of exactly that range; for anything it refuses ServeContent sends no
// single-part 206.
func FuzzSingleRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-5", "bytes=3-", "bytes=0-1,2-3", "bytes=,7-8", "bytes=-0", "bytes=100-", "Bytes=1-2"} {
		f.Add(s)
	}
	body := strings.Repeat("0123456789", 10)
	h := Ranges(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Unix(0, 0), strings.NewReader(body))
	}))
	f.Fuzz(func(t *testing.T, s string) {
		first, last, ok := SingleRange(s, int64(len(body)))
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header["Range"] = []string{s}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		single := rec.Code == http.StatusPartialContent && !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/")
		if !ok {
			if single {
				t.Fatalf("%q refused, but ServeContent sent %s", s, rec.Header().Get("Content-Range"))
			}
			return
		}
		if first < 0 || last < first || last >= int64(len(body)) {
			t.Fatalf("%q: %d-%d of %d", s, first, last, len(body))
		}
		if want := fmt.Sprintf("bytes %d-%d/%d", first, last, len(body)); !single || rec.Header().Get("Content-Range") != want {
			t.Fatalf("%q: read as %s, ServeContent answered %d with %q", s, want, rec.Code, rec.Header().Get("Content-Range"))
		}
	})
}
