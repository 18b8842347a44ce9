package learn

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/deepcast/deepcast/player"
)

func testdata(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "..", "testdata"}, parts...)...)
}

// shortSetup is a 12-chunk cut of the envivio video and a few HSDPA
// traces: enough decisions to learn from, fast under -race.
func shortSetup(t *testing.T, traces int) player.SimOptions {
	t.Helper()
	v, err := player.LoadVideo(context.Background(), testdata("videos", "envivio-4s-48.csv"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Chunks = 12
	ts, err := player.LoadTraces([]string{testdata("traces", "hsdpa")})
	if err != nil {
		t.Fatal(err)
	}
	return player.SimOptions{Video: v, Traces: Sample(ts, traces), Pensieve: true}
}

func TestSample(t *testing.T) {
	var ts []*player.Trace
	for range 10 {
		ts = append(ts, &player.Trace{})
	}
	for _, c := range []struct{ n, want int }{{0, 10}, {-1, 10}, {3, 3}, {10, 10}, {20, 10}} {
		got := Sample(ts, c.n)
		if len(got) != c.want || got[0] != ts[0] {
			t.Errorf("Sample(10, %d): %d traces", c.n, len(got))
		}
	}
	if got := Sample(ts, 5); got[1] != ts[2] || got[4] != ts[8] {
		t.Error("Sample(10, 5) is not every other trace")
	}
}

// TestTrainLearnsDeterministically: the same seed gives the same model
// byte for byte, another seed another one, and the fitted policy's
// choices cost far less than random ones on the states it was trained on.
func TestTrainLearnsDeterministically(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opt := Options{Sim: shortSetup(t, 6), Rounds: 2, Epochs: 40, TeacherGrid: time.Second, Seed: 7}
	train := func(seed uint64) (*player.PolicyModel, []byte, Report) {
		o := opt
		o.Seed = seed
		m, rep, err := Train(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(m)
		return m, data, rep
	}
	m, a, rep := train(7)
	_, b, _ := train(7)
	_, c, _ := train(8)
	if string(a) != string(b) {
		t.Error("the same seed gave two models")
	}
	if string(a) == string(c) {
		t.Error("two seeds gave one model")
	}
	if len(rep.Rounds) != 2 || rep.Chosen < 1 || rep.Chosen > 2 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := player.ParsePolicyModel(a); err != nil {
		t.Fatalf("the model does not load: %v", err)
	}
	data, _, err := player.CollectDecisions(ctx, opt.Sim, nil, player.Teacher{Grid: opt.TeacherGrid})
	if err != nil {
		t.Fatal(err)
	}
	var flat []player.Decision
	uniform := 0.0
	for _, ds := range data {
		for _, d := range ds {
			flat = append(flat, d)
			for _, r := range d.Regret {
				uniform += r / float64(len(d.Regret))
			}
		}
	}
	uniform /= float64(len(flat))
	agree, regret := agreement(m, flat)
	t.Logf("on the MPC's states: agreement %.3f, regret %.3f (random choices: %.3f)", agree, regret, uniform)
	if !(regret < uniform/3) || math.IsNaN(regret) {
		t.Errorf("the policy's regret %.3f is not well below random choices' %.3f", regret, uniform)
	}
}

func TestTrainRefusesNothingToLearn(t *testing.T) {
	if _, _, err := Train(context.Background(), Options{}); err == nil {
		t.Error("no video and no traces accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Train(ctx, Options{Sim: shortSetup(t, 2)}); err == nil {
		t.Error("a cancelled training returned a model")
	}
}

// TestScaled: each copy is its trace times one factor within the bounds,
// the same for a seed, and the originals are untouched.
func TestScaled(t *testing.T) {
	orig := &player.Trace{Name: "t", Time: []float64{0, 1, 2}, Mbps: []float64{1, 2, 4}}
	draw := func(seed uint64) []*player.Trace {
		return scaled([]*player.Trace{orig, orig, orig}, [2]float64{0.5, 2.5}, rand.New(rand.NewPCG(seed, seed)))
	}
	a, b := draw(3), draw(3)
	factors := map[float64]bool{}
	for i, c := range a {
		f := c.Mbps[0]
		if f < 0.5 || f > 2.5 || c.Mbps[1] != 2*f || c.Mbps[2] != 4*f || c.Name != "t" || &c.Time[0] != &orig.Time[0] {
			t.Errorf("copy %d: %v", i, c.Mbps)
		}
		if b[i].Mbps[0] != f {
			t.Errorf("copy %d differs for the same seed", i)
		}
		factors[f] = true
	}
	if len(factors) != 3 {
		t.Errorf("factors %v: not one per trace", factors)
	}
	if orig.Mbps[0] != 1 || orig.Mbps[2] != 4 {
		t.Errorf("the original changed: %v", orig.Mbps)
	}
}

// TestTrainVariants: rollout labels and scaled traces train a loadable
// model that records how it was made.
func TestTrainVariants(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, rep, err := Train(ctx, Options{Sim: shortSetup(t, 3), Rounds: 1, Epochs: 5, Rollout: true, Scale: [2]float64{0.5, 2}, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rounds) != 1 || rep.Rounds[0].Decisions != 3*11 {
		t.Errorf("report %+v: want 33 decisions (3 traces × 11 free chunks)", rep.Rounds)
	}
	if m.Training["method"] != "DAgger, labels by rollouts of the hedged MPC" || m.Training["qoe"] != "lin" {
		t.Errorf("training record %v", m.Training)
	}
	if s, ok := m.Training["scale"].([]float64); !ok || s[0] != 0.5 || s[1] != 2 {
		t.Errorf("scale recorded as %v", m.Training["scale"])
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	bad := shortSetup(t, 1)
	bad.QoE = "nope"
	if _, _, err := Train(ctx, Options{Sim: bad}); err == nil {
		t.Error("an unknown QoE model accepted")
	}
}
