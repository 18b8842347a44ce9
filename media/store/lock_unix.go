//go:build unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFolder takes an exclusive lock on the library folder's versions
// (.versions/.publish.lock), waiting for another publish (of this process
// or another) to let go of it, and returns the function that lets go.
func lockFolder(vdir string) (unlock func(), err error) {
	// Read-only: flock needs no more, and the file may be another user's
	// (the origin's service user and an operator running the packager).
	f, err := os.OpenFile(filepath.Join(vdir, publishLock), os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("library lock: %w", err)
	}
	if err := flock(f, syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("library lock %s: %w", f.Name(), err)
	}
	// Closing the file lets go of the lock.
	return func() { f.Close() }, nil
}
