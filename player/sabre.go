package player

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"time"
)

// Sabre (Spiteri et al.'s ABR simulator, used for BOLA's evaluation and by
// dash.js's developers) keeps its inputs as JSON. The trace sets it ships
// (3G Norway, 4G Belgium, FCC) are in its network format, so reading both
// of its formats lets a researcher run the same networks and the same
// video through deepcast that they ran through Sabre.

// Bounds on a Sabre network period: a trace's clock stays within the
// two-column format's 1e8 s, its rates within 1e6 Mbit/s, and one
// request's latency within a minute (no network a video plays over waits
// longer for a first byte). With periods of at least a millisecond, as
// Sabre's traces have, a latency then spans at most 60 000 of them.
const (
	maxSabreDurationMS = 1e11
	maxSabreKbps       = 1e9
	maxSabreLatencyMS  = 60_000
)

// sabrePeriod is one element of a Sabre network trace. Pointers tell a
// missing field from a zero.
type sabrePeriod struct {
	Duration  *float64 `json:"duration_ms"`
	Bandwidth *float64 `json:"bandwidth_kbps"`
	Latency   *float64 `json:"latency_ms"`
}

// parseSabreTrace reads Sabre's network format: a JSON array of periods,
// each {"duration_ms", "bandwidth_kbps", "latency_ms"}, looped when it
// ends. Latency is optional, but then in no period: a trace with it keeps
// it per row (Trace.Latency) and the simulator spends it on every request
// as Sabre does.
func parseSabreTrace(r io.Reader, name string) (*Trace, error) {
	dec := json.NewDecoder(r)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("trace %s: not a Sabre network trace (want a JSON array of {\"duration_ms\", \"bandwidth_kbps\", \"latency_ms\"})", name)
	}
	t := &Trace{Name: name, Time: []float64{0}, Mbps: []float64{0}}
	var lat []float64
	end := 0.0 // ms
	for i := 0; dec.More(); i++ {
		var p sabrePeriod
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("trace %s period %d: %w", name, i, jsonProblem(err))
		}
		switch {
		case p.Duration == nil || p.Bandwidth == nil:
			return nil, fmt.Errorf("trace %s period %d: needs duration_ms and bandwidth_kbps", name, i)
		case !(*p.Duration >= 1 && *p.Duration <= maxSabreDurationMS):
			return nil, fmt.Errorf("trace %s period %d: duration_ms %g is not a time from 1 ms to %g", name, i, *p.Duration, float64(maxSabreDurationMS))
		case !(*p.Bandwidth >= 0 && *p.Bandwidth <= maxSabreKbps):
			return nil, fmt.Errorf("trace %s period %d: bandwidth_kbps %g is not a rate from 0 to %g", name, i, *p.Bandwidth, float64(maxSabreKbps))
		case i > 0 && (p.Latency != nil) != (lat != nil):
			return nil, fmt.Errorf("trace %s period %d: latency_ms is given in some periods and not in others", name, i)
		case p.Latency != nil && !(*p.Latency >= 0 && *p.Latency <= maxSabreLatencyMS):
			return nil, fmt.Errorf("trace %s period %d: latency_ms %g is not a delay from 0 to %d", name, i, *p.Latency, maxSabreLatencyMS)
		}
		if len(t.Time) > maxTraceSamples {
			return nil, fmt.Errorf("trace %s: too long", name)
		}
		end += *p.Duration
		if end > maxSabreDurationMS {
			return nil, fmt.Errorf("trace %s period %d: the trace runs past %g ms", name, i, float64(maxSabreDurationMS))
		}
		t.Time = append(t.Time, end/1000)
		t.Mbps = append(t.Mbps, *p.Bandwidth/1000)
		if p.Latency != nil {
			if i == 0 {
				lat = []float64{0} // row 0, as t.Mbps's
			}
			lat = append(lat, *p.Latency/1000)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("trace %s: %w", name, jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trace %s: text after the Sabre trace's array", name)
	}
	if len(t.Time) < 2 {
		return nil, fmt.Errorf("trace %s: a Sabre trace needs at least one period", name)
	}
	// Row 0 only marks time zero; it reads as the first period.
	t.Mbps[0] = t.Mbps[1]
	if lat != nil {
		lat[0] = lat[1]
	}
	t.Latency = lat
	if err := t.carriesData(); err != nil {
		return nil, err
	}
	return t, nil
}

// jsonProblem says what is wrong with a JSON document without Go's type
// names: a researcher's file has periods and fields, not structs.
func jsonProblem(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "a period"
		}
		want := "number"
		switch typeErr.Type.Kind() {
		case reflect.Struct, reflect.Map:
			want = "object"
		case reflect.Slice, reflect.Array:
			want = "array"
		case reflect.String:
			want = "string"
		}
		return fmt.Errorf("%s should be a JSON %s, not a JSON %s", field, want, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("broken JSON at byte %d: %w", syntaxErr.Offset, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the JSON ends early")
	}
	return err
}

// latency spends one request's latency on the link as Sabre does: time
// passes along the trace and nothing is sent. A latency that runs past
// its row's end carries on at the next row's latency for the share of it
// still to come. It returns the time spent, in seconds; the trace must
// carry latency.
func (l *TraceLink) latency() float64 {
	lat := l.trace.Latency
	spent, share := 0.0, 1.0
	// Each row either ends the walk or takes up its own length of it: a
	// walk of at most a minute over rows of at least a millisecond. The
	// guard is for a trace built by hand.
	for guard := 0; guard < 1<<24; guard++ {
		need := share * lat[l.ptr]
		left := l.trace.Time[l.ptr] - l.lastT
		if need <= left {
			l.lastT += need
			return spent + need
		}
		// need > left ≥ 0, so this row's latency is positive.
		spent += left
		share -= left / lat[l.ptr]
		l.advance()
	}
	return spent
}

// ParseSabreVideo reads Sabre's video manifest: {"segment_duration_ms",
// "bitrates_kbps" (ascending), "segment_sizes_bits": [[one per bitrate],
// one row per segment]}.
func ParseSabreVideo(r io.Reader, name string) (*Video, error) {
	var m struct {
		SegmentMS *float64    `json:"segment_duration_ms"`
		Kbps      []float64   `json:"bitrates_kbps"`
		SizesBits [][]float64 `json:"segment_sizes_bits"`
	}
	dec := json.NewDecoder(io.LimitReader(r, 1<<30))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("video %s: not a Sabre video manifest (want a JSON object with segment_duration_ms, bitrates_kbps and segment_sizes_bits): %w", name, jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("video %s: text after the Sabre manifest's object", name)
	}
	switch {
	case m.SegmentMS == nil || m.Kbps == nil || m.SizesBits == nil:
		return nil, fmt.Errorf("video %s: a Sabre video manifest needs segment_duration_ms, bitrates_kbps and segment_sizes_bits", name)
	case !(*m.SegmentMS >= 1 && *m.SegmentMS <= 3_600_000):
		return nil, fmt.Errorf("video %s: segment_duration_ms %g is not a segment length from 1 ms to an hour", name, *m.SegmentMS)
	case len(m.Kbps) == 0 || len(m.Kbps) > 32:
		return nil, fmt.Errorf("video %s: %d bitrates, want 1 to 32", name, len(m.Kbps))
	case len(m.SizesBits) == 0 || len(m.SizesBits) > 1_000_000:
		return nil, fmt.Errorf("video %s: %d segments, want 1 to 1000000", name, len(m.SizesBits))
	}
	v := &Video{Name: name, ChunkDuration: time.Duration(math.Round(*m.SegmentMS * float64(time.Millisecond))), Bitrates: m.Kbps}
	for i, kbps := range m.Kbps {
		if !(kbps > 0 && kbps <= 1e7) || (i > 0 && kbps <= m.Kbps[i-1]) {
			return nil, fmt.Errorf("video %s: bitrates_kbps must be positive and increase (bitrate %d is %g)", name, i, kbps)
		}
	}
	v.Sizes = make([][]int64, len(m.SizesBits))
	for k, row := range m.SizesBits {
		if len(row) != len(m.Kbps) {
			return nil, fmt.Errorf("video %s segment %d: %d sizes for %d bitrates", name, k, len(row), len(m.Kbps))
		}
		v.Sizes[k] = make([]int64, len(row))
		for q, bits := range row {
			if !(bits > 0 && bits <= 8<<34) {
				return nil, fmt.Errorf("video %s segment %d: size %g is not a positive number of bits", name, k, bits)
			}
			v.Sizes[k][q] = int64(math.Ceil(bits / 8))
		}
	}
	v.Chunks = len(v.Sizes)
	return v, nil
}
