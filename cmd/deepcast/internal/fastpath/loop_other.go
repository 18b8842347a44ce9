//go:build !linux

package fastpath

import "net"

// loopsSupported reports whether this platform has the event loops: only
// Linux does (epoll); elsewhere every connection gets a goroutine.
const loopsSupported = false

type loop struct{}

type hub struct{}

func (s *Server) startLoops(int) error        { return nil }
func (s *Server) adopt(net.Conn, []byte) bool { return false }
func (h *hub) wakeUp()                        {}
