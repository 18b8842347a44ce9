package httpsem

import (
	"net/http"
	"testing"
)

func TestNoneMatch(t *testing.T) {
	const tag = `"abc"`
	for _, c := range []struct {
		field, etag string
		want        bool
	}{
		{`"abc"`, tag, true},
		{`W/"abc"`, tag, true},
		{`"abc"`, `W/"abc"`, true},
		{`*`, tag, true},
		{`"x", "abc"`, tag, true},
		{`"x","abc"`, tag, true},
		{`"a,b", "abc"`, tag, true}, // a comma inside a tag is part of it
		{`"a,b"`, `"a,b"`, true},
		{`"x", "y"`, tag, false},
		{`"abcd"`, tag, false},
		{`abc`, tag, false},
		{`"abc`, tag, false},
		{`"x", bad, "abc"`, tag, false}, // malformed from "bad" on
		{``, tag, false},
		{`"abc"`, ``, false},
		{`"abc"`, `abc`, false},
		{`*`, `"a"b"`, false},
	} {
		if got := NoneMatch(c.field, c.etag); got != c.want {
			t.Errorf("NoneMatch(%q, %q) = %v, want %v", c.field, c.etag, got, c.want)
		}
	}
}

func TestNotModified(t *testing.T) {
	const (
		tag = `"v1"`
		lm  = "Tue, 01 Dec 2026 10:00:00 GMT"
	)
	for _, c := range []struct {
		name   string
		fields []string
		want   bool
	}{
		{"no conditions", nil, false},
		{"tag matches", []string{"If-None-Match", tag}, true},
		{"tag in a second field line", []string{"If-None-Match", `"x"`, "If-None-Match", tag}, true},
		{"other tag, date would match", []string{"If-None-Match", `"x"`, "If-Modified-Since", lm}, false},
		{"same date", []string{"If-Modified-Since", lm}, true},
		{"later date", []string{"If-Modified-Since", "Tue, 01 Dec 2026 11:00:00 GMT"}, true},
		{"earlier date", []string{"If-Modified-Since", "Tue, 01 Dec 2026 09:59:59 GMT"}, false},
		{"bad date", []string{"If-Modified-Since", "yesterday"}, false},
	} {
		h := http.Header{}
		for i := 0; i < len(c.fields); i += 2 {
			h.Add(c.fields[i], c.fields[i+1])
		}
		if got := NotModified(h, tag, lm); got != c.want {
			t.Errorf("%s: NotModified = %v, want %v", c.name, got, c.want)
		}
	}
	if NotModified(http.Header{"If-None-Match": {"*"}}, "", lm) {
		t.Errorf("If-None-Match: * matched a representation without an ETag")
	}
}

func FuzzNoneMatch(f *testing.F) {
	for _, s := range []string{`"abc"`, `W/"abc", "x"`, `*`, `"a,b"`, `W/`, `"`} {
		f.Add(s, `"abc"`)
	}
	f.Fuzz(func(t *testing.T, field, etag string) {
		got := NoneMatch(field, etag)
		// A well-formed member before the list changes nothing, unless
		// it is the tag itself.
		if etag != `"zz"` && etag != `W/"zz"` && NoneMatch(`"zz", `+field, etag) != got {
			t.Errorf("NoneMatch(%q, %q) = %v, but not with a member before it", field, etag, got)
		}
		if _, ok := opaqueTag(etag); !ok && got {
			t.Errorf("NoneMatch(%q, %q): a malformed ETag matched", field, etag)
		}
	})
}
