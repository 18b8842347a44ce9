//go:build unix && !linux

package origin

import (
	"os"
	"syscall"
)

// fileIdentity is a file's inode; the change time's field is named
// differently on each of these systems, and is left out.
func fileIdentity(st os.FileInfo) (ino uint64, ctime int64) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Ino), 0
	}
	return 0, 0
}
