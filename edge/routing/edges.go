package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/deepcast/deepcast/media"
)

// Profiles of edges, as in the edges file.
const (
	EnterDeep = "enter-deep"
	BringHome = "bring-home"
)

// Edge is one cache node the router can send viewers to.
type Edge struct {
	Name      string
	URL       *url.URL
	Addresses []netip.Addr // handed out in DNS answers
	Profile   string
	Weight    int
	Subnets   []netip.Prefix // coverage zone (enter-deep)
}

// edgesFile is the YAML shape: a list under "edges".
type edgesFile struct {
	Edges []edgeEntry `yaml:"edges"`
}

type edgeEntry struct {
	Name      string   `yaml:"name"`
	URL       string   `yaml:"url"`
	Addresses []string `yaml:"addresses"`
	Profile   string   `yaml:"profile"`
	Weight    *int     `yaml:"weight"`
	Subnets   []string `yaml:"subnets"`
}

// LoadEdges reads an edges file.
func LoadEdges(path string) ([]*Edge, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("edges file: %w", err)
	}
	edges, err := ParseEdges(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return edges, nil
}

// ParseEdges reads the YAML of an edges file; errors name the entry and
// the field.
func ParseEdges(data []byte) ([]*Edge, error) {
	var f edgesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("edges file: %s", yamlMessage(err))
	}
	if len(f.Edges) == 0 {
		return nil, fmt.Errorf("edges file: no edges (want a list under \"edges:\")")
	}
	seen := map[string]bool{}
	var out []*Edge
	for i, e := range f.Edges {
		where := fmt.Sprintf("edge %d", i+1)
		if e.Name != "" {
			where = fmt.Sprintf("edge %d (%s)", i+1, e.Name)
		}
		bad := func(field, format string, a ...any) error {
			return fmt.Errorf("%s: field %s: %s", where, field, fmt.Sprintf(format, a...))
		}
		if !media.ValidName(e.Name) || len(e.Name) > 64 {
			// The name is the edge's pathway in content steering: HLS
			// allows only these characters in a PATHWAY-ID.
			return nil, bad("name", "required: up to 64 letters, digits, '.', '-' and '_', not starting with '.' (it is the edge's content steering pathway)")
		}
		if seen[e.Name] {
			return nil, bad("name", "%q is used twice", e.Name)
		}
		seen[e.Name] = true
		u, err := url.Parse(strings.TrimRight(e.URL, "/"))
		// Viewers are sent to the URL with an asset's path appended: a
		// query or fragment would land mid-URL, and a password would be
		// handed to every viewer.
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			shown := e.URL
			if err == nil {
				shown = u.Redacted()
			}
			return nil, bad("url", "%q is not an http(s)://host[:port][/path] URL (no user, query or fragment)", shown)
		}
		edge := &Edge{Name: e.Name, URL: u, Profile: e.Profile, Weight: 1}
		if len(e.Addresses) == 0 {
			return nil, bad("addresses", "at least one address is required")
		}
		for _, a := range e.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, bad("addresses", "%q is not an IP address", a)
			}
			edge.Addresses = append(edge.Addresses, ip.Unmap())
		}
		switch e.Profile {
		case EnterDeep, BringHome:
		default:
			return nil, bad("profile", "%q: want %s or %s", e.Profile, EnterDeep, BringHome)
		}
		if e.Weight != nil {
			if *e.Weight < 1 || *e.Weight > 1000 {
				return nil, bad("weight", "%d: want 1 to 1000", *e.Weight)
			}
			edge.Weight = *e.Weight
		}
		for _, s := range e.Subnets {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, bad("subnets", "%q is not a CIDR prefix", s)
			}
			edge.Subnets = append(edge.Subnets, p.Masked())
		}
		if len(edge.Subnets) > 0 && edge.Profile != EnterDeep {
			return nil, bad("subnets", "only enter-deep edges have a coverage zone")
		}
		out = append(out, edge)
	}
	return out, nil
}

// covers reports whether the client is in the edge's coverage zone.
func (e *Edge) covers(client netip.Addr) bool {
	for _, p := range e.Subnets {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// yamlTypes name the Go types of the edges file as its reader knows
// them, for yaml's errors.
var yamlTypes = map[string]string{
	"[]routing.edgeEntry": "a list of edges",
	"routing.edgeEntry":   "an edge (name, url, addresses, ...)",
	"routing.edgesFile":   "an edges file (edges: a list)",
	"[]string":            "a list of strings",
	"float64":             "a number",
	"int":                 "an integer",
	"string":              "a string",
	"bool":                "true or false",
}

var yamlTypeRef = regexp.MustCompile(`(into|in type) (\[\]routing\.edgeEntry|routing\.\w+|\[\]string|float64|int|string|bool)\b`)

// yamlMessage is yaml's error with the Go type names it mentions said as
// the file's shapes ("line 3: cannot unmarshal !!str `x` into a list of
// strings", "line 4: field colour not found in an edge ...").
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return yamlTypeRef.ReplaceAllStringFunc(msg, func(m string) string {
		sub := yamlTypeRef.FindStringSubmatch(m)
		name, ok := yamlTypes[sub[2]]
		if !ok {
			name = "a value"
		}
		if sub[1] == "in type" {
			return "in " + name
		}
		return "into " + name
	})
}
