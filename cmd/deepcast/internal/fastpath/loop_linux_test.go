//go:build linux

package fastpath

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// TestAnExitedLoopWritesNothing: after the loops have exited, their
// eventfd's number may belong to another file; waking them (Shutdown's
// idle sweep does, repeatedly) must not write into that file.
func TestAnExitedLoopWritesNothing(t *testing.T) {
	ts := startTestServer(t, 1, nil)
	exchange(t, ts.addr, get("/small"), 1) // the loop is running
	ts.srv.mu.Lock()
	l := ts.srv.loops[0]
	ts.srv.mu.Unlock()
	l.h.mu.Lock()
	wake := l.h.wake
	l.h.mu.Unlock()
	ts.srv.Close()
	select {
	case <-ts.done:
		ts.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	ts.srv.wg.Wait() // the loop has exited and closed its descriptors
	var reused *os.File
	for i := range 32 { // take descriptor numbers until the eventfd's comes up
		f, err := os.Create(filepath.Join(t.TempDir(), "f"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if int(f.Fd()) == wake {
			reused = f
			break
		}
	}
	if reused == nil {
		t.Skip("the eventfd's number was not reused")
	}
	ts.srv.closeIdle()
	ts.srv.stopLoops()
	l.h.wakeUp()
	if st, err := reused.Stat(); err != nil || st.Size() != 0 {
		t.Fatalf("a file that took the exited loop's eventfd number got %d bytes (%v)", st.Size(), err)
	}
}

// TestLoopsBringTheirOwnPs: a busy loop waits in a raw system call and so
// holds its P; the server adds a P per loop while the loops run and gives
// them back when they exit, so the rest of the program keeps the Ps it had.
func TestLoopsBringTheirOwnPs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	ts := startTestServer(t, 3, nil)
	exchange(t, ts.addr, get("/small"), 1) // the loops are running
	if got := runtime.GOMAXPROCS(0); got != before+3 {
		t.Fatalf("GOMAXPROCS with 3 loops running = %d, want %d", got, before+3)
	}
	ts.srv.Close()
	select {
	case err := <-ts.done:
		ts.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	ts.srv.wg.Wait()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("GOMAXPROCS after the loops exited = %d, want %d", got, before)
	}
}

// TestARawWaitDoesNotHoldUpTheGC: a busy loop waits in a raw epoll_pwait
// that the runtime cannot see, up to a sweep interval (250 ms with these
// timeouts). A stop-the-world must still come at once: the runtime's
// preemption signal interrupts the wait (EINTR). Measured here: under 1 ms.
func TestARawWaitDoesNotHoldUpTheGC(t *testing.T) {
	ts := startTestServer(t, 4, func(h *http.Server) {
		h.ReadHeaderTimeout, h.IdleTimeout, h.WriteTimeout = time.Hour, time.Hour, time.Hour
	})
	var conns []net.Conn
	var readers []*bufio.Reader
	for range 4 { // one connection on each loop, kept open so the loops stay busy
		c := dial(t, ts.addr, 30*time.Second)
		conns = append(conns, c)
		readers = append(readers, bufio.NewReader(c))
	}
	pauses := func() *metrics.Float64Histogram {
		s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
		metrics.Read(s)
		return s[0].Value.Float64Histogram()
	}
	before := pauses()
	for range 10 {
		for i, c := range conns {
			if _, err := io.WriteString(c, get("/small")); err != nil {
				t.Fatal(err)
			}
			readOne(t, readers[i])
		}
		time.Sleep(5 * time.Millisecond) // the loops are now in raw waits
		runtime.GC()
	}
	after := pauses()
	for i := range after.Counts {
		// Lower bound of the bucket: a pause that waited out a raw wait
		// would be ~250 ms.
		if after.Counts[i] > before.Counts[i] && after.Buckets[i] > 0.1 {
			t.Fatalf("a stop-the-world pause of at least %.3f s with loops in raw waits", after.Buckets[i])
		}
	}
}

// loopConns is how many connections the server's loops hold.
func loopConns(s *Server) int64 { return s.hub.live.Load() }
