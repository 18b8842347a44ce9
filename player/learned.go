package player

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// PolicyFormat names the model file format of a learned ABR policy.
const PolicyFormat = "deepcast-abr-policy/1"

// PolicyFeatures names the inputs a learned policy scores a candidate
// rendition by, in order. They are in units of the chunk duration, the
// QoE's Mbit/s or plain ratios, never of a particular ladder's index, so
// one model serves every ladder: the policy scores each candidate
// rendition with the same network and takes the best.
var PolicyFeatures = []string{
	"bitrate_mbps",      // the candidate's bitrate
	"switch_mbps",       // |candidate − previous| bitrate
	"log_rung",          // ln(candidate / lowest bitrate)
	"is_last",           // 1 for the previous chunk's rendition
	"mpc_below2",        // candidate ≤ hedged MPC's choice − 2
	"mpc_below1",        // candidate = MPC's choice − 1
	"mpc_same",          // candidate = MPC's choice
	"mpc_above1",        // candidate = MPC's choice + 1
	"mpc_above2",        // candidate ≥ MPC's choice + 2
	"dl_robust",         // download time at the robust prediction, in chunk durations, capped at 4
	"dl_harmonic",       // … at the harmonic mean of the last 5 downloads
	"dl_last",           // … at the last download's rate
	"dl_min",            // … at the slowest of the last 5
	"stall_robust",      // stall the robust download time would cause, in chunk durations, capped at 4
	"stall_harmonic",    // … the harmonic one
	"stall_min",         // … the slowest one
	"buffer_after",      // buffer after the chunk at the harmonic rate, / 10 chunk durations
	"buffer",            // buffer now, / 10 chunk durations
	"remaining",         // chunks left after this one, capped at 10, / 10
	"max_error",         // largest relative prediction error of the last 10, capped at 2
	"variation",         // coefficient of variation of the last 8 downloads' rates, capped at 2
	"rung_fraction",     // candidate's index / highest index
	"harmonic_over_top", // harmonic mean / highest bitrate, capped at 1.5
}

// PolicyModel is a learned ABR policy: a small network that scores each
// candidate rendition from its PolicyFeatures; the policy plays the
// highest score. Features are standardised with Mean and Std first.
type PolicyModel struct {
	Format   string    `json:"format"`
	Features []string  `json:"features"`
	Mean     []float64 `json:"mean"`
	Std      []float64 `json:"std"`
	// Layers are fully connected, tanh between them, the last one with a
	// single output (the score).
	Layers []PolicyLayer `json:"layers"`
	// Training says how the model was made (free-form, for people).
	Training map[string]any `json:"training,omitempty"`
}

// PolicyLayer is one fully connected layer: out = W·in + B, W[out][in].
type PolicyLayer struct {
	W [][]float64 `json:"w"`
	B []float64   `json:"b"`
}

// ParsePolicyModel reads and checks a model file.
func ParsePolicyModel(data []byte) (*PolicyModel, error) {
	var m PolicyModel
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("policy model: %w", err)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Check verifies the model's shape against PolicyFeatures.
func (m *PolicyModel) Check() error {
	switch {
	case m.Format != PolicyFormat:
		return fmt.Errorf("policy model: format %q, want %q", m.Format, PolicyFormat)
	case strings.Join(m.Features, ",") != strings.Join(PolicyFeatures, ","):
		return errors.New("policy model: its features are not this build's PolicyFeatures")
	case len(m.Mean) != len(PolicyFeatures) || len(m.Std) != len(PolicyFeatures):
		return errors.New("policy model: mean and std need one value per feature")
	case len(m.Layers) == 0:
		return errors.New("policy model: no layers")
	}
	in := len(PolicyFeatures)
	for i, l := range m.Layers {
		if len(l.W) == 0 || len(l.B) != len(l.W) {
			return fmt.Errorf("policy model: layer %d: %d rows, %d biases", i, len(l.W), len(l.B))
		}
		for _, row := range l.W {
			if len(row) != in {
				return fmt.Errorf("policy model: layer %d: rows of %d, want %d inputs", i, len(row), in)
			}
			for _, w := range row {
				if math.IsNaN(w) || math.IsInf(w, 0) {
					return fmt.Errorf("policy model: layer %d: weight %v", i, w)
				}
			}
		}
		in = len(l.W)
	}
	if in != 1 {
		return fmt.Errorf("policy model: the last layer has %d outputs, want 1", in)
	}
	for i, s := range m.Std {
		if !(s > 0) {
			return fmt.Errorf("policy model: std of %s is %v", PolicyFeatures[i], s)
		}
	}
	return nil
}

// Score is the network's score of one candidate's features.
func (m *PolicyModel) Score(f []float64) float64 {
	x := make([]float64, len(f))
	for i := range f {
		x[i] = (f[i] - m.Mean[i]) / m.Std[i]
	}
	for li, l := range m.Layers {
		y := make([]float64, len(l.W))
		for o, row := range l.W {
			s := l.B[o]
			for i, w := range row {
				s += w * x[i]
			}
			if li < len(m.Layers)-1 {
				s = math.Tanh(s)
			}
			y[o] = s
		}
		x = y
	}
	return x[0]
}

// policyFeaturizer turns a session's states into PolicyFeatures. It
// carries the hedged MPC (Deepcast's planner) whose choice is one of the
// inputs and whose prediction-error memory gives max_error.
type policyFeaturizer struct {
	mpc Deepcast
}

// features returns one feature row per candidate rendition and the MPC's
// choice; nil before the first download.
func (p *policyFeaturizer) features(s *State) ([][]float64, int) {
	if len(s.History) == 0 {
		return nil, 0
	}
	// The MPC's choice; its prediction (the harmonic mean of the last 5
	// downloads) and its error memory are then this state's.
	p.mpc.unprimed = true
	mpcChoice := p.mpc.Choose(s)
	maxErr := p.mpc.maxError()
	hm := p.mpc.lastPred
	h := s.History
	last := h[len(h)-1].Kbps()
	slowest := math.Inf(1)
	for i := max(0, len(h)-5); i < len(h); i++ {
		if k := h[i].Kbps(); k > 0 {
			slowest = math.Min(slowest, k)
		}
	}
	var sum, sq float64
	n8 := 0
	for i := max(0, len(h)-8); i < len(h); i++ {
		k := h[i].Kbps()
		sum += k
		sq += k * k
		n8++
	}
	variation := 0.0
	if mean := sum / float64(n8); mean > 0 {
		variation = math.Sqrt(math.Max(sq/float64(n8)-mean*mean, 0)) / mean
	}
	br := s.Bitrates()
	top := br[len(br)-1]
	chunkSec := s.ChunkSeconds()
	buf := s.Buffer.Seconds()
	prev := max(s.Last, 0)
	robust := hm / (1 + maxErr)
	rows := make([][]float64, len(br))
	for q := range br {
		kbits := float64(s.Video.Size(s.Chunk, q)) * 8 / 1000
		dl := func(kbps float64) float64 {
			if !(kbps > 0) || math.IsInf(kbps, 0) {
				return 4
			}
			return math.Min(kbits/kbps/chunkSec, 4)
		}
		stall := func(d float64) float64 { return math.Min(math.Max(d*chunkSec-buf, 0)/chunkSec, 4) }
		d := q - mpcChoice
		rung := 0.0
		if len(br) > 1 {
			rung = float64(q) / float64(len(br)-1)
		}
		dh := dl(hm)
		rows[q] = []float64{
			br[q] / 1000,
			math.Abs(br[q]-br[prev]) / 1000,
			math.Log(br[q] / br[0]),
			b2f(q == s.Last),
			b2f(d <= -2), b2f(d == -1), b2f(d == 0), b2f(d == 1), b2f(d >= 2),
			dl(robust), dh, dl(last), dl(slowest),
			stall(dl(robust)), stall(dh), stall(dl(slowest)),
			math.Max(buf+chunkSec-dh*chunkSec, -4*chunkSec) / (10 * chunkSec),
			buf / (10 * chunkSec),
			float64(min(s.Chunks-s.Chunk-1, 10)) / 10,
			math.Min(maxErr, 2),
			math.Min(variation, 2),
			rung,
			math.Min(hm/top, 1.5),
		}
	}
	return rows, mpcChoice
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Learned is an ABR that plays what a PolicyModel scores highest: a
// policy trained (`deepcast train`) to imitate the offline optimum.
type Learned struct {
	Model *PolicyModel
	name  string
	feat  policyFeaturizer
}

// Name implements ABR.
func (l *Learned) Name() string {
	if l.name == "" {
		return "learned"
	}
	return l.name
}

// Choose implements ABR.
func (l *Learned) Choose(s *State) int {
	rows, _ := l.feat.features(s)
	if rows == nil {
		return 0
	}
	return l.Model.Best(rows)
}

// Best is the highest-scoring candidate of a decision's feature rows
// (the lowest on a tie).
func (m *PolicyModel) Best(rows [][]float64) int {
	best, bq := math.Inf(-1), 0
	for q, f := range rows {
		if v := m.Score(f); v > best {
			best, bq = v, q
		}
	}
	return bq
}

// Decision is one choice a learned policy is trained on: the features of
// every candidate rendition at a state a session reached, and the
// rendition the teacher values most from that state.
type Decision struct {
	Features [][]float64
	Best     int
	// Regret of each candidate: the teacher's best QoE from this state
	// less its QoE when the candidate is played first (0 for Best). A miss
	// that costs a stall weighs more than one that costs a little bitrate.
	Regret []float64
}

// Teacher says how the states a policy reaches are labelled.
type Teacher struct {
	// Grid is the buffer resolution of the optimum's dynamic program.
	Grid time.Duration
	// Rollout values each candidate by playing it and then the hedged
	// MPC to the end of the trace, rather than the optimum: a continuation
	// a player can achieve, so a risky choice costs what it would cost a
	// player without foresight (one step of policy improvement over the
	// MPC, as rollout algorithms do).
	Rollout bool
}

// CollectDecisions is the data step of DAgger (imitation learning that
// learns from the states its own policy reaches): it plays every trace
// of opt with the policy (the hedged MPC when nil) and, at each choice,
// asks the teacher what each rendition is worth from that very state
// (link position, buffer, previous rendition). It returns the decisions
// of each trace, in trace order, and each session's QoE, whatever
// opt.Jobs.
func CollectDecisions(ctx context.Context, opt SimOptions, policy *PolicyModel, teach Teacher) ([][]Decision, []float64, error) {
	qoe, err := NewQoE(opt.QoE)
	if err != nil {
		return nil, nil, err
	}
	out := make([][]Decision, len(opt.Traces))
	scores := make([]float64, len(opt.Traces))
	err = forEach(ctx, len(opt.Traces), opt.Jobs, opt.Progress, func(i int) error {
		var err error
		if out[i], scores[i], err = collectTrace(ctx, opt, opt.Traces[i], qoe, policy, teach); err != nil {
			return fmt.Errorf("trace %s: %w", opt.Traces[i].Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, scores, nil
}

// teacher is the ABR of a DAgger session: it records every state's
// labelled decision and plays the policy's choice (or the MPC's).
type teacher struct {
	ctx    context.Context
	link   *TraceLink
	model  *optModel
	teach  Teacher
	policy *PolicyModel
	feat   policyFeaturizer
	out    []Decision
	err    error
}

func (t *teacher) Name() string { return "teacher" }

func (t *teacher) Choose(s *State) int {
	rows, mpcChoice := t.feat.features(s)
	if rows == nil || t.err != nil {
		return 0
	}
	d, err := t.label(s, len(rows))
	if err != nil {
		t.err = err
		return 0
	}
	d.Features = rows
	t.out = append(t.out, d)
	if t.policy == nil {
		return mpcChoice
	}
	return t.policy.Best(rows)
}

// label values every first rendition from s: the chunk played at it,
// then the optimum's (or, with Rollout, the MPC's) continuation.
func (t *teacher) label(s *State, n int) (Decision, error) {
	start := optState{link: *t.link, buffer: s.Buffer, last: s.Last}
	q := make([]float64, n)
	best := 0
	for r := range n {
		first, err := t.model.step(t.ctx, &start, s.Chunk, r)
		if err != nil {
			return Decision{}, err
		}
		q[r] = first.qoe
		switch {
		case s.Chunk+1 >= t.model.chunks:
		case t.teach.Rollout:
			if q[r], err = t.rollout(s, first); err != nil {
				return Decision{}, err
			}
		default:
			if _, q[r], err = planFrom(t.ctx, t.model, first, s.Chunk+1, t.teach.Grid, nil); err != nil {
				return Decision{}, err
			}
		}
		if q[r] > q[best] {
			best = r
		}
	}
	top := q[best]
	for r := range q {
		q[r] = top - q[r]
	}
	return Decision{Best: best, Regret: q}, nil
}

// rollout plays the hedged MPC from cur (the state after chunk s.Chunk)
// to the end and returns the session's QoE from s on. The MPC goes on
// from the featurizer's, which has just chosen for s.
func (t *teacher) rollout(s *State, cur optState) (float64, error) {
	mpc := t.feat.mpc
	mpc.errors = slices.Clone(mpc.errors)
	st := &State{Video: s.Video, Chunks: s.Chunks, MaxBuffer: s.MaxBuffer, QoE: s.QoE,
		History: append(slices.Clone(s.History), cur.sample)}
	for k := s.Chunk + 1; k < t.model.chunks; k++ {
		st.Chunk, st.Buffer, st.Last = k, cur.buffer, cur.last
		next, err := t.model.step(t.ctx, &cur, k, mpc.Choose(st))
		if err != nil {
			return 0, err
		}
		cur = next
		st.History = append(st.History, cur.sample)
	}
	return cur.qoe, nil
}

func collectTrace(ctx context.Context, opt SimOptions, tr *Trace, qoe QoEModel, policy *PolicyModel, teach Teacher) ([]Decision, float64, error) {
	cfg, link := simSetup(opt, tr)
	t := &teacher{ctx: ctx, link: link, teach: teach, policy: policy, model: newOptModel(opt.Video, qoe, cfg)}
	s := &Session{Video: opt.Video, ABR: t, QoE: qoe, Clock: link, Fetcher: link, Config: cfg}
	res, err := s.Run(ctx)
	if err == nil {
		err = t.err
	}
	return t.out, res.QoE, err
}
