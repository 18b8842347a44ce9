// Package learn trains deepcast's learned ABR policy by imitating the
// offline optimum, as Comyco does: the optimum (player's dynamic program,
// which knows the whole trace) labels every state a session reaches with
// the rendition it would play from there, and a small network learns to
// pick that rendition from what a player can see. The states come from
// the policy's own sessions (DAgger), so it learns to recover from its
// own mistakes rather than only to follow the optimum's path.
//
// Training is deterministic for a seed: the data is collected in trace
// order whatever the parallelism, and the network's initial weights and
// batch order come from that seed.
package learn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/deepcast/deepcast/player"
)

// Options shape a training run.
type Options struct {
	// Sim holds the video, the training traces, the QoE model and the
	// simulator's assumptions (Pensieve mode or not).
	Sim player.SimOptions
	// Hidden are the hidden layers' widths ({32, 16} when empty).
	Hidden []int
	// Rounds of DAgger: collect, then fit (4 when zero).
	Rounds int
	// Epochs over the aggregated data per round (30 when zero).
	Epochs int
	// Batch is decisions per gradient step (128 when zero).
	Batch int
	// LearningRate of Adam (0.003 when zero).
	LearningRate float64
	// TeacherGrid is the optimum's buffer grid (500 ms when zero): coarser
	// than sim's, since it labels tens of thousands of states.
	TeacherGrid time.Duration
	// Rollout labels with the hedged MPC's continuation instead of the
	// optimum's (see player.Teacher).
	Rollout bool
	Seed    uint64
	// Scale, when its two bounds are set, multiplies each training trace's
	// bandwidth by a factor drawn (log-uniformly, from Seed) between them,
	// so the policy sees links faster and slower than the traces' own
	// family, relative to the ladder, and does not learn one family's
	// regime.
	Scale [2]float64
	// Progress reports each stage ("collect 2/4", "fit 2/4") and its
	// progress.
	Progress func(stage string, done, total int)
}

// Round is what one DAgger round measured.
type Round struct {
	// MeanQoE of the sessions that collected this round's data: the
	// previous round's policy (the hedged MPC for round 1).
	MeanQoE   float64
	Decisions int     // aggregated so far
	Loss      float64 // mean loss after fitting (expected regret + a little cross-entropy)
	Agreement float64 // share of decisions where the fitted policy picks the optimum's choice
	Regret    float64 // mean regret of the fitted policy's choices on the data
}

// Report is how training went.
type Report struct {
	Rounds []Round
	// Chosen is the round whose policy is returned: the one whose own
	// sessions scored best on the training traces (0: the last round's,
	// never evaluated).
	Chosen  int
	Elapsed time.Duration
	// StartQoE is the mean QoE of the first round's sessions, played by
	// the hedged MPC the policy starts from.
	StartQoE float64
}

// Train runs DAgger and returns the policy whose sessions scored best on
// the training traces.
func Train(ctx context.Context, opt Options) (*player.PolicyModel, Report, error) {
	start := time.Now()
	if len(opt.Sim.Traces) == 0 || opt.Sim.Video == nil {
		return nil, Report{}, errors.New("train: a video and traces are required")
	}
	defaults(&opt)
	qoe, err := player.NewQoE(opt.Sim.QoE)
	if err != nil {
		return nil, Report{}, fmt.Errorf("train: %w", err)
	}
	progress := func(stage string) func(int, int) {
		return func(d, t int) {
			if opt.Progress != nil {
				opt.Progress(stage, d, t)
			}
		}
	}
	rng := rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15))
	if opt.Scale[0] > 0 && opt.Scale[1] >= opt.Scale[0] {
		opt.Sim.Traces = scaled(opt.Sim.Traces, opt.Scale, rng)
	}
	var data []player.Decision
	var net *network
	var model *player.PolicyModel
	var rep Report
	bestQoE := math.Inf(-1)
	var bestModel *player.PolicyModel
	for round := 1; round <= opt.Rounds+1; round++ {
		sim := opt.Sim
		last := round > opt.Rounds
		if last {
			sim.Progress = progress("evaluate")
		} else {
			sim.Progress = progress(fmt.Sprintf("collect %d/%d", round, opt.Rounds))
		}
		var perTrace [][]player.Decision
		var scores []float64
		var err error
		if last {
			// The last policy is only evaluated: no labels needed.
			scores, err = policyQoE(ctx, sim, model)
		} else {
			perTrace, scores, err = player.CollectDecisions(ctx, sim, model, player.Teacher{Grid: opt.TeacherGrid, Rollout: opt.Rollout})
		}
		if err != nil {
			return nil, rep, fmt.Errorf("train: round %d: %w", round, err)
		}
		mean := 0.0
		for _, s := range scores {
			mean += s / float64(len(scores))
		}
		if round == 1 {
			rep.StartQoE = mean
		}
		if round > 1 {
			// These sessions were the previous round's policy's.
			rep.Rounds[round-2].MeanQoE = mean
			if mean > bestQoE {
				bestQoE, bestModel, rep.Chosen = mean, model, round-1
			}
		}
		if last {
			break
		}
		for _, d := range perTrace {
			data = append(data, d...)
		}
		if len(data) == 0 {
			return nil, rep, errors.New("train: no decisions (is the video longer than one chunk?)")
		}
		if net == nil {
			net = newNetwork(data, opt.Hidden, rng)
		}
		loss := net.fit(ctx, data, opt, rng, progress(fmt.Sprintf("fit %d/%d", round, opt.Rounds)))
		if err := ctx.Err(); err != nil {
			return nil, rep, err
		}
		model = net.model()
		agree, regret := agreement(model, data)
		rep.Rounds = append(rep.Rounds, Round{Decisions: len(data), Loss: loss, Agreement: agree, Regret: regret})
	}
	rep.Elapsed = time.Since(start)
	bestModel.Training = map[string]any{
		"method": map[bool]string{false: "DAgger imitation of the offline optimum", true: "DAgger, labels by rollouts of the hedged MPC"}[opt.Rollout], "seed": opt.Seed, "rounds": opt.Rounds,
		"chosen_round": rep.Chosen, "epochs": opt.Epochs, "traces": len(opt.Sim.Traces), "video": opt.Sim.Video.Name,
		"qoe": qoe.Name(), "pensieve": opt.Sim.Pensieve, "teacher_grid_ms": opt.TeacherGrid.Milliseconds(),
		"train_mean_qoe": bestQoE, "scale": opt.Scale[:],
	}
	return bestModel, rep, nil
}

// policyQoE is each training trace's QoE under model.
func policyQoE(ctx context.Context, sim player.SimOptions, model *player.PolicyModel) ([]float64, error) {
	sim.Algorithms = []string{"policy"}
	sim.Policies = map[string]*player.PolicyModel{"policy": model}
	sim.KeepLogs = false
	res, err := player.Simulate(ctx, sim)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(res))
	for i, r := range res {
		out[i] = r.QoE
	}
	return out, nil
}

func defaults(o *Options) {
	if len(o.Hidden) == 0 {
		o.Hidden = []int{32, 16}
	}
	if o.Rounds <= 0 {
		o.Rounds = 4
	}
	if o.Epochs <= 0 {
		o.Epochs = 30
	}
	if o.Batch <= 0 {
		o.Batch = 128
	}
	if o.LearningRate <= 0 {
		o.LearningRate = 0.003
	}
	if o.TeacherGrid <= 0 {
		o.TeacherGrid = 500 * time.Millisecond
	}
}

// agreement is the share of decisions where m picks the optimum's
// choice, and the mean regret of m's choices.
func agreement(m *player.PolicyModel, data []player.Decision) (float64, float64) {
	same := 0
	regret := 0.0
	for _, d := range data {
		bq := m.Best(d.Features)
		if bq == d.Best {
			same++
		}
		regret += d.Regret[bq]
	}
	return float64(same) / float64(len(data)), regret / float64(len(data))
}

// network is the scorer being fitted: tanh hidden layers, one linear
// output, over standardised features.
type network struct {
	mean, std []float64
	w         []*mat.Dense // w[l] is out × in
	b         [][]float64
	// Adam's moments, shaped as w and b.
	mw, vw []*mat.Dense
	mb, vb [][]float64
	step   int
}

func newNetwork(data []player.Decision, hidden []int, rng *rand.Rand) *network {
	nf := len(player.PolicyFeatures)
	n := &network{mean: make([]float64, nf), std: make([]float64, nf)}
	rows := 0
	for _, d := range data {
		for _, f := range d.Features {
			for i, v := range f {
				n.mean[i] += v
			}
			rows++
		}
	}
	for i := range n.mean {
		n.mean[i] /= float64(rows)
	}
	for _, d := range data {
		for _, f := range d.Features {
			for i, v := range f {
				n.std[i] += (v - n.mean[i]) * (v - n.mean[i])
			}
		}
	}
	for i := range n.std {
		// A feature that never varies in the data keeps a unit scale.
		n.std[i] = math.Max(math.Sqrt(n.std[i]/float64(rows)), 1e-3)
	}
	sizes := append(append([]int{nf}, hidden...), 1)
	for l := 1; l < len(sizes); l++ {
		in, out := sizes[l-1], sizes[l]
		w := mat.NewDense(out, in, nil)
		scale := math.Sqrt(1 / float64(in)) // Xavier-like for tanh
		for r := range out {
			for c := range in {
				w.Set(r, c, rng.NormFloat64()*scale)
			}
		}
		n.w = append(n.w, w)
		n.b = append(n.b, make([]float64, out))
		n.mw = append(n.mw, mat.NewDense(out, in, nil))
		n.vw = append(n.vw, mat.NewDense(out, in, nil))
		n.mb = append(n.mb, make([]float64, out))
		n.vb = append(n.vb, make([]float64, out))
	}
	return n
}

// model is the network as a player.PolicyModel.
func (n *network) model() *player.PolicyModel {
	m := &player.PolicyModel{Format: player.PolicyFormat, Features: append([]string(nil), player.PolicyFeatures...),
		Mean: append([]float64(nil), n.mean...), Std: append([]float64(nil), n.std...)}
	for l, w := range n.w {
		r, c := w.Dims()
		layer := player.PolicyLayer{W: make([][]float64, r), B: append([]float64(nil), n.b[l]...)}
		for i := range r {
			layer.W[i] = make([]float64, c)
			for j := range c {
				layer.W[i][j] = w.At(i, j)
			}
		}
		m.Layers = append(m.Layers, layer)
	}
	return m
}

// fit runs the epochs over data with Adam and returns the last epoch's
// mean loss.
func (n *network) fit(ctx context.Context, data []player.Decision, opt Options, rng *rand.Rand, progress func(int, int)) float64 {
	order := make([]int, len(data))
	for i := range order {
		order[i] = i
	}
	loss := 0.0
	for epoch := range opt.Epochs {
		if ctx.Err() != nil {
			return loss
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		loss = 0
		for at := 0; at < len(order); at += opt.Batch {
			batch := order[at:min(at+opt.Batch, len(order))]
			loss += n.batchStep(data, batch, opt.LearningRate) * float64(len(batch))
		}
		loss /= float64(len(order))
		progress(epoch+1, opt.Epochs)
	}
	return loss
}

// batchStep does one Adam step on the decisions of batch and returns
// their mean loss (expected regret plus the cross-entropy share) before
// the step.
func (n *network) batchStep(data []player.Decision, batch []int, lr float64) float64 {
	nf := len(n.mean)
	rows := 0
	for _, i := range batch {
		rows += len(data[i].Features)
	}
	x := mat.NewDense(rows, nf, nil)
	r := 0
	for _, i := range batch {
		for _, f := range data[i].Features {
			for j, v := range f {
				x.Set(r, j, (v-n.mean[j])/n.std[j])
			}
			r++
		}
	}
	// Forward: acts[l] is layer l's input.
	acts := []*mat.Dense{x}
	for l, w := range n.w {
		out, _ := w.Dims()
		z := mat.NewDense(rows, out, nil)
		z.Mul(acts[l], w.T())
		last := l == len(n.w)-1
		bias := n.b[l]
		z.Apply(func(_, j int, v float64) float64 {
			v += bias[j]
			if !last {
				v = math.Tanh(v)
			}
			return v
		}, z)
		acts = append(acts, z)
	}
	scores := acts[len(acts)-1]
	// Softmax over each decision's candidates. The loss is the expected
	// regret Σ p·regret (QoE the policy leaves on the table, stalls
	// weighing what they cost) plus a little cross-entropy towards the
	// optimum's choice, which keeps the scores from flattening where all
	// regrets are small. Its gradient by the scores is
	// p·(regret − Σ p·regret) + ce·(p − onehot), over the batch.
	grad := mat.NewDense(rows, 1, nil)
	loss := 0.0
	r = 0
	p := make([]float64, 0, 16)
	for _, i := range batch {
		d := &data[i]
		k := len(d.Features)
		top := math.Inf(-1)
		for q := range k {
			top = math.Max(top, scores.At(r+q, 0))
		}
		sum := 0.0
		p = p[:0]
		for q := range k {
			e := math.Exp(scores.At(r+q, 0) - top)
			p = append(p, e)
			sum += e
		}
		expected := 0.0
		for q := range k {
			p[q] /= sum
			expected += p[q] * d.Regret[q]
		}
		loss += expected - crossEntropyWeight*math.Log(math.Max(p[d.Best], 1e-12))
		for q := range k {
			g := p[q]*(d.Regret[q]-expected) + crossEntropyWeight*p[q]
			if q == d.Best {
				g -= crossEntropyWeight
			}
			grad.Set(r+q, 0, g/float64(len(batch)))
		}
		r += k
	}
	// Backward.
	n.step++
	delta := grad
	for l := len(n.w) - 1; l >= 0; l-- {
		in := acts[l]
		out, inDim := n.w[l].Dims()
		gw := mat.NewDense(out, inDim, nil)
		gw.Mul(delta.T(), in)
		gb := make([]float64, out)
		for i := range rows {
			for j := range out {
				gb[j] += delta.At(i, j)
			}
		}
		if l > 0 {
			prev := mat.NewDense(rows, inDim, nil)
			prev.Mul(delta, n.w[l])
			// tanh' = 1 − a² with a the previous layer's output.
			prev.Apply(func(i, j int, v float64) float64 {
				a := in.At(i, j)
				return v * (1 - a*a)
			}, prev)
			delta = prev
		}
		n.adam(l, gw, gb, lr)
	}
	return loss / float64(len(batch))
}

// crossEntropyWeight is the cross-entropy's share of the loss, in QoE
// units (one chunk at the top rendition is worth about 4).
const crossEntropyWeight = 0.1

// Adam's constants, and a small weight decay that keeps the network from
// leaning on rare feature values.
const (
	beta1       = 0.9
	beta2       = 0.999
	adamEpsilon = 1e-8
	weightDecay = 1e-4
)

func (n *network) adam(l int, gw *mat.Dense, gb []float64, lr float64) {
	c1 := 1 - math.Pow(beta1, float64(n.step))
	c2 := 1 - math.Pow(beta2, float64(n.step))
	w, m, v := n.w[l], n.mw[l], n.vw[l]
	rows, cols := w.Dims()
	for i := range rows {
		for j := range cols {
			g := gw.At(i, j) + weightDecay*w.At(i, j)
			mi := beta1*m.At(i, j) + (1-beta1)*g
			vi := beta2*v.At(i, j) + (1-beta2)*g*g
			m.Set(i, j, mi)
			v.Set(i, j, vi)
			w.Set(i, j, w.At(i, j)-lr*(mi/c1)/(math.Sqrt(vi/c2)+adamEpsilon))
		}
	}
	for j, g := range gb {
		n.mb[l][j] = beta1*n.mb[l][j] + (1-beta1)*g
		n.vb[l][j] = beta2*n.vb[l][j] + (1-beta2)*g*g
		n.b[l][j] -= lr * (n.mb[l][j] / c1) / (math.Sqrt(n.vb[l][j]/c2) + adamEpsilon)
	}
}

// scaled copies traces, each with its bandwidth times a factor drawn
// log-uniformly within bounds.
func scaled(traces []*player.Trace, bounds [2]float64, rng *rand.Rand) []*player.Trace {
	lo, hi := math.Log(bounds[0]), math.Log(bounds[1])
	out := make([]*player.Trace, len(traces))
	for i, t := range traces {
		out[i] = t.Scale(math.Exp(lo + rng.Float64()*(hi-lo)))
	}
	return out
}

// Sample returns at most n of traces, evenly spaced in their order, so a
// sample of several families keeps their proportions (all when n ≤ 0).
func Sample(traces []*player.Trace, n int) []*player.Trace {
	if n <= 0 || n >= len(traces) {
		return traces
	}
	out := make([]*player.Trace, 0, n)
	for i := range n {
		out = append(out, traces[i*len(traces)/n])
	}
	return out
}
