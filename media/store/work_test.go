package store

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be a process that makes a work folder and
// waits to be killed (DEEPCAST_TEST_HOLD=PARENT).
func TestMain(m *testing.M) {
	if parent := os.Getenv("DEEPCAST_TEST_HOLD"); parent != "" {
		dir, err := MakeWorkFolder(parent, "deepcast-staging-", "held-")
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString(dir + "\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestWorkFoldersOfEndedProcessesAreSwept(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock")
	}
	parent := t.TempDir()

	// A process killed while it holds a work folder.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DEEPCAST_TEST_HOLD="+parent)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	killedDir := strings.TrimSpace(line)
	if err != nil || !strings.HasPrefix(killedDir, parent) {
		cmd.Process.Kill()
		t.Fatalf("helper: %q, %v", line, err)
	}
	os.WriteFile(filepath.Join(killedDir, "segment.m4s"), make([]byte, 1<<20), 0o644)
	// While it lives, its folder stays.
	if n := SweepWorkFolders(parent, "deepcast-staging-"); n != 0 {
		t.Errorf("a live process's work folder was swept")
	}
	cmd.Process.Kill()
	cmd.Wait()

	// The next work folder made there sweeps the dead process's away.
	mine, err := MakeWorkFolder(parent, "deepcast-staging-", "mine-")
	if err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	if exists(killedDir) || exists(killedDir+heldSuffix) {
		t.Errorf("a killed process's work folder was left: folder %v, lock file %v", exists(killedDir), exists(killedDir+heldSuffix))
	}

	// This process's own folder, another family, an old folder without a
	// lock file (from before holds), a young one, a stray lock file.
	other := filepath.Join(parent, "deepcast-upload-x")
	oldUnheld := filepath.Join(parent, "deepcast-staging-old")
	youngUnheld := filepath.Join(parent, "deepcast-staging-young")
	stray := filepath.Join(parent, "deepcast-staging-gone"+heldSuffix)
	for _, d := range []string{other, oldUnheld, youngUnheld} {
		os.Mkdir(d, 0o755)
	}
	os.WriteFile(stray, nil, 0o644)
	long := time.Now().Add(-unheldGrace - time.Hour)
	os.Chtimes(oldUnheld, long, long)

	if n := SweepWorkFolders(parent, "deepcast-staging-"); n != 1 || exists(oldUnheld) {
		t.Errorf("swept %d, old unheld folder left: %v; want it swept alone", n, exists(oldUnheld))
	}
	if !exists(mine) || !exists(other) || !exists(youngUnheld) {
		t.Errorf("swept what it must not: own %v, other family %v, young unheld %v", exists(mine), exists(other), exists(youngUnheld))
	}
	if exists(stray) {
		t.Errorf("a lock file without its folder was left")
	}
	RemoveWorkFolder(mine)
	if exists(mine) || exists(mine+heldSuffix) {
		t.Errorf("RemoveWorkFolder left the folder or its lock file")
	}
}
