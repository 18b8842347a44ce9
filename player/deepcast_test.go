package player

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestDeepcastStartPrior: until ten errors are in the memory the worst
// error planned with is at least the start prior, so one fast first
// download does not send the player from the start rendition to the top.
func TestDeepcastStartPrior(t *testing.T) {
	for _, c := range []struct {
		name     string
		errors   []float64
		unprimed bool
		want     float64
	}{
		{"nothing measured", nil, false, deepcastStartError},
		{"three small errors", []float64{0.1, 0.05, 0.1}, false, deepcastStartError},
		{"a large error", []float64{0.1, 0.9, 0.1}, false, 0.9},
		{"a full memory", []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.12}, false, 0.12},
		{"unprimed", []float64{0.1, 0.05, 0.1}, true, 0.1},
	} {
		d := &Deepcast{errors: c.errors, unprimed: c.unprimed}
		if got := d.worstError(); got != c.want {
			t.Errorf("%s: worst error %g, want %g", c.name, got, c.want)
		}
	}

	v := loadEnvivio(t)
	first := func(d *Deepcast) int {
		s := state(v, 4*time.Second, 1)
		s.Chunk = 1
		s.addSample(Download{Bytes: v.Size(0, 1), LastByte: time.Duration(float64(v.Size(0, 1)*8) / 3e6 * float64(time.Second))})
		return d.Choose(s)
	}
	primed, unprimed := first(&Deepcast{}), first(&Deepcast{unprimed: true})
	if primed >= unprimed {
		t.Errorf("after one 3 Mbit/s download with 4 s of buffer: %d with the start prior, %d without", primed, unprimed)
	}
}

// TestDeepcastBolaFloor: with a deep buffer, a large error in the memory
// no longer holds deepcast below what BOLA chooses; unprimed (the learned
// policy's MPC), the plan stands. (Under 10 s of buffer BOLA's own choice
// is at the bottom of the ladder, so the floor's threshold has no state
// to show it here; the cross-validation in player/README.md chose it.)
func TestDeepcastBolaFloor(t *testing.T) {
	v := loadEnvivio(t) // 300, 750, 1200, 1850, 2850, 4300
	dip := []float64{5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}
	choose := func(d *Deepcast, buffer time.Duration) (got, plan, bola int) {
		s := func() *State { return state(v, buffer, 2, 5000, 5000, 5000, 5000, 5000, 5000) }
		plan = (&Deepcast{errors: dip, unprimed: true}).Choose(s())
		bola = (&BOLA{}).Choose(s())
		return d.Choose(s()), plan, bola
	}
	got, plan, bola := choose(&Deepcast{errors: dip}, 30*time.Second)
	if plan >= bola {
		t.Fatalf("the test's state is wrong: the plan (%d) is not below BOLA (%d)", plan, bola)
	}
	if got != bola {
		t.Errorf("30 s of buffer: %d, want BOLA's %d (the plan alone: %d)", got, bola, plan)
	}
	if got, plan, _ := choose(&Deepcast{errors: dip, unprimed: true}, 30*time.Second); got != plan {
		t.Errorf("unprimed: %d, want the plan's %d", got, plan)
	}
}

// plansFor makes an ABR plan for model m whatever the session is scored
// by: the planners as they were before they read State.QoE.
type plansFor struct {
	ABR
	m QoEModel
}

func (p plansFor) Choose(s *State) int {
	scored, terms := s.QoE, s.terms
	s.QoE, s.terms = p.m, nil
	q := p.ABR.Choose(s)
	s.QoE, s.terms = scored, terms
	return q
}

// TestPlannersPlanForTheSessionsQoE: scored by another model than
// QoE_lin, robustMPC and deepcast plan for it, and score higher than when
// they plan for QoE_lin as they did before they read State.QoE. Measured
// on fcc: by QoE_HD, robustMPC 174.15 against 152.92 and deepcast 190.15
// against 158.90; by LoL+'s QoE, 8 s behind a live edge, deepcast
// -190.43 against -227.15 (robustMPC, not checked here, gains less
// and not everywhere: player/README.md). The test wants 5 % of the lin
// plan's magnitude more.
func TestPlannersPlanForTheSessionsQoE(t *testing.T) {
	v, traces, lin, opt := pensieveSetup(t, "fcc")
	for _, tc := range []struct {
		abr, qoe string
		live     time.Duration
	}{
		{"robustmpc", "hd", 0},
		{DeepcastMPC, "hd", 0},
		{DeepcastMPC, "lolp", 8 * time.Second},
	} {
		m, err := NewQoE(tc.qoe)
		if err != nil {
			t.Fatal(err)
		}
		video := *v
		video.LiveDelay = tc.live
		opt := opt
		opt.Video = &video
		mean := func(planFor QoEModel) float64 {
			sum := 0.0
			for _, tr := range traces {
				a, err := NewABR(tc.abr)
				if err != nil {
					t.Fatal(err)
				}
				if planFor != nil {
					a = plansFor{a, planFor}
				}
				cfg, link := simSetup(opt, tr)
				s := &Session{Video: &video, ABR: a, QoE: m, Clock: link, Fetcher: link, Config: cfg}
				res, err := s.Run(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				sum += res.QoE
			}
			return sum / float64(len(traces))
		}
		own, asLin := mean(nil), mean(lin)
		t.Logf("%s on fcc, scored by %s, %s behind: %.2f planning for it, %.2f planning for QoE_lin", tc.abr, tc.qoe, tc.live, own, asLin)
		if own < asLin+0.05*math.Abs(asLin) {
			t.Errorf("%s scored by %s: planning for it scores %.2f, for QoE_lin %.2f: want at least 5 %% more", tc.abr, tc.qoe, own, asLin)
		}
	}
}
