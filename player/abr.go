package player

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ABR chooses the rendition of the next chunk. An ABR value belongs to one
// session (it may keep history); algorithms hold no package-level state.
type ABR interface {
	Name() string
	Choose(s *State) int
}

// algorithms maps names to constructors: one fresh ABR per session.
var algorithms = map[string]func() ABR{
	"throughput": func() ABR { return &Throughput{Safety: 0.9} },
	"bba":        func() ABR { return &BBA{Reservoir: 5, Cushion: 10} },
	"bola":       func() ABR { return &BOLA{} },
	"robustmpc":  func() ABR { return &RobustMPC{Horizon: 5} },
	"dynamic":    func() ABR { return &Dynamic{} },
	"deepcast":   func() ABR { return &Deepcast{} },
}

// Algorithms lists the ABR names, sorted.
func Algorithms() []string {
	names := make([]string, 0, len(algorithms))
	for n := range algorithms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewABR makes a fresh algorithm by name.
func NewABR(name string) (ABR, error) {
	f, ok := algorithms[strings.ToLower(name)]
	if strings.ToLower(name) == Optimal {
		return nil, fmt.Errorf("ABR %q knows the whole trace in advance: it runs in sim only", name)
	}
	if !ok {
		return nil, fmt.Errorf("unknown ABR %q (have %s)", name, strings.Join(Algorithms(), ", "))
	}
	return f(), nil
}

// ParseABRList reads "all" or "a,b,c", where "all" stands for every
// algorithm a player can run and "optimal" adds the offline optimum
// (sim only): "all,optimal".
func ParseABRList(spec string) ([]string, error) {
	if spec == "" || spec == "all" {
		return Algorithms(), nil
	}
	var out []string
	add := func(n string) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for n := range strings.SplitSeq(spec, ",") {
		n = strings.TrimSpace(strings.ToLower(n))
		switch n {
		case "all":
			for _, a := range Algorithms() {
				add(a)
			}
			continue
		case Optimal:
			add(n)
			continue
		}
		if _, err := NewABR(n); err != nil {
			return nil, err
		}
		add(n)
	}
	return out, nil
}
