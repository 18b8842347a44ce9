//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// raiseFileLimit lifts the soft limit on open files to the hard one, as
// nginx's worker_rlimit_nofile does (Go's runtime does it too since 1.19,
// but says nothing), and logs the figure: every connection is a file, and
// an operator should see how many a node can hold before it backs off.
// It returns the limit, 0 when unknown.
func raiseFileLimit(log *slog.Logger) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("open-file limit unknown", "err", err)
		return 0
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("open-file limit not raised", "soft", lim.Cur, "hard", lim.Max, "err", err)
		} else {
			lim = raised
		}
	}
	log.Info("open-file limit", "files", lim.Cur)
	return lim.Cur
}
