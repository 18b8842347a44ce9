package player

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// tinyModel is a valid model whose score is w·features (one layer).
func tinyModel(w []float64) *PolicyModel {
	m := &PolicyModel{Format: PolicyFormat, Features: append([]string(nil), PolicyFeatures...),
		Mean: make([]float64, len(PolicyFeatures)), Std: make([]float64, len(PolicyFeatures)),
		Layers: []PolicyLayer{{W: [][]float64{w}, B: []float64{0}}}}
	for i := range m.Std {
		m.Std[i] = 1
	}
	return m
}

func TestPolicyModelCheck(t *testing.T) {
	n := len(PolicyFeatures)
	cases := []struct {
		name  string
		edit  func(m *PolicyModel)
		error string
	}{
		{"valid", func(*PolicyModel) {}, ""},
		{"format", func(m *PolicyModel) { m.Format = "other/1" }, "format"},
		{"features", func(m *PolicyModel) { m.Features = m.Features[1:] }, "features"},
		{"feature order", func(m *PolicyModel) { m.Features[0], m.Features[1] = m.Features[1], m.Features[0] }, "features"},
		{"mean", func(m *PolicyModel) { m.Mean = m.Mean[1:] }, "mean"},
		{"no layers", func(m *PolicyModel) { m.Layers = nil }, "no layers"},
		{"row width", func(m *PolicyModel) { m.Layers[0].W[0] = m.Layers[0].W[0][1:] }, "inputs"},
		{"biases", func(m *PolicyModel) { m.Layers[0].B = nil }, "biases"},
		{"two outputs", func(m *PolicyModel) {
			m.Layers[0].W = append(m.Layers[0].W, make([]float64, n))
			m.Layers[0].B = append(m.Layers[0].B, 0)
		}, "outputs"},
		{"zero std", func(m *PolicyModel) { m.Std[3] = 0 }, "std"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := tinyModel(make([]float64, n))
			c.edit(m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParsePolicyModel(data)
			switch {
			case c.error == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.error != "" && (err == nil || !strings.Contains(err.Error(), c.error)):
				t.Fatalf("error %v, want one about %q", err, c.error)
			}
		})
	}
	// JSON cannot carry NaN, but a model built in code can.
	m := tinyModel(make([]float64, n))
	m.Layers[0].W[0][2] = math.NaN()
	if err := m.Check(); err == nil {
		t.Fatal("a NaN weight passed")
	}
}

func FuzzParsePolicyModel(f *testing.F) {
	data, _ := json.Marshal(tinyModel(make([]float64, len(PolicyFeatures))))
	f.Add(data)
	f.Add([]byte(`{"format":"deepcast-abr-policy/1","layers":[{"w":[[1]],"b":[1]}]}`))
	f.Add([]byte(`{`))
	rows := [][]float64{make([]float64, len(PolicyFeatures)), make([]float64, len(PolicyFeatures))}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParsePolicyModel(data)
		if err != nil {
			return
		}
		// A model that passed its check must score without panicking.
		if q := m.Best(rows); q < 0 || q >= len(rows) {
			t.Fatalf("best %d of %d", q, len(rows))
		}
	})
}

// TestLearnedFollowsItsScores: a policy that scores by one feature plays
// what that feature ranks first, whatever the ladder.
func TestLearnedFollowsItsScores(t *testing.T) {
	v := loadEnvivio(t)
	idx := func(name string) int {
		for i, f := range PolicyFeatures {
			if f == name {
				return i
			}
		}
		t.Fatalf("no feature %s", name)
		return -1
	}
	top := make([]float64, len(PolicyFeatures))
	top[idx("bitrate_mbps")] = 1
	low := make([]float64, len(PolicyFeatures))
	low[idx("bitrate_mbps")] = -1
	mpc := make([]float64, len(PolicyFeatures))
	mpc[idx("mpc_same")] = 1
	for _, c := range []struct {
		name string
		w    []float64
		want func(r Result, hedged Result) bool
	}{
		{"highest", top, func(r, _ Result) bool { return math.Abs(r.MeanBitrate-v.Bitrates[len(v.Bitrates)-1]) < 1e-6 }},
		{"lowest", low, func(r, _ Result) bool { return math.Abs(r.MeanBitrate-v.Bitrates[0]) < 1e-6 }},
		{"the mpc's", mpc, func(r, h Result) bool { return r.QoE == h.QoE && r.Switches == h.Switches }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := stepTrace([2]float64{0, 3}, [2]float64{60, 0.6}, [2]float64{120, 5})
			cfg := DefaultConfig()
			cfg.StartRendition = 0
			r := runSim(t, v, tr, &Learned{Model: tinyModel(c.w)}, cfg)
			r.MeanBitrate = (r.MeanBitrate*float64(r.Chunks) - v.Bitrates[0]) / float64(r.Chunks-1) // the first chunk was forced
			h := runSim(t, v, tr, &Deepcast{unprimed: true}, cfg)
			if !c.want(r, h) {
				t.Fatalf("%s: mean %.0f kbit/s, QoE %.2f (the hedged MPC: %.2f)", c.name, r.MeanBitrate, r.QoE, h.QoE)
			}
		})
	}
}

// TestFeaturesAreFinite: every feature of every state of real sessions is
// a finite number, and the inputs are the documented ones.
func TestFeaturesAreFinite(t *testing.T) {
	v := loadEnvivio(t)
	traces, err := LoadTraces([]string{testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	decisions, _, err := CollectDecisions(context.Background(),
		SimOptions{Video: v, Traces: traces[:3], Pensieve: true}, nil, Teacher{Grid: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, ds := range decisions {
		if len(ds) != PensieveChunks-1 {
			t.Fatalf("%d decisions, want %d", len(ds), PensieveChunks-1)
		}
		for _, d := range ds {
			if len(d.Features) != len(v.Bitrates) || len(d.Regret) != len(v.Bitrates) || d.Regret[d.Best] != 0 {
				t.Fatalf("decision shape: %d rows, regret %v, best %d", len(d.Features), d.Regret, d.Best)
			}
			for q, f := range d.Features {
				if len(f) != len(PolicyFeatures) {
					t.Fatalf("%d features", len(f))
				}
				for i, x := range f {
					if math.IsNaN(x) || math.IsInf(x, 0) {
						t.Fatalf("%s of rendition %d is %v", PolicyFeatures[i], q, x)
					}
				}
				if d.Regret[q] < 0 {
					t.Fatalf("negative regret %v", d.Regret)
				}
			}
		}
	}
}

// TestTeacherAgreesWithTheOptimum: labelling the first free decision of a
// Pensieve session plans, over every first rendition, the same dynamic
// program sim's optimum runs, so the best label's value is the optimum's.
func TestTeacherAgreesWithTheOptimum(t *testing.T) {
	v, traces, qoe, opt := pensieveSetup(t, "fcc")
	for _, tr := range traces[:4] {
		cfg, link := simSetup(opt, tr)
		m := newOptModel(v, qoe, cfg)
		_, want, err := planOptimal(context.Background(), m, *link, 500*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got float64
		tc := &teacher{ctx: context.Background(), link: link, teach: Teacher{Grid: 500 * time.Millisecond}, model: m}
		probe := abrFunc(func(s *State) int {
			if s.Chunk == 1 {
				start := optState{link: *link, buffer: s.Buffer, last: s.Last}
				d, err := tc.label(s, len(v.Bitrates))
				if err != nil {
					t.Fatal(err)
				}
				first, _ := m.step(context.Background(), &start, 1, d.Best)
				_, got, _ = planFrom(context.Background(), m, first, 2, 500*time.Millisecond, nil)
			}
			return 0
		})
		s := &Session{Video: v, ABR: probe, QoE: qoe, Clock: link, Fetcher: link, Config: cfg}
		if _, err := s.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: the teacher's best is worth %.6f, the optimum %.6f", tr.Name, got, want)
		}
	}
}

// abrFunc is an ABR made of a function.
type abrFunc func(*State) int

func (abrFunc) Name() string          { return "func" }
func (f abrFunc) Choose(s *State) int { return f(s) }

// TestShippedPolicy: the model in the repository loads, is small, says how
// it was made, and plays far better than a throughput rule on HSDPA.
func TestShippedPolicy(t *testing.T) {
	m, err := ShippedPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if len(shippedModel) > 2<<20 {
		t.Errorf("model.json is %d bytes, over 2 MB", len(shippedModel))
	}
	for _, k := range []string{"method", "seed", "traces", "video", "qoe"} {
		if _, ok := m.Training[k]; !ok {
			t.Errorf("model.json's training record has no %s", k)
		}
	}
	v := loadEnvivio(t)
	traces, err := LoadTraces([]string{testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Pensieve: true,
		Algorithms: []string{"throughput", "bba", DeepcastLearned}})
	if err != nil {
		t.Fatal(err)
	}
	mean := map[string]float64{}
	for _, s := range Summarize(res) {
		mean[s.ABR] = s.MeanQoE
	}
	if !(mean[DeepcastLearned] > 1.2*max(mean["throughput"], mean["bba"])) {
		t.Errorf("mean QoE on hsdpa: %v", mean)
	}
}

// TestRolloutIsTheMPCSession: the rollout teacher's value of the hedged
// MPC's own choice is what the MPC's session then scores, exactly.
func TestRolloutIsTheMPCSession(t *testing.T) {
	v, traces, qoe, opt := pensieveSetup(t, "hsdpa")
	for _, tr := range traces[:4] {
		cfg, link := simSetup(opt, tr)
		m := newOptModel(v, qoe, cfg)
		tc := &teacher{ctx: context.Background(), link: link, teach: Teacher{Rollout: true}, model: m}
		var predicted float64
		probe := abrFunc(func(s *State) int {
			_, q := tc.feat.features(s)
			if s.Chunk == 1 {
				start := optState{link: *link, buffer: s.Buffer, last: s.Last}
				first, err := m.step(context.Background(), &start, 1, q)
				if err != nil {
					t.Fatal(err)
				}
				if predicted, err = tc.rollout(s, first); err != nil {
					t.Fatal(err)
				}
			}
			return q
		})
		s := &Session{Video: v, ABR: probe, QoE: qoe, Clock: link, Fetcher: link, Config: cfg}
		res, err := s.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		direct := runSimCfg(t, v, tr, &Deepcast{unprimed: true}, opt)
		if math.Abs(predicted-res.QoE) > 1e-9 || math.Abs(res.QoE-direct) > 1e-9 {
			t.Errorf("%s: rollout %.6f, the session %.6f, the MPC alone %.6f", tr.Name, predicted, res.QoE, direct)
		}
	}
}

// runSimCfg plays abr on tr as sim does with opt and returns the QoE.
func runSimCfg(t *testing.T, v *Video, tr *Trace, abr ABR, opt SimOptions) float64 {
	t.Helper()
	cfg, link := simSetup(opt, tr)
	qoe, _ := NewQoE("lin")
	s := &Session{Video: v, ABR: abr, QoE: qoe, Clock: link, Fetcher: link, Config: cfg}
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res.QoE
}

// pensieveSetup is the envivio video, a trace family, QoE_lin and sim's
// Pensieve mode.
func pensieveSetup(t *testing.T, family string) (*Video, []*Trace, QoEModel, SimOptions) {
	t.Helper()
	v := loadEnvivio(t)
	traces, err := LoadTraces([]string{testdata("traces", family)})
	if err != nil {
		t.Fatal(err)
	}
	qoe, _ := NewQoE("lin")
	return v, traces, qoe, SimOptions{Video: v, Pensieve: true}
}
