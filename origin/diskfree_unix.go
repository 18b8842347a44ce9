//go:build unix

package origin

import "syscall"

// freeBytes says how many bytes an unprivileged writer may still put in
// dir's file system; ok is false when that cannot be told.
func freeBytes(dir string) (free uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
