//go:build !linux

package store

import "net"

// setWakeAt does nothing where the receive low-water mark is not known to
// behave as on Linux: the copy then wakes for every burst.
func setWakeAt(*net.TCPConn, int) {}
