// Package cmsd writes and reads the CMSD-Dynamic response header of
// Common Media Server Data (CTA-5006): what a node on the delivery path
// tells the player about itself with each response, such as the highest
// bitrate it suggests (mb) and whether it is under duress (du).
//
// The header is a Structured Field List (RFC 8941): one item per node
// that added an entry, the node's identifier as a string with the keys
// as its parameters, the entry of the node nearest the player last:
//
//	CMSD-Dynamic: "deepcast-home";du, "deepcast-deep";mb=3000;etp=12000
//
// The package is pure (no I/O), for the edges that write the header and
// the player that obeys it.
package cmsd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Header is the response header's name.
const Header = "CMSD-Dynamic"

// Entry is one node's part of CMSD-Dynamic. Zero numbers are not sent.
type Entry struct {
	// Node identifies the node that wrote the entry.
	Node string
	// MaxBitrateKbps (mb) is the highest bitrate, in kbit/s, the node
	// suggests the player take for the sum of what it plays (video and
	// sound): a player keeps to it until a later response says otherwise.
	MaxBitrateKbps int64
	// ThroughputKbps (etp) is the node's estimate, in kbit/s, of the
	// throughput towards the player.
	ThroughputKbps int64
	// RTTMillis (rtt) is the node's estimate of the round trip time to
	// the player; DelayMillis (rd) how long the node took to begin its
	// response.
	RTTMillis, DelayMillis int64
	// Duress (du) says that the node is short of a resource (its egress,
	// here) and the player would help it by asking for less.
	Duress bool
}

// String is e as one list member of the header, with the keys in a fixed
// order. Characters a Structured Field string cannot hold (outside
// printable ASCII) become '?' in the node's name.
func (e Entry) String() string { return string(e.Append(nil)) }

// Append appends e as String gives it.
func (e Entry) Append(b []byte) []byte {
	b = append(b, '"')
	for i := 0; i < len(e.Node); i++ {
		c := e.Node[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	b = append(b, '"')
	if e.Duress {
		b = append(b, ";du"...)
	}
	for _, p := range []struct {
		key string
		v   int64
	}{{"etp", e.ThroughputKbps}, {"mb", e.MaxBitrateKbps}, {"rd", e.DelayMillis}, {"rtt", e.RTTMillis}} {
		if p.v > 0 {
			b = append(b, ';')
			b = append(b, p.key...)
			b = append(b, '=')
			b = strconv.AppendInt(b, min(p.v, maxInteger), 10)
		}
	}
	return b
}

// maxInteger is the largest Structured Field integer (15 digits).
const maxInteger = 999_999_999_999_999

// Errors of Parse, for errors.Is.
var (
	ErrSyntax = errors.New("not a Structured Field list")
	ErrType   = errors.New("a CMSD key with a value of the wrong type")
)

// Parse reads a CMSD-Dynamic field value: the entries in order, the
// nearest node's last. Keys this package does not know are skipped, as
// are list members that are inner lists; a known key with a value of the
// wrong type, or anything that is not a Structured Field list, is an
// error. Several header lines are one list joined by commas.
func Parse(v string) ([]Entry, error) {
	p := parser{s: v}
	var out []Entry
	p.skipSpace()
	if p.done() {
		return nil, nil
	}
	for {
		if p.peek() == '(' {
			if err := p.skipInnerList(); err != nil {
				return nil, err
			}
			if err := p.params(dropParam); err != nil {
				return nil, err
			}
		} else {
			e, err := p.entry()
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		p.skipOWS()
		if p.done() {
			return out, nil
		}
		if p.next() != ',' {
			return nil, p.errorf("want a comma between members")
		}
		p.skipOWS()
		if p.done() {
			return nil, p.errorf("a trailing comma")
		}
	}
}

// Nearest is the entry of the node nearest the player (the last), with
// false when v holds none or does not parse.
func Nearest(v string) (Entry, bool) {
	es, err := Parse(v)
	if err != nil || len(es) == 0 {
		return Entry{}, false
	}
	return es[len(es)-1], true
}

// parser walks one field value; pos never passes len(s).
type parser struct {
	s   string
	pos int
}

func (p *parser) done() bool { return p.pos >= len(p.s) }

func (p *parser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.pos]
}

func (p *parser) next() byte {
	c := p.peek()
	if !p.done() {
		p.pos++
	}
	return c
}

func (p *parser) skipSpace() {
	for p.peek() == ' ' {
		p.pos++
	}
}

func (p *parser) skipOWS() {
	for c := p.peek(); c == ' ' || c == '\t'; c = p.peek() {
		p.pos++
	}
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("cmsd: at byte %d: %s: %w", p.pos, fmt.Sprintf(format, args...), ErrSyntax)
}

// value is a bare item: one of the fields is set by kind.
type value struct {
	kind byte // 'i' integer, 'd' decimal, 's' string, 't' token, 'b' boolean, ':' byte sequence
	i    int64
	s    string
	b    bool
}

// entry reads an item and its parameters.
func (p *parser) entry() (Entry, error) {
	v, err := p.bareItem()
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	if v.kind == 's' || v.kind == 't' {
		e.Node = v.s
	}
	if err := p.params(e.set); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// set stores a known key's value; unknown keys are skipped.
func (e *Entry) set(key string, v value) error {
	var dst *int64
	switch key {
	case "du":
		if v.kind != 'b' {
			return fmt.Errorf("cmsd: du wants a boolean: %w", ErrType)
		}
		e.Duress = v.b
		return nil
	case "etp":
		dst = &e.ThroughputKbps
	case "mb":
		dst = &e.MaxBitrateKbps
	case "rd":
		dst = &e.DelayMillis
	case "rtt":
		dst = &e.RTTMillis
	default:
		return nil
	}
	if v.kind != 'i' || v.i < 0 {
		return fmt.Errorf("cmsd: %s wants a non-negative integer: %w", key, ErrType)
	}
	*dst = v.i
	return nil
}

// params reads the parameters after an item or inner list, handing each
// to take (a key alone is the boolean true).
func (p *parser) params(take func(key string, v value) error) error {
	for p.peek() == ';' {
		p.pos++
		p.skipSpace()
		key, err := p.key()
		if err != nil {
			return err
		}
		v := value{kind: 'b', b: true}
		if p.peek() == '=' {
			p.pos++
			if v, err = p.bareItem(); err != nil {
				return err
			}
		}
		if err := take(key, v); err != nil {
			return err
		}
	}
	return nil
}

// dropParam takes a parameter CMSD has no use for.
func dropParam(string, value) error { return nil }

// skipInnerList reads and drops an inner list with its items'
// parameters.
func (p *parser) skipInnerList() error {
	p.pos++ // '('
	for {
		p.skipSpace()
		if p.peek() == ')' {
			p.pos++
			return nil
		}
		if p.done() {
			return p.errorf("an inner list without its ')'")
		}
		if _, err := p.bareItem(); err != nil {
			return err
		}
		if err := p.params(dropParam); err != nil {
			return err
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return p.errorf("want a space or ')' in an inner list")
		}
	}
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || c >= 'A' && c <= 'Z' }

// key reads a parameter's key.
func (p *parser) key() (string, error) {
	start := p.pos
	if c := p.peek(); !isLCAlpha(c) && c != '*' {
		return "", p.errorf("a key must begin with a lowercase letter or '*'")
	}
	for c := p.peek(); isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*'; c = p.peek() {
		p.pos++
	}
	return p.s[start:p.pos], nil
}

// bareItem reads an integer, decimal, string, token, byte sequence or
// boolean.
func (p *parser) bareItem() (value, error) {
	switch c := p.peek(); {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || isAlpha(c):
		start := p.pos
		// tchar, ':' and '/': printable ASCII but the delimiters.
		for c := p.peek(); c > 0x20 && c < 0x7f && !strings.ContainsRune("\"(),;<=>?@[\\]{}", rune(c)); c = p.peek() {
			p.pos++
		}
		return value{kind: 't', s: p.s[start:p.pos]}, nil
	case c == ':':
		p.pos++
		start := p.pos
		for c := p.peek(); isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '='; c = p.peek() {
			p.pos++
		}
		if p.next() != ':' {
			return value{}, p.errorf("a byte sequence without its closing ':'")
		}
		return value{kind: ':', s: p.s[start : p.pos-1]}, nil
	case c == '?':
		p.pos++
		switch p.next() {
		case '1':
			return value{kind: 'b', b: true}, nil
		case '0':
			return value{kind: 'b'}, nil
		}
		return value{}, p.errorf("a boolean is ?0 or ?1")
	default:
		return value{}, p.errorf("want an item")
	}
}

// number reads an integer (up to 15 digits) or a decimal (up to 12
// digits before the point and 3 after).
func (p *parser) number() (value, error) {
	start := p.pos
	neg := p.peek() == '-'
	if neg {
		p.pos++
	}
	digits, point := 0, -1
	for c := p.peek(); isDigit(c) || c == '.' && point < 0; c = p.peek() {
		if c == '.' {
			point = digits
		} else {
			digits++
		}
		p.pos++
	}
	text := p.s[start:p.pos]
	switch {
	case digits == 0:
		return value{}, p.errorf("a number without digits")
	case point < 0 && digits > 15:
		return value{}, p.errorf("an integer of more than 15 digits")
	case point < 0:
		i, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return value{}, p.errorf("integer %q", text)
		}
		return value{kind: 'i', i: i}, nil
	case point == 0 || point > 12 || digits-point == 0 || digits-point > 3:
		return value{}, p.errorf("decimal %q", text)
	}
	return value{kind: 'd', s: text}, nil
}

// str reads a quoted string with its escapes.
func (p *parser) str() (value, error) {
	p.pos++ // '"'
	var b strings.Builder
	for !p.done() {
		c := p.next()
		switch {
		case c == '"':
			return value{kind: 's', s: b.String()}, nil
		case c == '\\':
			e := p.next()
			if e != '"' && e != '\\' {
				return value{}, p.errorf("a string may escape only '\"' and '\\'")
			}
			b.WriteByte(e)
		case c < 0x20 || c > 0x7e:
			return value{}, p.errorf("a string holds printable ASCII only")
		default:
			b.WriteByte(c)
		}
	}
	return value{}, p.errorf("a string without its closing quote")
}
