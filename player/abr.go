package player

import (
	_ "embed"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// ABR chooses the rendition of the next chunk. An ABR value belongs to one
// session (it may keep history); algorithms hold no package-level state.
type ABR interface {
	Name() string
	Choose(s *State) int
}

// algorithms maps names to constructors: one fresh ABR per session.
var algorithms = map[string]func() (ABR, error){
	"throughput": func() (ABR, error) { return &Throughput{Safety: 0.9}, nil },
	"bba":        func() (ABR, error) { return &BBA{Reservoir: 5, Cushion: 10}, nil },
	"bola":       func() (ABR, error) { return &BOLA{}, nil },
	"robustmpc":  func() (ABR, error) { return &RobustMPC{Horizon: 5}, nil },
	"dynamic":    func() (ABR, error) { return &Dynamic{}, nil },
	DeepcastMPC:  func() (ABR, error) { return &Deepcast{name: DeepcastMPC}, nil },
	DeepcastLearned: func() (ABR, error) {
		m, err := ShippedPolicy()
		if err != nil {
			return nil, err
		}
		return &Learned{Model: m, name: DeepcastLearned}, nil
	},
}

// The names of deepcast's own two ABRs: the hedged MPC (hand-made
// control) and the policy learned by imitating the optimum (model.json,
// made by `deepcast train`). The one that generalised better in the
// cross-validation (fit on some trace families, measured on the others;
// see player/README.md), the hedged MPC, is the one called "deepcast".
const (
	DeepcastMPC     = "deepcast"
	DeepcastLearned = "deepcast-learned"
)

// shippedModel is the learned policy `-abr deepcast-learned` plays,
// trained on all four trace families of testdata (player/README.md says
// how to make it again).
//
//go:embed model.json
var shippedModel []byte

// ShippedPolicy is the learned policy shipped in this build.
var ShippedPolicy = sync.OnceValues(func() (*PolicyModel, error) {
	m, err := ParsePolicyModel(shippedModel)
	if err != nil {
		return nil, fmt.Errorf("shipped model.json: %w", err)
	}
	return m, nil
})

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
	return f()
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
