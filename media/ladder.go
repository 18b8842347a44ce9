package media

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Rung is one step of a bitrate ladder: a picture size and a target video bitrate.
type Rung struct {
	Width  int `json:"width"`
	Height int `json:"height"`
	// Kbps is the nominal video bitrate in kbit/s.
	Kbps int `json:"kbps"`
}

// Lines is the rung's picture size as video is named, by its short side:
// 720 for 1280x720 and for 720x1280.
func (r Rung) Lines() int { return min(r.Width, r.Height) }

// String formats the rung the way ParseLadder reads it, e.g. "1280x720@2800k".
func (r Rung) String() string { return fmt.Sprintf("%dx%d@%dk", r.Width, r.Height, r.Kbps) }

// Ladder is a set of renditions, highest first.
type Ladder []Rung

// String formats the ladder as a comma-separated spec.
func (l Ladder) String() string {
	parts := make([]string, len(l))
	for i, r := range l {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// standardLadder is the reference ladder the default follows (16:9 sizes,
// bitrates typical of H.264 VOD ladders).
var standardLadder = Ladder{
	{1920, 1080, 5000},
	{1280, 720, 2800},
	{854, 480, 1400},
	{640, 360, 800},
	{426, 240, 400},
}

// maxLadderDim bounds picture sizes so a typo cannot ask ffmpeg for absurd frames.
const maxLadderDim = 8192

// ParseLadder reads a spec such as "1280x720@2800k,640x360@800k".
// Bitrates may carry a k (kbit/s) or M (Mbit/s) suffix; a bare number is kbit/s.
func ParseLadder(spec string) (Ladder, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("ladder: empty spec")
	}
	var l Ladder
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		size, rate, ok := strings.Cut(item, "@")
		if !ok {
			return nil, fmt.Errorf("ladder: %q: want WIDTHxHEIGHT@BITRATE", item)
		}
		ws, hs, ok := strings.Cut(size, "x")
		if !ok {
			return nil, fmt.Errorf("ladder: %q: size %q is not WIDTHxHEIGHT", item, size)
		}
		w, err1 := strconv.Atoi(ws)
		h, err2 := strconv.Atoi(hs)
		if err1 != nil || err2 != nil || w < 16 || h < 16 || w > maxLadderDim || h > maxLadderDim {
			return nil, fmt.Errorf("ladder: %q: size must be two integers from 16 to %d", item, maxLadderDim)
		}
		if w%2 != 0 || h%2 != 0 {
			return nil, fmt.Errorf("ladder: %q: width and height must be even for 4:2:0 video", item)
		}
		kbps, err := parseKbps(rate)
		if err != nil {
			return nil, fmt.Errorf("ladder: %q: %w", item, err)
		}
		l = append(l, Rung{Width: w, Height: h, Kbps: kbps})
	}
	l.sort()
	for i := 1; i < len(l); i++ {
		if l[i].Height == l[i-1].Height && l[i].Kbps == l[i-1].Kbps {
			return nil, fmt.Errorf("ladder: rung %s given twice", l[i])
		}
	}
	return l, nil
}

func parseKbps(s string) (int, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		s = s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		s, mult = s[:len(s)-1], 1000
	}
	v, err := strconv.ParseFloat(s, 64)
	// The test is on the kbit/s value itself, written so that NaN fails it:
	// a rate under 1 kbit/s would become a 0k rung that no ladder accepts.
	if kbps := v * mult; err != nil || !(kbps >= 1 && kbps <= 200000) {
		return 0, fmt.Errorf("bitrate %q must be a number of kbit/s from 1k to 200M", s)
	}
	return int(v * mult), nil
}

func (l Ladder) sort() {
	slices.SortStableFunc(l, func(a, b Rung) int {
		if a.Height != b.Height {
			return b.Height - a.Height
		}
		return b.Kbps - a.Kbps
	})
}

// DefaultLadder follows the source: every standard rung whose height is at
// most the source's, resized to the source's aspect ratio, never upscaled.
// A source smaller than the lowest standard rung gets one rung at its own size.
// A portrait source (taller than wide) gets the rungs of its landscape twin
// turned upright: its short side is what the rung names, as for any
// other picture, so a 1080x1920 source starts at 1080x1920, not 608x1080.
func DefaultLadder(srcWidth, srcHeight int) Ladder {
	if srcHeight > srcWidth {
		l := DefaultLadder(srcHeight, srcWidth)
		for i := range l {
			l[i].Width, l[i].Height = l[i].Height, l[i].Width
		}
		return l
	}
	var l Ladder
	for _, r := range standardLadder {
		if r.Height > srcHeight {
			continue
		}
		w := even(float64(r.Height) * float64(srcWidth) / float64(srcHeight))
		if w > srcWidth {
			w = srcWidth &^ 1
		}
		l = append(l, Rung{Width: w, Height: r.Height, Kbps: r.Kbps})
	}
	if len(l) == 0 {
		lowest := standardLadder[len(standardLadder)-1]
		kbps := max(100, lowest.Kbps*srcWidth*srcHeight/(lowest.Width*lowest.Height))
		l = Ladder{{Width: srcWidth &^ 1, Height: srcHeight &^ 1, Kbps: kbps}}
	}
	return l
}

// even rounds v to the nearest even integer (4:2:0 needs even sizes).
func even(v float64) int {
	return 2 * int(math.Round(v/2))
}

// Fit drops the rungs that would upscale a source of the given size.
func (l Ladder) Fit(srcWidth, srcHeight int) (Ladder, error) {
	var out Ladder
	for _, r := range l {
		if r.Width <= srcWidth && r.Height <= srcHeight {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ladder %s: every rung is larger than the %dx%d source", l, srcWidth, srcHeight)
	}
	return out, nil
}
