//go:build !unix

package routing

import "syscall"

// reusePort is a no-op where SO_REUSEPORT does not exist: one socket then.
func reusePort(network, address string, c syscall.RawConn) error { return nil }
