package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.json")
	for _, c := range []struct {
		data string
		mode os.FileMode
	}{{"first", 0o644}, {"second, replacing it", 0o600}} {
		if err := Write(path, []byte(c.data), c.mode); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		st, _ := os.Stat(path)
		if err != nil || string(got) != c.data || st.Mode().Perm() != c.mode {
			t.Fatalf("read %q (%v), mode %v; want %q, %v", got, err, st.Mode().Perm(), c.data, c.mode)
		}
	}
	// A folder that does not exist: an error, and nothing written.
	if err := Write(filepath.Join(dir, "missing", "m.json"), []byte("x"), 0o644); err == nil {
		t.Error("wrote into a missing folder")
	}
	// A target that cannot be replaced (a non-empty folder): the error
	// names it, the folder is intact and no temporary file is left.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(blocked, []byte("x"), 0o644); err == nil {
		t.Error("replaced a folder")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left behind: %v", entries)
	}
}
