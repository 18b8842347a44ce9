package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// minCheckEvery is the shortest health or replacement check interval a
// flag may ask for.
const minCheckEvery = 50 * time.Millisecond

// envName is the environment variable that can set flag name of command
// cmd: DEEPCAST_<COMMAND>_<FLAG>, so that one environment can hold the
// settings of several commands (an edge's -listen and a router's) and no
// variable means two things.
func envName(cmd, name string) string {
	return "DEEPCAST_" + envWord(cmd) + "_" + envWord(name)
}

func envWord(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// globalEnv are the variables that are not a command's flag; no flag's
// variable may be one of them (a test checks).
var globalEnv = []string{
	"DEEPCAST_LOG_LEVEL",   // default log level of every command
	"DEEPCAST_FASTPATH",    // off | goroutines: the HTTP/1.1 front's mode, to compare
	"DEEPCAST_LOOPS",       // the fast path's event loops
	"DEEPCAST_HTTP2",       // net: HTTP/2 by net/http's server, to compare
	"DEEPCAST_CPUPROFILE",  // write a CPU profile of the run
	"DEEPCAST_WEB_MODULES", // front-end packages on disk
}

// applyEnv sets every flag of command cmd not given on the command line
// from its DEEPCAST_<COMMAND>_<FLAG> environment variable, if present.
func applyEnv(cmd string, fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(cmd, f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(cmd, f.Name), v, e)
			}
		}
	})
	return err
}

// checkDuration refuses a duration flag outside lo…hi: a health check
// every nanosecond, or a fetch bound that has passed before the fetch
// starts, is a typo rather than a setting.
func checkDuration(flag string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("%s %v: want %v to %v: %w", flag, d, lo, hi, errUsage)
	}
	return nil
}

// parseSwitch reads an on/off flag given as a word: true, false, 1, 0, t,
// f, on, off, yes or no, any case.
func parseSwitch(flag, s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "yes":
		return true, nil
	case "off", "no":
		return false, nil
	}
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, fmt.Errorf("%s %q: want true or false: %w", flag, s, errUsage)
	}
	return v, nil
}

// byteSize is a flag value for sizes such as 256MiB, 20GiB or 1500000.
type byteSize int64

func (b *byteSize) String() string { return formatBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(v)
	return nil
}

// checkBytes refuses a byte-size flag given below lo. Left out, a size
// flag means its default; given as 0 or a few bytes, it used to mean the
// default too (or a store that holds nothing), without a word.
func checkBytes(fs *flag.FlagSet, name string, v byteSize, lo int64, hint string) error {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	if given && int64(v) < lo {
		return fmt.Errorf("-%s %s: want at least %s%s: %w", name, formatBytes(int64(v)), formatBytes(lo), hint, errUsage)
	}
	return nil
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"k", 1 << 10}, {"B", 1},
}

// parseBytes reads a byte count with an optional unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB, K, M, G, T).
func parseBytes(in string) (int64, error) {
	s := strings.TrimSpace(in)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	// Written so that NaN fails too: every comparison with NaN is false.
	if err != nil || !(v >= 0 && v*float64(mult) <= 1<<62) {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), such as 256MiB", in)
	}
	return int64(v * float64(mult)), nil
}

// bitRate is a flag of bits per second with an optional decimal unit
// (k, M, G, T, also written kbit, Mbit/s, Gbps...): a link's capacity.
type bitRate float64

func (b *bitRate) String() string { return formatBitRate(float64(*b)) }

func (b *bitRate) Set(s string) error {
	v, err := parseBitRate(s)
	if err != nil {
		return err
	}
	*b = bitRate(v)
	return nil
}

// parseBitRate reads bits per second: a number with an optional k, M, G
// or T (powers of 1000, as links are sold), optionally followed by bit,
// bit/s, bps or b/s.
func parseBitRate(in string) (float64, error) {
	s := strings.TrimSpace(in)
	for _, unit := range []string{"bit/s", "bps", "b/s", "bit"} {
		if t, ok := strings.CutSuffix(s, unit); ok {
			s = strings.TrimSpace(t)
			break
		}
	}
	mult := 1.0
	if s != "" {
		if i := strings.IndexByte("kMGT", s[len(s)-1]); i >= 0 {
			mult, s = math.Pow(1000, float64(i+1)), strings.TrimSpace(s[:len(s)-1])
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0 && v*mult <= 1e15) {
		return 0, fmt.Errorf("bit rate %q: want bits per second with an optional unit (k, M, G, T), such as 800M or 10Gbit/s", in)
	}
	return v * mult, nil
}

// formatBitRate is the shortest of the forms parseBitRate reads.
func formatBitRate(v float64) string {
	for i := 4; i >= 1; i-- {
		if m := math.Pow(1000, float64(i)); v >= m && math.Mod(v, m) == 0 {
			return strconv.FormatFloat(v/m, 'f', -1, 64) + string("kMGT"[i-1])
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}
