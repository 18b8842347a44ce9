package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/deepcast/deepcast/edge/accesslog"
)

// serverCommands are the long-running commands: they take -log-format
// and -log-level.
var serverCommands = map[string]bool{"origin": true, "edge": true, "router": true, "demo": true}

// logLevel is the level of the default logger: a variable, so that a
// reload (SIGHUP) can change it while the server runs.
var logLevel = new(slog.LevelVar)

// logSettings are a server command's log flags.
type logSettings struct {
	format, level *string
}

// addLogFlags gives a server command its -log-format and -log-level flags
// (nil for other commands).
func addLogFlags(c command, fs *flag.FlagSet) *logSettings {
	if !serverCommands[c.name] {
		return nil
	}
	return &logSettings{
		format: fs.String("log-format", "text", "log format: text (logfmt) or json (one JSON object a line)"),
		level:  fs.String("log-level", "", "log level: debug, info, warn or error (default $DEEPCAST_LOG_LEVEL, else info)"),
	}
}

// defaultLevel is DEEPCAST_LOG_LEVEL, else info.
func defaultLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("DEEPCAST_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// parseLevel reads a log level; empty is the default.
func parseLevel(s string) (slog.Level, error) {
	if s == "" {
		return defaultLevel(), nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogHandler is the handler of format writing to w at logLevel.
func newLogHandler(format string, w io.Writer) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: logLevel}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// install makes the settings the default logger's.
func (l *logSettings) install(w io.Writer) error {
	level, err := parseLevel(*l.level)
	if err != nil {
		return err
	}
	h, err := newLogHandler(*l.format, w)
	if err != nil {
		return err
	}
	logLevel.Set(level)
	slog.SetDefault(slog.New(h))
	return nil
}

// accessLogger is a node's access log when on: JSON lines on stderr, one
// format for every node (see package accesslog).
func accessLogger(on bool, node string) *accesslog.Logger {
	if !on {
		return nil
	}
	return accesslog.New(os.Stderr, node)
}
