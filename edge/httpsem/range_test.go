package httpsem

import (
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
		{[]string{"bytes=abc"}, []string{"bytes=abc"}},
		{[]string{"bytes=0-1", "bytes=5-6"}, []string{"bytes=0-1"}},
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
	} {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Range", c.rng)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status || (c.body != "" && rec.Body.String() != c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.rng, rec.Code, rec.Body.String(), c.status, c.body)
		}
	}
}

// FuzzNormalizeRange: whatever the header, NormalizeRange leaves either no
// Range or one that starts with the lower-case unit and keeps the ranges
// as sent.
func FuzzNormalizeRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "Bytes=1-", "items=0-1", "", " bytes=-5", "bYtEs=0-1,2-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"Range": {s}}
		NormalizeRange(h)
		v, ok := h["Range"]
		if !ok {
			return
		}
		if len(v) != 1 || !strings.HasPrefix(v[0], unit) {
			t.Fatalf("%q became %q", s, v)
		}
		if !strings.HasSuffix(s, v[0][len(unit):]) {
			t.Fatalf("%q: the ranges changed: %q", s, v[0])
		}
	})
}
