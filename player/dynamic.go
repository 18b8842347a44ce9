package player

// Dynamic is dash.js's default strategy: the throughput rule while the
// buffer is short, BOLA once it is stable, with hysteresis (switch to BOLA
// at the stable buffer, back to throughput below half of it).
type Dynamic struct {
	StableBuffer float64 // seconds; 12 when zero
	useBOLA      bool
	bola         BOLA
	tput         Throughput
}

// Name implements ABR.
func (d *Dynamic) Name() string { return "dynamic" }

// Choose implements ABR.
func (d *Dynamic) Choose(s *State) int {
	stable := d.StableBuffer
	if stable <= 0 {
		stable = 12
	}
	buf := s.Buffer.Seconds()
	if d.useBOLA && buf < stable/2 {
		d.useBOLA = false
	} else if !d.useBOLA && buf >= stable {
		d.useBOLA = true
	}
	d.tput.Safety = 0.9
	d.bola.StableBuffer = stable
	d.bola.started = true
	if d.useBOLA {
		return d.bola.Choose(s)
	}
	return d.tput.Choose(s)
}
