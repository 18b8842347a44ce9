package player

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Trace is a bandwidth trace: Mbit/s over time, row i holding for the
// interval (Time[i-1], Time[i]]. Players loop it when it ends.
type Trace struct {
	Name string
	// Family is the folder the trace came from (fcc, hsdpa, oboe, ...):
	// sim reports each family apart as well as all together.
	Family string
	Time   []float64 // seconds, increasing, from 0
	Mbps   []float64
	// Latency, when the trace carries it (Sabre's format), is each row's
	// delay before a request's first byte in seconds; it takes the place
	// of a fixed round trip (see TraceLink). Nil for traces without it.
	Latency []float64
}

// ParseTrace reads a bandwidth trace in one of three formats, told apart
// by its first text:
//   - "time_s throughput_Mbps" lines (whitespace separated), as Pensieve's
//     cooked traces and the bundled families are;
//   - mahimahi's packet-delivery format (one integer per line: a time in
//     milliseconds at which one 1500-byte packet can be delivered, as
//     many lines as packets, the trace repeating after its last time), as
//     Pensieve's, Puffer's and Oboe's emulation traces are. Deliveries are
//     counted in 100 ms bins (the last one ends at the last time), which
//     keeps every byte the trace carries;
//   - Sabre's network format (a JSON array of {"duration_ms",
//     "bandwidth_kbps", "latency_ms"} periods), whose latency the
//     simulator spends on each request (see parseSabreTrace).
func ParseTrace(r io.Reader, name string) (*Trace, error) {
	br := bufio.NewReader(r)
	line, err := skipBlank(br)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", name, err)
	}
	if first, err := br.Peek(1); err == nil && first[0] == '[' {
		return parseSabreTrace(br, name)
	}
	t := &Trace{Name: name}
	sc := bufio.NewScanner(br)
	var mm *mahimahiBins
	for sc.Scan() {
		line++
		if text := sc.Text(); strings.IndexByte(text, 0) >= 0 || !utf8.ValidString(text) {
			// A video or another binary file given as a trace: say so,
			// without printing its bytes.
			return nil, fmt.Errorf("trace %s: binary data, not a bandwidth trace (want text lines of a time in seconds and a throughput in Mbit/s, or mahimahi's delivery times in ms)", name)
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) == 1 && (mm != nil || len(t.Time) == 0) {
			if mm == nil {
				mm = &mahimahiBins{trace: t}
			}
			ms, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil || ms > maxMahimahiMS {
				return nil, fmt.Errorf("trace %s line %d: %q is not a delivery time in whole milliseconds (mahimahi format: one per line)", name, line, clip(f[0], 60))
			}
			if err := mm.add(ms); err != nil {
				return nil, fmt.Errorf("trace %s line %d: %w", name, line, err)
			}
			continue
		}
		if mm != nil {
			return nil, fmt.Errorf("trace %s line %d: want one delivery time in ms per line, as the lines before (mahimahi format)", name, line)
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("trace %s line %d: want two columns, time and Mbit/s", name, line)
		}
		ts, err1 := strconv.ParseFloat(f[0], 64)
		bw, err2 := strconv.ParseFloat(f[1], 64)
		// Written so that NaN fails too: every comparison with NaN is false.
		if err1 != nil || err2 != nil || !(ts >= 0 && ts <= 1e8 && bw >= 0 && bw <= 1e6) {
			return nil, fmt.Errorf("trace %s line %d: %q is not a time in seconds and a non-negative throughput in Mbit/s", name, line, clip(sc.Text(), 60))
		}
		if n := len(t.Time); n > 0 && ts <= t.Time[n-1] {
			return nil, fmt.Errorf("trace %s line %d: time %g does not increase", name, line, ts)
		}
		t.Time = append(t.Time, ts)
		t.Mbps = append(t.Mbps, bw)
		if len(t.Time) > maxTraceSamples {
			return nil, fmt.Errorf("trace %s: too long", name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("trace %s: %w", name, err)
	}
	if mm != nil {
		if err := mm.finish(); err != nil {
			return nil, fmt.Errorf("trace %s: %w", name, err)
		}
	}
	if len(t.Time) < 2 {
		return nil, fmt.Errorf("trace %s: needs at least two samples", name)
	}
	if err := t.carriesData(); err != nil {
		return nil, err
	}
	return t, nil
}

// carriesData refuses a trace on which no download could ever end.
func (t *Trace) carriesData() error {
	var total float64
	for i := 1; i < len(t.Time); i++ {
		total += t.Mbps[i] * (t.Time[i] - t.Time[i-1])
	}
	if total <= 0 {
		return fmt.Errorf("trace %s: carries no data at all (every sample is zero)", t.Name)
	}
	return nil
}

// skipBlank reads the white space before a trace's first text, counting
// the lines it ends, so that the format can be told by its first byte and
// errors still name the right line.
func skipBlank(br *bufio.Reader) (lines int, err error) {
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return lines, err
		}
		switch b {
		case '\n':
			lines++
		case ' ', '\t', '\r':
		default:
			return lines, br.UnreadByte()
		}
	}
}

// Mahimahi traces: each line one packet of mahimahiPacket bytes.
const (
	mahimahiPacket = 1500
	mahimahiBinMS  = 100
	// maxMahimahiMS bounds a delivery time (about 116 days): with the
	// two-column format's 1e8 s bound, a trace's clock stays exact.
	maxMahimahiMS = 1e10
	// maxTraceSamples bounds a trace's samples in either format.
	maxTraceSamples = 10_000_000
)

// mahimahiBins turns mahimahi delivery times, in order, into a trace's
// samples: one per 100 ms bin, consecutive bins of the same rate merged
// into one (so a long outage, or a steady link, costs one sample).
type mahimahiBins struct {
	trace   *Trace
	bin     uint64 // the bin being counted
	packets uint64 // deliveries in it so far
	last    uint64 // the latest delivery time
}

// binOf is the bin of a delivery at ms: bin k holds (100k, 100(k+1)], and
// a delivery at 0 counts in bin 0.
func binOf(ms uint64) uint64 {
	if ms == 0 {
		return 0
	}
	return (ms - 1) / mahimahiBinMS
}

func (m *mahimahiBins) add(ms uint64) error {
	if len(m.trace.Time) == 0 {
		// The first delivery: the trace starts at time 0.
		m.trace.Time, m.trace.Mbps = append(m.trace.Time, 0), append(m.trace.Mbps, 0)
	} else if ms < m.last {
		return fmt.Errorf("delivery time %d ms is before the one above it (%d ms)", ms, m.last)
	}
	m.last = ms
	if b := binOf(ms); b != m.bin {
		if err := m.flush(float64((m.bin+1)*mahimahiBinMS), mahimahiBinMS); err != nil {
			return err
		}
		if b > m.bin+1 {
			// Nothing delivered from the end of the bin above to the
			// start of this one.
			if err := m.emit(float64(b*mahimahiBinMS), 0); err != nil {
				return err
			}
		}
		m.bin, m.packets = b, 0
	}
	m.packets++
	return nil
}

// flush ends the bin being counted at end ms, width ms long.
func (m *mahimahiBins) flush(end float64, width uint64) error {
	// Bits per ms are kbit/s: packets·12000 bit / width ms / 1000 = Mbit/s.
	return m.emit(end, float64(m.packets)*mahimahiPacket*8/float64(width)/1000)
}

// emit appends a sample ending at end ms, merging it into the last one
// when the rate is the same.
func (m *mahimahiBins) emit(end, mbps float64) error {
	t := m.trace
	n := len(t.Time)
	if n > 1 && t.Mbps[n-1] == mbps {
		t.Time[n-1] = end / 1000
		return nil
	}
	if n >= maxTraceSamples {
		return fmt.Errorf("too long")
	}
	t.Time, t.Mbps = append(t.Time, end/1000), append(t.Mbps, mbps)
	return nil
}

// finish ends the last bin at the last delivery time, where mahimahi
// starts the trace over.
func (m *mahimahiBins) finish() error {
	if m.last == 0 {
		return fmt.Errorf("its last delivery time is 0 ms: a mahimahi trace repeats after its last time, so it needs one after 0")
	}
	return m.flush(float64(m.last), m.last-m.bin*mahimahiBinMS)
}

// Scale is a copy of t with every bandwidth sample multiplied by f.
func (t *Trace) Scale(f float64) *Trace {
	c := *t
	c.Mbps = make([]float64, len(t.Mbps))
	for i, m := range t.Mbps {
		c.Mbps[i] = m * f
	}
	return &c
}

// ScaleTraces returns every trace once per bandwidth factor, in the order
// of factors. A factor other than 1 tags the trace's name and family
// ("fcc" at 0.5 is family "fcc-x0.5"), so that each regime is reported
// apart: the same networks, slower or faster, are a check on bandwidth
// regimes that the trace sets do not have.
func ScaleTraces(ts []*Trace, factors []float64) []*Trace {
	out := make([]*Trace, 0, len(ts)*len(factors))
	for _, f := range factors {
		tag := ""
		if f != 1 {
			tag = "-x" + strconv.FormatFloat(f, 'g', -1, 64)
		}
		for _, t := range ts {
			c := t
			if f != 1 {
				c = t.Scale(f)
				c.Name += tag
				c.Family += tag
			}
			out = append(out, c)
		}
	}
	return out
}

// LoadTraces reads trace files: each item of spec is a file or a folder
// (every regular file in it, sorted).
func LoadTraces(spec []string) ([]*Trace, error) {
	var files []string
	for _, s := range spec {
		st, err := os.Stat(s)
		if err != nil {
			return nil, fmt.Errorf("traces: %w", err)
		}
		if !st.IsDir() {
			files = append(files, s)
			continue
		}
		entries, err := os.ReadDir(s)
		if err != nil {
			return nil, fmt.Errorf("traces: %w", err)
		}
		var in []string
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") && !strings.EqualFold(e.Name(), "README.md") {
				in = append(in, filepath.Join(s, e.Name()))
			}
		}
		sort.Strings(in)
		files = append(files, in...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("traces: no files in %v", spec)
	}
	traces := make([]*Trace, 0, len(files))
	for _, f := range files {
		t, err := loadTrace(f)
		if err != nil {
			return nil, err
		}
		t.Family = filepath.Base(filepath.Dir(f))
		traces = append(traces, t)
	}
	uniqueNames(traces)
	return traces, nil
}

// maxTraceText bounds the text of one trace file once decompressed: a
// gzip file of a few kilobytes can unpack to terabytes of blank lines.
var maxTraceText int64 = 1 << 30

// loadTrace reads one trace file, plain or gzip-compressed (told by its
// first bytes; trace archives are often kept as .gz). Its name drops a
// .gz suffix.
func loadTrace(path string) (*Trace, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("traces: %w", err)
	}
	defer fh.Close()
	name := filepath.Base(path)
	br := bufio.NewReader(fh)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("trace %s: %w", name, err)
		}
		defer zr.Close()
		name = strings.TrimSuffix(name, ".gz")
		r = &limitedText{r: zr, left: maxTraceText}
	}
	return ParseTrace(r, name)
}

// limitedText reads at most left bytes, then fails: what a trace may
// unpack to.
type limitedText struct {
	r    io.Reader
	left int64
}

func (l *limitedText) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("unpacks to more than %d MiB of text", maxTraceText>>20)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// uniqueNames makes every trace's name its own: a file name that several
// families share becomes family/name (and name#2, … when even that is
// shared), since results, -log files and plots are keyed by the name; two
// sessions under one name had one's log file overwrite the other's.
func uniqueNames(traces []*Trace) {
	count := map[string]int{}
	for _, t := range traces {
		count[t.Name]++
	}
	seen := map[string]int{}
	for _, t := range traces {
		if count[t.Name] > 1 {
			t.Name = t.Family + "/" + t.Name
		}
		seen[t.Name]++
		if n := seen[t.Name]; n > 1 {
			t.Name += "#" + strconv.Itoa(n)
		}
	}
}

// clip shortens s to at most n bytes for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
