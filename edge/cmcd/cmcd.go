// Package cmcd reads Common Media Client Data (CTA-5004): the state a
// player reports with each request it makes (its buffer, the bitrate it
// chose, the throughput it measures, whether it stalled), as a CMCD query
// argument or in four CMCD-* headers. A cache node that reads it sees its
// viewers' experience without a separate analytics beacon, and can tell
// which segment a player will want next.
package cmcd

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Data is what one request reported. An integer key the player did not
// send is -1; a string or token it did not send is "".
type Data struct {
	Bitrate      int64   // br: encoded bitrate of the object, kbit/s
	Buffer       int64   // bl: buffer length, ms
	Starved      bool    // bs: the buffer ran dry since the previous request
	Duration     int64   // d: playback duration of the object, ms
	Deadline     int64   // dl: time until the buffer runs dry at this rate, ms
	Throughput   int64   // mtp: measured throughput, kbit/s
	RequestedMax int64   // rtp: the most the player wants this object to take, kbit/s
	TopBitrate   int64   // tb: highest bitrate the player may choose, kbit/s
	Rate         float64 // pr: playback rate (0: not sent, which means 1)
	Startup      bool    // su: wanted urgently, for a start or a rebuffer
	Version      int64   // v: CMCD version (1 when not sent)
	Object       string  // ot: m, a, v, av, i, c, tt, k or o
	Format       string  // sf: d (DASH), h (HLS), s (Smooth), o
	StreamType   string  // st: v (VOD), l (live)
	Session      string  // sid
	Content      string  // cid
	Next         string  // nor: the next object's relative URL
	NextRange    string  // nrr: the next request's byte range
}

// Empty is Data with nothing reported.
func Empty() Data {
	return Data{Bitrate: -1, Buffer: -1, Duration: -1, Deadline: -1, Throughput: -1, RequestedMax: -1, TopBitrate: -1, Version: 1}
}

// Headers are the headers CTA-5004 spreads its keys over, in the
// canonical form net/http gives them.
var Headers = []string{"Cmcd-Request", "Cmcd-Object", "Cmcd-Status", "Cmcd-Session"}

// maxLen bounds what is parsed: a full CMCD list is a few hundred bytes.
const maxLen = 4096

// maxString is the longest string value kept (sid and cid are limited to
// 64 characters by the specification; nor is a URL).
const maxString = 1024

var (
	errTooLong = errors.New("longer than 4096 bytes")
	errSyntax  = errors.New("syntax error")
)

// Parse reads one CMCD list ("bl=21300,br=3200,bs,ot=v,sid=\"…\"") into d,
// over what d already holds. Keys it does not know (custom keys, those of
// later versions) are skipped; a known key with a value of the wrong type,
// or a list that does not follow the grammar, is an error, and d may then
// hold part of the list.
func Parse(d *Data, list string) error {
	if len(list) > maxLen {
		return errTooLong
	}
	for i := 0; i < len(list); {
		i = skipSpace(list, i)
		if i == len(list) {
			break
		}
		start := i
		for i < len(list) && isKeyByte(list[i]) {
			i++
		}
		key := list[start:i]
		if key == "" {
			return fmt.Errorf("%w at byte %d: a key expected", errSyntax, start)
		}
		var value string
		quoted, present := false, false
		if i < len(list) && list[i] == '=' {
			present = true
			i++
			if i < len(list) && list[i] == '"' {
				s, next, err := unquote(list, i)
				if err != nil {
					return fmt.Errorf("key %s: %w", key, err)
				}
				value, quoted, i = s, true, next
			} else {
				vs := i
				for i < len(list) && list[i] != ',' {
					i++
				}
				value = strings.TrimSpace(list[vs:i])
			}
		}
		i = skipSpace(list, i)
		if i < len(list) {
			if list[i] != ',' {
				return fmt.Errorf("%w at byte %d: a comma expected after key %s", errSyntax, i, key)
			}
			i++
		}
		if err := d.set(key, value, present, quoted); err != nil {
			return fmt.Errorf("key %s: %w", key, err)
		}
	}
	return nil
}

// set stores one key's value.
func (d *Data) set(key, value string, present, quoted bool) error {
	switch key {
	case "br", "bl", "d", "dl", "mtp", "rtp", "tb", "v":
		if !present || quoted {
			return errors.New("an integer expected")
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("an integer expected, not %.20q", value)
		}
		*d.integer(key) = n
	case "pr":
		if !present || quoted {
			return errors.New("a decimal expected")
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || !(f >= 0 && f <= 100) {
			return fmt.Errorf("a decimal playback rate expected, not %.20q", value)
		}
		d.Rate = f
	case "bs", "su":
		// A boolean is true by its key alone and false by its absence;
		// "=true" and "=false" are tolerated, as some players send them.
		b := true
		if present {
			switch value {
			case "true":
			case "false":
				b = false
			default:
				return fmt.Errorf("a boolean expected, not %.20q", value)
			}
		}
		if key == "bs" {
			d.Starved = b
		} else {
			d.Startup = b
		}
	case "ot", "sf", "st":
		if !present || quoted || !isToken(value) {
			return fmt.Errorf("a token expected, not %.20q", value)
		}
		switch key {
		case "ot":
			d.Object = value
		case "sf":
			d.Format = value
		default:
			d.StreamType = value
		}
	case "sid", "cid", "nor", "nrr":
		if !present || !quoted {
			return errors.New("a quoted string expected")
		}
		if len(value) > maxString {
			return fmt.Errorf("a string of %d bytes: at most %d", len(value), maxString)
		}
		switch key {
		case "sid":
			d.Session = value
		case "cid":
			d.Content = value
		case "nor":
			d.Next = value
		default:
			d.NextRange = value
		}
	}
	return nil
}

func (d *Data) integer(key string) *int64 {
	switch key {
	case "br":
		return &d.Bitrate
	case "bl":
		return &d.Buffer
	case "d":
		return &d.Duration
	case "dl":
		return &d.Deadline
	case "mtp":
		return &d.Throughput
	case "rtp":
		return &d.RequestedMax
	case "tb":
		return &d.TopBitrate
	default:
		return &d.Version
	}
}

// unquote reads the quoted string that starts at s[i] ('"'), where a
// backslash escapes the next byte, and returns it and the index after its
// closing quote.
func unquote(s string, i int) (string, int, error) {
	i++ // the opening quote
	var b strings.Builder
	plain := i
	for i < len(s) {
		switch s[i] {
		case '"':
			if b.Len() == 0 {
				return s[plain:i], i + 1, nil // no escapes: no copy
			}
			b.WriteString(s[plain:i])
			return b.String(), i + 1, nil
		case '\\':
			if i+1 == len(s) {
				return "", 0, errors.New("a string ends in a backslash")
			}
			b.WriteString(s[plain:i])
			b.WriteByte(s[i+1])
			i += 2
			plain = i
		default:
			i++
		}
	}
	return "", 0, errors.New("a string without its closing quote")
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// isKeyByte accepts the bytes of CTA-5004's keys and of custom keys
// ("com.example-myKey").
func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isKeyByte(s[i]) {
			return false
		}
	}
	return true
}

// FromRequest reads what a request reported: the CMCD argument of its
// raw (escaped) query and the CMCD-* headers of h (nil: none). It reports
// false when the request carried no CMCD, and an error when what it
// carried is malformed.
func FromRequest(rawQuery string, h http.Header) (Data, bool, error) {
	d := Empty()
	found := false
	if q, ok := queryArgument(rawQuery, "CMCD"); ok {
		found = true
		s, err := unescape(q)
		if err != nil {
			return d, true, fmt.Errorf("CMCD query argument: %w", err)
		}
		if err := Parse(&d, s); err != nil {
			return d, true, fmt.Errorf("CMCD query argument: %w", err)
		}
	}
	for _, name := range Headers {
		for _, v := range h[name] {
			found = true
			if err := Parse(&d, v); err != nil {
				return d, true, fmt.Errorf("%s header: %w", name, err)
			}
		}
	}
	return d, found, nil
}

// unescape decodes a query value's percent escapes (and '+' as a space,
// as url.QueryUnescape does) in one pass into a buffer on the stack: it
// runs for every request a player sends, where url.QueryUnescape took
// most of the time of reading the list.
func unescape(q string) (string, error) {
	if !strings.ContainsAny(q, "%+") {
		return q, nil
	}
	if len(q) > 3*maxLen {
		return "", errTooLong
	}
	var stack [1024]byte
	b := stack[:0]
	for i := 0; i < len(q); i++ {
		switch c := q[i]; c {
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return "", url.EscapeError(q[i:min(i+3, len(q))])
			}
			b = append(b, unhex(q[i+1])<<4|unhex(q[i+2]))
			i += 2
		case '+':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	default:
		return c - '0'
	}
}

// queryArgument returns the escaped value of the first argument name in
// raw, without parsing the rest of it.
func queryArgument(raw, name string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// ObjectLabel is ot as a metric label: the specification's tokens, "none"
// when the player sent none, "other" for anything else (labels a client
// cannot multiply).
func ObjectLabel(ot string) string {
	switch ot {
	case "m", "a", "v", "av", "i", "c", "tt", "k", "o":
		return ot
	case "":
		return "none"
	default:
		return "other"
	}
}
