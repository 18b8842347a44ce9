//go:build !unix

package media

import "os"

// interruptSignal is the only portable way to stop a child process.
var interruptSignal = os.Kill
