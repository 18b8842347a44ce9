//go:build !unix

package store

import "os"

// hold creates lock file path; without flock it holds nothing, and
// abandoned never says a folder is free: no work folder is swept here.
func hold(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
}

func abandoned(string) bool { return false }
