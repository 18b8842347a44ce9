package origin

import (
	"os"
	"syscall"
)

// fileIdentity is a file's inode and change time, 0 where unknown.
func fileIdentity(st os.FileInfo) (ino uint64, ctime int64) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Ino, sys.Ctim.Nano()
	}
	return 0, 0
}
