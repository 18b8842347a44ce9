//go:build unix

package media

import "syscall"

// interruptSignal asks ffmpeg to stop the way Ctrl-C would.
var interruptSignal = syscall.SIGINT
