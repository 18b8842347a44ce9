package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// A server's -config FILE is YAML whose keys are its flags' names
// (`listen: 127.0.0.1:8080`, `upstream: [http://a, http://b]`). It fills
// what the command line and the environment leave unset: flag >
// DEEPCAST_<COMMAND>_<FLAG> > file > default. Unknown keys and values a
// flag refuses are errors naming the file and line.

// addConfigFlag gives a server command its -config flag (nil for others).
func addConfigFlag(c command, fs *flag.FlagSet) *string {
	if !serverCommands[c.name] || c.name == "demo" {
		return nil
	}
	return fs.String("config", "", "YAML file of settings: its keys are this command's flag names; a flag or environment variable wins over it; SIGHUP reads it again")
}

// configFile is a parsed -config file: flag name -> value, with the line
// each came from.
type configFile struct {
	path   string
	values map[string]string
	lines  map[string]int
	// extras are the keys a command takes beyond its flags (the edge's
	// cache-rules and upstream-pool), for it to read.
	extras map[string]*yaml.Node
}

// extraKeys are, per command, the -config keys that are not flags.
var extraKeys = map[string][]string{"edge": {"cache-rules", "upstream-pool"}}

// readConfig reads a -config file and checks every value with the
// flag's own parser on scratch, a flag set of the same command that
// nothing else uses (so a bad file changes nothing).
func readConfig(path string, scratch *flag.FlagSet, extras []string) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, data, scratch, extras...)
}

// parseConfig reads the YAML of a -config file (see readConfig).
func parseConfig(path string, data []byte, scratch *flag.FlagSet, extras ...string) (*configFile, error) {
	cf := &configFile{path: path, values: map[string]string{}, lines: map[string]int{}, extras: map[string]*yaml.Node{}}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cf, nil // empty: nothing set
		}
		return nil, fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return cf, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s: line %d: want a mapping of flag names to values", path, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		if slices.Contains(extras, name) {
			if _, dup := cf.extras[name]; dup {
				return nil, fmt.Errorf("config %s: line %d: %q given twice", path, k.Line, name)
			}
			cf.extras[name] = v
			continue
		}
		if name == "config" || scratch.Lookup(name) == nil {
			return nil, fmt.Errorf("config %s: line %d: unknown key %q (the keys are the command's flag names, without the dash)", path, k.Line, name)
		}
		if _, dup := cf.values[name]; dup {
			return nil, fmt.Errorf("config %s: line %d: %q given twice", path, k.Line, name)
		}
		val, err := configValue(v)
		if err != nil {
			return nil, fmt.Errorf("config %s: line %d: %s: %w", path, v.Line, name, err)
		}
		if err := scratch.Set(name, val); err != nil {
			return nil, fmt.Errorf("config %s: line %d: %s: %v", path, v.Line, name, err)
		}
		cf.values[name], cf.lines[name] = val, v.Line
	}
	return cf, nil
}

// configValue is a YAML value as a flag's text: a scalar as written, a
// list of scalars comma-separated (the list flags' syntax).
func configValue(v *yaml.Node) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", nil
		}
		return v.Value, nil
	case yaml.SequenceNode:
		var parts []string
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("want a list of values, not of %s", kindName(e.Kind))
			}
			parts = append(parts, e.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("want a value or a list of values, not a %s", kindName(v.Kind))
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// apply sets, from the file, every flag of fs not in set (set on the
// command line or by the environment).
func (cf *configFile) apply(fs *flag.FlagSet, set map[string]bool) error {
	for name, val := range cf.values {
		if set[name] {
			continue
		}
		if err := fs.Set(name, val); err != nil {
			return fmt.Errorf("config %s: line %d: %s: %v", cf.path, cf.lines[name], name, err)
		}
	}
	return nil
}

// activeConfig is the -config file this process runs with, for SIGHUP.
var activeConfig struct {
	path string
	// pinned are the flags set on the command line or by the environment:
	// the file does not change them, at start or on reload.
	pinned  map[string]bool
	scratch func() *flag.FlagSet
	file    *configFile // as read at start
	extras  []string    // the command's keys beyond its flags
	// live, when set, applies what can change while the server runs
	// (the edge's upstreams); it must refuse, changing nothing, what it
	// cannot apply.
	live func(cf *configFile) error
}

// newFlagSet is a fresh flag set of command c, as run makes it.
func newFlagSet(c command) *flag.FlagSet {
	fs := flag.NewFlagSet("deepcast "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.setup(fs, io.Discard)
	addLogFlags(c, fs)
	addConfigFlag(c, fs)
	return fs
}

// useConfig reads the -config file of command c and sets from it the
// flags of fs that the command line and the environment left unset.
func useConfig(c command, fs *flag.FlagSet, path string) error {
	cf, err := readConfig(path, newFlagSet(c), extraKeys[c.name])
	if err != nil {
		return err
	}
	pinned := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { pinned[f.Name] = true }) // the command line and the environment
	if err := cf.apply(fs, pinned); err != nil {
		return err
	}
	activeConfig.path, activeConfig.pinned, activeConfig.file = path, pinned, cf
	activeConfig.scratch = func() *flag.FlagSet { return newFlagSet(c) }
	activeConfig.extras = extraKeys[c.name]
	return nil
}

// reloadConfig reads the -config file again (SIGHUP) and applies what may
// change while running: the log level, and what the command's live hook
// takes. A file that does not read, or that live refuses, changes
// nothing: the old settings stay, and the log says why.
func reloadConfig(log *slog.Logger) {
	if activeConfig.path == "" {
		return
	}
	cf, err := readConfig(activeConfig.path, activeConfig.scratch(), activeConfig.extras)
	if err == nil && activeConfig.live != nil {
		err = activeConfig.live(cf)
	}
	if err != nil {
		log.Error("SIGHUP: configuration not reloaded; the old one stays", "err", err)
		return
	}
	if !activeConfig.pinned["log-level"] {
		level := defaultLevel()
		if v := cf.values["log-level"]; v != "" {
			level, _ = parseLevel(v) // checked by readConfig
		}
		logLevel.Set(level)
	}
	log.Info("configuration reloaded", "file", activeConfig.path, "log_level", logLevel.Level().String())
}

// fileValue is the value the reloaded file gives a flag not pinned by the
// command line or the environment (ok false: the flag keeps its value).
func (cf *configFile) fileValue(name string) (string, bool) {
	if activeConfig.pinned[name] {
		return "", false
	}
	v, ok := cf.values[name]
	return v, ok
}
