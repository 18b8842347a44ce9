//go:build !unix

package main

import "log/slog"

// raiseFileLimit has nothing to raise on this platform, and knows no
// limit (0).
func raiseFileLimit(*slog.Logger) uint64 { return 0 }
