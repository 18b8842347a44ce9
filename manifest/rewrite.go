package manifest

import (
	"fmt"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// BaseURL is a location the segments of an MPD can be fetched from; with
// content steering, ServiceLocation names its pathway.
type BaseURL struct {
	URL             string
	ServiceLocation string
}

// Steering points players at a DASH-IF content steering server.
type Steering struct {
	ServerURL              string
	DefaultServiceLocation string
	QueryBeforeStart       bool
}

// Rewrite returns the MPD with its MPD-level BaseURLs replaced by bases and,
// when steering is set, a ContentSteering element. Segment templates stay
// relative, so they resolve against whichever BaseURL the player uses.
func Rewrite(data []byte, bases []BaseURL, steering *Steering) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("mpd: malformed: %v", r)
		}
	}()
	if len(data) > MaxMPDSize {
		return nil, fmt.Errorf("mpd: %d bytes is larger than %d", len(data), MaxMPDSize)
	}
	clean, err := sanitize(data)
	if err != nil {
		return nil, fmt.Errorf("mpd: %w", err)
	}
	m, err := mpd.MPDFromBytes(clean)
	if err != nil {
		return nil, fmt.Errorf("mpd: %w", err)
	}
	m.BaseURL = nil
	for _, b := range bases {
		m.BaseURL = append(m.BaseURL, &mpd.BaseURLType{Value: mpd.AnyURI(b.URL), ServiceLocation: b.ServiceLocation})
	}
	if steering != nil {
		m.ContentSteering = &mpd.ContentSteeringType{Value: steering.ServerURL, DefaultServiceLocation: steering.DefaultServiceLocation,
			QueryBeforeStart: steering.QueryBeforeStart}
	}
	return Marshal(m)
}
