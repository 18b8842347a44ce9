package store

import (
	"net"
	"syscall"
)

// setWakeAt sets the socket's receive low-water mark: a reader blocked on
// c is woken once n bytes are waiting (or the stream ends or fails). Linux
// raises the receive buffer to fit it, so the sender is never held back
// waiting for a window the reader will not open. A failure only costs the
// extra wakeups.
func setWakeAt(c *net.TCPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	})
}
