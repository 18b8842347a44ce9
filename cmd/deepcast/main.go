// Command deepcast is the single binary of the deepcast DASH system: it
// packages video, serves it from an origin and cache edges, and plays or
// simulates it with an ABR client. Each job is a subcommand; see
// `deepcast help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
)

// command is one subcommand: its flags are declared by setup, and the
// function setup returns does the work, reporting to stdout (run's, so
// tests read what a user would see).
type command struct {
	name    string
	usage   string // argument synopsis after the flags
	summary string
	setup   func(fs *flag.FlagSet, stdout io.Writer) func(ctx context.Context, args []string) error
	// serves: a long-running node, which SIGHUP reloads instead of ending
	// (caught from the start: see catchEarlyHangups).
	serves bool
}

// commands lists every subcommand in the order `deepcast help` shows them.
func commands() []command {
	return []command{
		sampleCommand(),
		packageCommand(),
		originCommand(),
		edgeCommand(),
		routerCommand(),
		certCommand(),
		tokenCommand(),
		playCommand(),
		simCommand(),
		trainCommand(),
		demoCommand(),
		versionCommand(),
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors that are the caller's fault; the usage is printed.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	logLevel.Set(defaultLevel())
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel})))
	if len(args) == 0 {
		// A bare `deepcast` is a mistake in a script: say what exists, and fail.
		printHelp(stderr)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			return run([]string{args[1], "-h"}, stdout, stderr)
		}
		printHelp(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		if c.serves {
			catchEarlyHangups()
		}
		fs := flag.NewFlagSet("deepcast "+c.name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		runFn := c.setup(fs, stdout)
		logs := addLogFlags(c, fs)
		cfgPath := addConfigFlag(c, fs)
		fs.Usage = func() { printCommandUsage(stderr, c, fs) }
		positional, err := parseInterspersed(fs, args[1:])
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if c.usage == "" && len(positional) > 0 {
			// Said as it is: the command's own check read as "a required
			// flag is missing", which it was not.
			fmt.Fprintf(stderr, "deepcast %s: unexpected argument %q: %s takes flags only (a true/false flag takes its value as -flag=false)\n",
				c.name, positional[0], c.name)
			fs.Usage()
			return 2
		}
		if err := applyEnv(c.name, fs); err != nil {
			fmt.Fprintf(stderr, "deepcast %s: %v\n", c.name, err)
			return 2
		}
		if cfgPath != nil && *cfgPath != "" {
			if err := useConfig(c, fs, *cfgPath); err != nil {
				fmt.Fprintf(stderr, "deepcast %s: %v\n", c.name, err)
				return 2
			}
		}
		if logs != nil {
			if err := logs.install(stderr); err != nil {
				fmt.Fprintf(stderr, "deepcast %s: %v\n", c.name, err)
				return 2
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if path := os.Getenv("DEEPCAST_CPUPROFILE"); path != "" {
			// A CPU profile of the whole run, for `go tool pprof`: how the
			// HTTP/2 path was measured against the fast path.
			if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
		if err := runFn(ctx, positional); err != nil {
			// Errors of the packages often start with their own name,
			// which is the command's: say it once.
			msg := strings.TrimPrefix(err.Error(), c.name+": ")
			fmt.Fprintf(stderr, "deepcast %s: %s\n", c.name, msg)
			if errors.Is(err, errUsage) {
				fs.Usage()
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "deepcast: unknown command %q\n\n", args[0])
	printHelp(stderr)
	return 2
}

// parseInterspersed parses flags wherever they stand among the
// positional arguments (`package -o lib src.mp4 -name late`), which it
// returns in order; after "--" everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		before := len(args)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := args[:before-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "deepcast: DASH packaging, origin, CDN edges and ABR playback in one binary.")
	fmt.Fprintln(w, "\nUsage: deepcast <command> [flags] [args]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n`deepcast <command> -h` explains every flag of a command. Every flag can also be")
	fmt.Fprintln(w, "set with an environment variable DEEPCAST_<COMMAND>_<FLAG> (upper case, '-' as '_',")
	fmt.Fprintln(w, "e.g. DEEPCAST_EDGE_LISTEN); a flag on the command line wins.")
	fmt.Fprintln(w, "DEEPCAST_LOG_LEVEL=debug|info|warn|error sets the log level of every command.")
}

func printCommandUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: deepcast %s [flags] %s\n\n%s\n\nFlags (each also settable as DEEPCAST_%s_<FLAG>):\n", c.name, c.usage, c.summary, envWord(c.name))
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			if !strings.Contains(f.Usage, "(default") {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		fmt.Fprintf(w, "  -%s\n    \t%s%s  [$%s]\n", f.Name, f.Usage, def, envName(c.name, f.Name))
	})
}
