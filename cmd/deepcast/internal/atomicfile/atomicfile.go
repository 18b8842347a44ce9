// Package atomicfile writes files so that a reader never sees half of
// one: the bytes go to a temporary file in the same folder, which then
// replaces the target by rename.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write puts data at path with the given mode, atomically. On failure the
// target is untouched and no temporary file is left.
func Write(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
