package player

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Optimal is the name of the offline optimum in sim: it knows the whole
// trace in advance. It is not an ABR a player can run.
const Optimal = "optimal"

// DefaultOptimalGrid is the buffer resolution of the optimum's dynamic
// program. Refining it from 0.1 s to 0.025 s moves the mean QoE of the
// 127 fcc+hsdpa traces (Pensieve mode, envivio, QoE_lin) by 0.03 %, from
// 1 s to 0.1 s by 0.6 % (TestOptimalGridConverges checks a sample).
const DefaultOptimalGrid = 100 * time.Millisecond

// optState is a session between two chunks, as Session.Run would hold it
// on a TraceLink: the link's position, the buffer, the last rendition and
// the QoE so far.
type optState struct {
	link    TraceLink
	buffer  time.Duration
	startup time.Duration
	behind  time.Duration // the playhead's lag behind the join (catch-up)
	last    int
	qoe     float64
	sample  Sample // the last video download, as the session measured it
	parent  int32  // index in the previous chunk's states
	q       int8   // rendition of the chunk that led here
}

// optModel steps sessions exactly as Session.Run does with a TraceLink.
type optModel struct {
	video  *Video
	qoe    QoEModel
	cfg    Config
	chunks int
	// terminal, when set, values the state a plan ends in (its buffer)
	// on top of its QoE: what a planner with a short horizon adds so it
	// does not spend the buffer the chunks after the horizon need.
	terminal func(buffer time.Duration) float64
}

// step downloads chunk k at rendition q from s.
func (m *optModel) step(ctx context.Context, s *optState, k, q int) (optState, error) {
	n := *s
	v := m.video
	// The chunk's time runs from here, as in the session; a live one (the
	// Video's LiveDelay, sim -live) is waited for until it is published.
	began := n.link.Now()
	if err := awaitSimPublished(ctx, &n.link, v, k, false); err != nil {
		return n, err
	}
	dl, err := n.link.Fetch(ctx, Request{Chunk: k, Rendition: q, Size: v.Size(k, q)})
	if err != nil {
		return n, err
	}
	n.sample = Sample{Bytes: dl.Bytes, Elapsed: dl.Elapsed()}
	elapsed := dl.LastByte - began
	from, to := v.AudioAt(k)
	for i := from; i < to; i++ {
		if err := awaitSimPublished(ctx, &n.link, v, i, true); err != nil {
			return n, err
		}
		adl, err := n.link.Fetch(ctx, Request{Chunk: i, Rendition: -1, Size: v.AudioSize[i]})
		if err != nil {
			return n, err
		}
		elapsed = adl.LastByte - began
	}
	if k == 0 {
		n.startup = elapsed
	}
	ph := newPlayhead(v, m.cfg.CatchUp, m.cfg.CatchUpLaw)
	ph.behind = n.behind
	var rebuf time.Duration
	n.buffer, rebuf = ph.arrive(k, n.buffer, elapsed, v.ChunkDur(k))
	n.qoe += chunkTerm(m.qoe, m.cfg, v, k, q, n.last, chunkPlayed(v, m.cfg, &ph, k, rebuf, n.buffer, n.link.Now()), n.startup)
	n.last, n.q = q, int8(q)
	if m.cfg.MaxBuffer > 0 && n.buffer > m.cfg.MaxBuffer && k+1 < m.chunks {
		wait := n.buffer - m.cfg.MaxBuffer
		if qt := m.cfg.SleepQuantum; qt > 0 {
			wait = (wait + qt - 1) / qt * qt
		}
		if err := n.link.Sleep(ctx, wait); err != nil {
			return n, err
		}
		n.buffer, _ = ph.play(n.buffer, wait)
	}
	n.behind = ph.behind
	return n, nil
}

// planOptimal finds the rendition sequence with the highest QoE on a
// known trace: a dynamic program over chunk x rendition x buffer level,
// the buffer on a grid of the given width. Each grid cell keeps the
// state with the best QoE so far, with its exact link position and
// buffer, so every value it reports is one the simulator gives. The
// trajectories of the incumbent sequences (the other algorithms' choices
// on the same trace) are kept whole beside the grid, so the result is
// never below any of them.
func planOptimal(ctx context.Context, m *optModel, start TraceLink, grid time.Duration, incumbents [][]int) ([]int, float64, error) {
	return planFrom(ctx, m, optState{link: start, last: -1, parent: -1}, 0, grid, incumbents)
}

// planFrom is planOptimal from any point of a session: start is the
// session before chunk k0 (its link position, buffer and last rendition).
// The sequence it returns covers chunks k0 onwards, and the QoE counts
// their terms only (plus start.qoe). Incumbents, if any, are sequences
// of those chunks.
func planFrom(ctx context.Context, m *optModel, start optState, k0 int, grid time.Duration, incumbents [][]int) ([]int, float64, error) {
	if grid <= 0 {
		grid = DefaultOptimalGrid
	}
	renditions := len(m.video.Bitrates)
	if renditions > math.MaxInt8 {
		return nil, 0, fmt.Errorf("optimal: %d renditions, at most %d", renditions, math.MaxInt8)
	}
	cells := int(m.cfg.MaxBuffer/grid) + 2
	if m.cfg.MaxBuffer <= 0 {
		cells = int(time.Duration(m.chunks)*m.video.ChunkDuration/grid) + 2
	}
	if k0 < 0 || k0 >= m.chunks {
		return nil, 0, fmt.Errorf("optimal: start at chunk %d of %d", k0, m.chunks)
	}
	steps := m.chunks - k0
	start.parent = -1
	layers := make([][]optState, steps+1)
	layers[0] = []optState{start}
	// inc[i] is the index, in the current layer, of incumbent i's state.
	inc := make([]int32, len(incumbents))
	best := make([]int32, renditions*cells)
	for j := range steps {
		k := k0 + j
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		for i := range best {
			best[i] = -1
		}
		prev := layers[j]
		next := make([]optState, 0, len(best))
		choices := renditions
		first := 0
		if k == 0 && m.cfg.StartRendition >= 0 {
			first = min(m.cfg.StartRendition, renditions-1)
			choices = first + 1
		}
		for pi := range prev {
			for q := first; q < choices; q++ {
				n, err := m.step(ctx, &prev[pi], k, q)
				if err != nil {
					return nil, 0, err
				}
				n.parent = int32(pi)
				cell := q*cells + min(int(n.buffer/grid), cells-1)
				switch b := best[cell]; {
				case b < 0:
					best[cell] = int32(len(next))
					next = append(next, n)
				case n.qoe > next[b].qoe:
					next[b] = n
				}
			}
		}
		// The incumbents' next states, whatever the grid kept.
		for i, seq := range incumbents {
			if j >= len(seq) {
				continue
			}
			n, err := m.step(ctx, &prev[inc[i]], k, seq[j])
			if err != nil {
				return nil, 0, err
			}
			n.parent = inc[i]
			inc[i] = int32(len(next))
			next = append(next, n)
		}
		layers[j+1] = next
	}
	last := layers[steps]
	if len(last) == 0 {
		return nil, 0, errors.New("optimal: no chunks")
	}
	score := func(s *optState) float64 {
		if m.terminal == nil {
			return s.qoe
		}
		return s.qoe + m.terminal(s.buffer)
	}
	bi := 0
	for i := range last {
		if score(&last[i]) > score(&last[bi]) {
			bi = i
		}
	}
	seq := make([]int, steps)
	for j, i := steps, int32(bi); j > 0; j-- {
		s := layers[j][i]
		seq[j-1] = int(s.q)
		i = s.parent
	}
	return seq, last[bi].qoe, nil
}

// replay is an ABR that plays a sequence chosen in advance.
type replay struct{ seq []int }

func (r *replay) Name() string { return Optimal }

func (r *replay) Choose(s *State) int {
	if s.Chunk < len(r.seq) {
		return r.seq[s.Chunk]
	}
	return 0
}
