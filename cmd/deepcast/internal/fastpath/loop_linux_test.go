//go:build linux

package fastpath

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestAnExitedLoopWritesNothing: after a loop has exited, its eventfd's
// number may belong to another file; waking the loop (Shutdown's idle
// sweep does, repeatedly) must not write into that file.
func TestAnExitedLoopWritesNothing(t *testing.T) {
	ts := startTestServer(t, 1, nil)
	exchange(t, ts.addr, get("/small"), 1) // the loop is running
	ts.srv.mu.Lock()
	l := ts.srv.loops[0]
	ts.srv.mu.Unlock()
	l.mu.Lock()
	wake := l.wake
	l.mu.Unlock()
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
	l.wakeUp()
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
