package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/deepcast/deepcast/web"
)

// Set by `make build` (-ldflags -X); a plain `go build` leaves them empty
// and the build information Go records (VCS revision and time) is used.
var (
	version = ""
	commit  = ""
	date    = ""
)

// buildInfo is the binary's version, commit and build date.
func buildInfo() (v, c, d string) {
	v, c, d = version, commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.time" && d == "":
				d = s.Value
			case s.Key == "vcs.modified" && s.Value == "true" && c != "" && len(c) == 40:
				c += "+modified"
			}
		}
	}
	for _, p := range []*string{&v, &c, &d} {
		if *p == "" {
			*p = "unknown"
		}
	}
	return v, c, d
}

func versionCommand() command {
	return command{
		name:    "version",
		summary: "print the version, commit and build date, and whether the web pages' packages are embedded",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			return func(_ context.Context, args []string) error {
				v, c, d := buildInfo()
				pages := "web packages embedded"
				if !web.Embedded() {
					pages = "web packages not embedded (build with `make build`)"
				}
				fmt.Fprintf(stdout, "deepcast %s\ncommit %s\nbuilt %s with %s for %s/%s\n%s\n", v, c, d, runtime.Version(), runtime.GOOS, runtime.GOARCH, pages)
				return nil
			}
		},
	}
}
