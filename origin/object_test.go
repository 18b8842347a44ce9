package origin

import (
	"slices"
	"testing"
)

// TestParseRangeSpans: the spans fetched from the store for a Range, as
// the Ranges middleware leaves it (every number fits an int64).
func TestParseRangeSpans(t *testing.T) {
	for _, c := range []struct {
		h    string
		want [][2]int64
	}{
		{"bytes=0-99", [][2]int64{{0, 100}}},
		{"bytes=900-", [][2]int64{{900, 1000}}},
		{"bytes=-100", [][2]int64{{900, 1000}}},
		{"bytes=-5000", [][2]int64{{0, 1000}}},
		{"bytes=0-0, 10-19", [][2]int64{{0, 1}, {10, 20}}},
		{"bytes=0-9223372036854775807", [][2]int64{{0, 1000}}},
		{"bytes=-9223372036854775807", [][2]int64{{0, 1000}}},
		{"bytes=9223372036854775807-", nil},
		{"bytes=5-1", nil},
		{"bytes=abc", nil},
		{"items=0-1", nil},
	} {
		if got := parseRangeSpans(c.h, 1000); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.h, got, c.want)
		}
	}
}

// FuzzParseRangeSpans: whatever a client sends, the spans asked of the
// store lie inside the object, each at least one byte long.
func FuzzParseRangeSpans(f *testing.F) {
	for _, h := range []string{"bytes=0-99", "bytes=-100", "bytes=900-", "bytes=0-0, 10-19", "bytes=-9223372036854775807", "bytes=5-1", "bytes= 1 - 2 ,3-"} {
		f.Add(h, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		for _, s := range parseRangeSpans(h, size) {
			if s[0] < 0 || s[0] >= s[1] || s[1] > size {
				t.Fatalf("%q of %d bytes: span [%d, %d) is not inside the object", h, size, s[0], s[1])
			}
		}
	})
}
