package media

import (
	"testing"
)

func TestParseLadder(t *testing.T) {
	tests := []struct {
		spec    string
		want    string
		wantErr bool
	}{
		{"1280x720@2800k,640x360@800k", "1280x720@2800k,640x360@800k", false},
		{"640x360@800k,1280x720@2800k", "1280x720@2800k,640x360@800k", false},
		{" 1920x1080@5M , 426x240@400 ", "1920x1080@5000k,426x240@400k", false},
		{"1280x720@2.5M", "1280x720@2500k", false},
		{"", "", true},
		{"1280x720", "", true},
		{"1280*720@100k", "", true},
		{"1281x720@100k", "", true},
		{"0x0@100k", "", true},
		{"99999x720@100k", "", true},
		{"1280x720@-5k", "", true},
		{"1280x720@abc", "", true},
		{"1280x720@100k,1280x720@100k", "", true},
	}
	for _, tt := range tests {
		l, err := ParseLadder(tt.spec)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseLadder(%q) error = %v, wantErr %v", tt.spec, err, tt.wantErr)
			continue
		}
		if err == nil && l.String() != tt.want {
			t.Errorf("ParseLadder(%q) = %s, want %s", tt.spec, l, tt.want)
		}
	}
}

func TestDefaultLadder(t *testing.T) {
	tests := []struct {
		w, h int
		want string
	}{
		{1920, 1080, "1920x1080@5000k,1280x720@2800k,854x480@1400k,640x360@800k,426x240@400k"},
		{1280, 720, "1280x720@2800k,854x480@1400k,640x360@800k,426x240@400k"},
		{3840, 2160, "1920x1080@5000k,1280x720@2800k,854x480@1400k,640x360@800k,426x240@400k"},
		{640, 480, "640x480@1400k,480x360@800k,320x240@400k"},
		{320, 180, "320x180@225k"},
		// Portrait: the same rungs, upright.
		{1080, 1920, "1080x1920@5000k,720x1280@2800k,480x854@1400k,360x640@800k,240x426@400k"},
		{360, 640, "360x640@800k,240x426@400k"},
		{480, 640, "480x640@1400k,360x480@800k,240x320@400k"},
		{180, 320, "180x320@225k"},
		{720, 720, "720x720@2800k,480x480@1400k,360x360@800k,240x240@400k"},
	}
	for _, tt := range tests {
		got := DefaultLadder(tt.w, tt.h)
		if got.String() != tt.want {
			t.Errorf("DefaultLadder(%d, %d) = %s, want %s", tt.w, tt.h, got, tt.want)
		}
		for _, r := range got {
			if r.Width > tt.w || r.Height > tt.h {
				t.Errorf("DefaultLadder(%d, %d) upscales to %s", tt.w, tt.h, r)
			}
		}
	}
}

func TestLadderFit(t *testing.T) {
	l, _ := ParseLadder("1920x1080@5000k,1280x720@2800k,640x360@800k")
	got, err := l.Fit(1280, 720)
	if err != nil || got.String() != "1280x720@2800k,640x360@800k" {
		t.Errorf("Fit = %s, %v", got, err)
	}
	if _, err := l.Fit(320, 180); err == nil {
		t.Error("Fit to a tiny source: want an error, every rung upscales")
	}
}

func FuzzParseLadder(f *testing.F) {
	f.Add("1280x720@2800k,640x360@800k")
	f.Add("1x1@1")
	f.Add("@,x@")
	f.Fuzz(func(t *testing.T, spec string) {
		l, err := ParseLadder(spec)
		if err != nil {
			return
		}
		again, err := ParseLadder(l.String())
		if err != nil || again.String() != l.String() {
			t.Fatalf("round trip of %q: %q, %v", l, again, err)
		}
	})
}
