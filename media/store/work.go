package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Work folders are where a process builds something it then hands on or
// deletes: a version being staged, an upload waiting for its job. A
// process killed meanwhile (SIGKILL, a crash, the power) cannot delete
// its own, and each may hold gigabytes, so every work folder is held by
// its process through a lock on a file beside it (NAME.held), which the
// kernel lets go of when the process ends, however it ends. The next
// process to make work folders in the same place sweeps away the ones no
// process holds.

// heldSuffix names the lock file beside a work folder.
const heldSuffix = ".held"

// unheldGrace is how old a work folder without a lock file must be before
// a sweep takes it as abandoned: one made by a deepcast from before work
// folders were held, which may still be running, or one whose process is
// between making it and locking its file.
const unheldGrace = 24 * time.Hour

// holds are this process's work folders and their lock files.
var holds sync.Map // folder path → *os.File

// MakeWorkFolder creates a folder in parent (the system's temporary
// folder when "") named family+name and a random tail, held by this
// process until ReleaseWorkFolder or RemoveWorkFolder. Before that, it
// sweeps parent's abandoned work folders of the family (SweepWorkFolders).
func MakeWorkFolder(parent, family, name string) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	SweepWorkFolders(parent, family)
	dir, err := os.MkdirTemp(parent, family+name)
	if err != nil {
		return "", err
	}
	f, err := hold(dir + heldSuffix)
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("work folder %s: %w", dir, err)
	}
	holds.Store(dir, f)
	return dir, nil
}

// ReleaseWorkFolder lets go of dir once it is no longer a work folder:
// renamed into place, or deleted. It does nothing for a folder this
// process does not hold.
func ReleaseWorkFolder(dir string) {
	if f, ok := holds.LoadAndDelete(dir); ok {
		os.Remove(dir + heldSuffix)
		f.(*os.File).Close()
	}
}

// RemoveWorkFolder deletes dir and lets go of it.
func RemoveWorkFolder(dir string) {
	os.RemoveAll(dir)
	ReleaseWorkFolder(dir)
}

// SweepWorkFolders deletes the work folders in parent named prefix* that
// no process holds, and lock files left without their folder; it returns
// how many folders it deleted. Folders other processes hold, and anything
// not named prefix*, are left alone.
func SweepWorkFolders(parent, prefix string) (removed int) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return 0
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		path := filepath.Join(parent, name)
		if lockFile, isLock := strings.CutSuffix(path, heldSuffix); isLock {
			if _, err := os.Lstat(lockFile); os.IsNotExist(err) && !e.IsDir() && abandoned(path) {
				os.Remove(path)
			}
			continue
		}
		if !e.IsDir() {
			continue
		}
		if _, err := os.Lstat(path + heldSuffix); os.IsNotExist(err) {
			if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < unheldGrace {
				continue
			}
		} else if !abandoned(path + heldSuffix) {
			continue
		}
		if os.RemoveAll(path) == nil {
			removed++
			os.Remove(path + heldSuffix)
		}
	}
	return removed
}
