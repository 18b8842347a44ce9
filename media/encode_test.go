package media

import (
	"strings"
	"testing"
)

func TestToSDR(t *testing.T) {
	for _, c := range []struct {
		name   string
		colour Colour
		want   []string // all in the chain; none: no chain
	}{
		{"untagged", Colour{}, nil},
		{"SDR BT.709", Colour{Matrix: "bt709", Transfer: "bt709", Primaries: "bt709", Range: "tv"}, nil},
		{"HLG", Colour{Matrix: "bt2020nc", Transfer: "arib-std-b67", Primaries: "bt2020", Range: "tv"},
			[]string{"zscale=tin=arib-std-b67:min=bt2020nc:pin=bt2020:rin=tv:t=bt709:m=bt709:p=bt709:r=tv"}},
		{"PQ, tone-mapped", Colour{Matrix: "bt2020nc", Transfer: "smpte2084", Primaries: "bt2020"},
			[]string{"tin=smpte2084", "t=linear", "tonemap=tonemap=mobius", "zscale=t=bt709:m=bt709:r=tv"}},
		{"PQ, nothing else tagged", Colour{Transfer: "smpte2084"}, []string{"min=bt2020nc:pin=bt2020:rin=tv", "tonemap"}},
		{"wide-gamut SDR", Colour{Matrix: "bt2020nc", Transfer: "bt2020-10", Primaries: "bt2020", Range: "pc"},
			[]string{"tin=bt2020-10:min=bt2020nc:pin=bt2020:rin=pc:t=bt709:m=bt709:p=bt709"}},
		{"a transfer zscale does not know", Colour{Transfer: "smpte428", Primaries: "bt2020", Matrix: "chroma-derived-nc"},
			[]string{"tin=bt709:min=bt2020nc:pin=bt2020"}},
	} {
		got := toSDR(c.colour)
		if len(c.want) == 0 {
			if got != "" {
				t.Errorf("%s: %q, want no conversion", c.name, got)
			}
			continue
		}
		if !strings.HasSuffix(got, "format=yuv420p,") {
			t.Errorf("%s: %q does not end in 8-bit 4:2:0 and a comma", c.name, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", c.name, got, w)
			}
		}
	}
}

func TestRenditionRate(t *testing.T) {
	for _, c := range []struct {
		in    Rational
		want  string
		every int
	}{
		{Rational{24, 1}, "24", 1},
		{Rational{30000, 1001}, "30000/1001", 1},
		{Rational{60, 1}, "60", 1},
		{Rational{120, 1}, "60", 2},
		{Rational{120000, 1001}, "60000/1001", 2},
		{Rational{100, 1}, "50", 2},
		{Rational{90, 1}, "45", 2},
		{Rational{144, 1}, "48", 3},
		{Rational{240, 1}, "60", 4},
	} {
		got, every := renditionRate(c.in)
		if got.String() != c.want || every != c.every {
			t.Errorf("renditionRate(%s) = %s, every %d; want %s, every %d", c.in, got, every, c.want, c.every)
		}
	}
}
