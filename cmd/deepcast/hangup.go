package main

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// SIGHUP's default action ends the process. A node handles it (serveNode
// reloads its settings and certificates) only once it serves, but its
// port is open a moment before that, and an operator or a supervisor that
// reloads a node just started would take it down. So the commands that
// serve catch SIGHUP from their first instruction, and serveNode takes
// over a hangup that came before it.
var early struct {
	mu sync.Mutex
	c  chan os.Signal
}

// catchEarlyHangups starts catching SIGHUP for the process.
func catchEarlyHangups() {
	early.mu.Lock()
	defer early.mu.Unlock()
	if early.c == nil {
		early.c = make(chan os.Signal, 1)
		signal.Notify(early.c, syscall.SIGHUP)
	}
}

// takeEarlyHangup stops the early catching (the caller has its own
// handler by now) and reports whether a SIGHUP came before.
func takeEarlyHangup() bool {
	early.mu.Lock()
	defer early.mu.Unlock()
	if early.c == nil {
		return false
	}
	signal.Stop(early.c)
	select {
	case <-early.c:
		return true
	default:
		return false
	}
}
