package cmsd

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEntryString(t *testing.T) {
	for _, tc := range []struct {
		e    Entry
		want string
	}{
		{Entry{Node: "deepcast-deep"}, `"deepcast-deep"`},
		{Entry{Node: "deep", MaxBitrateKbps: 3000}, `"deep";mb=3000`},
		{Entry{Node: "home", Duress: true, MaxBitrateKbps: 1800, ThroughputKbps: 12000, RTTMillis: 20, DelayMillis: 3},
			`"home";du;etp=12000;mb=1800;rd=3;rtt=20`},
		{Entry{Node: `a"b\c`}, `"a\"b\\c"`},
		{Entry{Node: "nœud\n"}, `"n??ud?"`},
		{Entry{Node: "x", MaxBitrateKbps: -5}, `"x"`},
		{Entry{Node: "x", MaxBitrateKbps: 1 << 62}, `"x";mb=999999999999999`},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.e, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Entry
		err  error
	}{
		{"", nil, nil},
		{"   ", nil, nil},
		{`"deep";mb=3000`, []Entry{{Node: "deep", MaxBitrateKbps: 3000}}, nil},
		// CTA-5006's shape: the origin's entry, then each intermediary's.
		{`"origin";rd=12, "home";du;etp=80000, "deep";mb=1800;rtt=25`, []Entry{
			{Node: "origin", DelayMillis: 12},
			{Node: "home", Duress: true, ThroughputKbps: 80000},
			{Node: "deep", MaxBitrateKbps: 1800, RTTMillis: 25}}, nil},
		{"cdn-a;etp=5000;du=?0", []Entry{{Node: "cdn-a", ThroughputKbps: 5000}}, nil},
		{`"a";du=?1`, []Entry{{Node: "a", Duress: true}}, nil},
		{`"a";mb=100;x-vendor="hello";n=1.5;k=:aGk=:`, []Entry{{Node: "a", MaxBitrateKbps: 100}}, nil},
		{"1;mb=7", []Entry{{MaxBitrateKbps: 7}}, nil},
		{`("x" "y");a=1, "b";mb=2`, []Entry{{Node: "b", MaxBitrateKbps: 2}}, nil},
		{"\"a\",\t\"b\"", []Entry{{Node: "a"}, {Node: "b"}}, nil},
		{`"a\"q"`, []Entry{{Node: `a"q`}}, nil},
		{`"a";mb=1.5`, nil, ErrType},
		{`"a";mb="9"`, nil, ErrType},
		{`"a";mb=-1`, nil, ErrType},
		{`"a";du=1`, nil, ErrType},
		{`"a";mb=1234567890123456`, nil, ErrSyntax},
		{`"a",`, nil, ErrSyntax},
		{`"a" "b"`, nil, ErrSyntax},
		{`"a`, nil, ErrSyntax},
		{`"a\x"`, nil, ErrSyntax},
		{`"a";Mb=1`, nil, ErrSyntax},
		{`"a";mb=`, nil, ErrSyntax},
		{`("a"`, nil, ErrSyntax},
		{`"a";n=1.2345`, nil, ErrSyntax},
		{`"a";n=?2`, nil, ErrSyntax},
		{`;mb=1`, nil, ErrSyntax},
		{"\"a\"\n", nil, ErrSyntax},
	} {
		got, err := Parse(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Parse(%q): %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestNearest(t *testing.T) {
	e, ok := Nearest(`"home";du, "deep";mb=1200`)
	if !ok || e.Node != "deep" || e.MaxBitrateKbps != 1200 || e.Duress {
		t.Errorf("Nearest: %+v %v", e, ok)
	}
	for _, v := range []string{"", `"a";mb=x`} {
		if _, ok := Nearest(v); ok {
			t.Errorf("Nearest(%q) found an entry", v)
		}
	}
}

// FuzzParse checks that Parse never panics, and that what an entry
// writes reads back the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`"deep";mb=3000`, `"origin";rd=12, "home";du;etp=80000`, `("x" y);a=?1, b;mb=2`, `"a";k=:aGk=:;n=-1.5`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		es, err := Parse(s)
		if err != nil {
			return
		}
		var parts []string
		for _, e := range es {
			parts = append(parts, e.String())
		}
		again, err := Parse(strings.Join(parts, ", "))
		if err != nil {
			t.Fatalf("%q parsed, but its rewriting %q does not: %v", s, strings.Join(parts, ", "), err)
		}
		if len(again) != len(es) {
			t.Fatalf("%q: %d entries, rewritten %d", s, len(es), len(again))
		}
		for i := range es {
			if es[i] != again[i] {
				t.Fatalf("%q: entry %d %+v, rewritten %+v", s, i, es[i], again[i])
			}
		}
	})
}
