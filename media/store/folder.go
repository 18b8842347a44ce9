package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Folder is a library on a local disk. Each asset name is a symbolic link
// to an immutable version folder under .versions/, so replacing an asset
// is one atomic rename and a reader that resolved a version keeps a
// consistent view.
type Folder struct {
	Root string
}

// String is the folder's path.
func (l Folder) String() string { return l.Root }

// Names lists the assets of the library, sorted.
func (l Folder) Names(context.Context) ([]string, error) {
	entries, err := os.ReadDir(l.Root)
	if err != nil {
		return nil, fmt.Errorf("library %s: %w", l.Root, err)
	}
	var names []string
	for _, e := range entries {
		if ValidName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Resolve returns the version folder that name currently points to. The
// result never lies outside the library root.
func (l Folder) Resolve(name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("asset %q: %w", name, ErrNoAsset)
	}
	p := filepath.Join(l.Root, name)
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("asset %q: %w", name, ErrNoAsset)
		}
		return "", fmt.Errorf("asset %q: %w", name, err)
	}
	root, err := filepath.EvalSymlinks(l.Root)
	if err != nil {
		return "", fmt.Errorf("library %s: %w", l.Root, err)
	}
	rel, err := filepath.Rel(root, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("asset %q: resolves outside the library", name)
	}
	return target, nil
}

// Current resolves name's link; the version is its target folder.
func (l Folder) Current(_ context.Context, name string, _ Version) (Version, error) {
	dir, err := l.Resolve(name)
	if err != nil {
		return Version{}, err
	}
	return Version{ID: filepath.Base(dir), Dir: dir, Tag: dir}, nil
}

// Previous is the newest version folder of name other than v's. A folder
// library keeps the live version and the one it replaced, and a version
// folder only ever appears whole (renamed in from its staging folder), so
// that is the replaced one. Builds name their time first, so the newest
// sorts last; a plain folder moved aside by a publish ("legacy-BUILD")
// counts as of the build that replaced it.
func (l Folder) Previous(_ context.Context, name string, v Version) (Version, error) {
	if !ValidName(name) {
		return Version{}, fmt.Errorf("asset %q: %w", name, ErrNoAsset)
	}
	entries, err := os.ReadDir(filepath.Join(l.Root, versionsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Version{}, fmt.Errorf("library %s: %w", l.Root, err)
	}
	best, bestKey := "", ""
	for _, e := range entries {
		id := e.Name()
		if id == v.ID || !e.IsDir() || !isVersionOf(id, name) {
			continue
		}
		key := strings.TrimPrefix(strings.TrimPrefix(id, name+"."), "legacy-")
		if best == "" || key > bestKey {
			best, bestKey = id, key
		}
	}
	if best == "" {
		return Version{}, fmt.Errorf("asset %q: no version before %s: %w", name, v.ID, ErrNoAsset)
	}
	dir := filepath.Join(l.Root, versionsDir, best)
	return Version{ID: best, Dir: dir, Tag: dir}, nil
}

// ReadFile reads a file of a version folder, up to limit bytes.
func (l Folder) ReadFile(_ context.Context, v Version, rel string, limit int64) ([]byte, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(v.Dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", rel, limit)
	}
	return data, nil
}

// Open opens a file of a version folder at off.
func (l Folder) Open(_ context.Context, v Version, rel string, off, length int64) (io.ReadCloser, int64, error) {
	if err := checkRel(rel); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(filepath.Join(v.Dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if off < 0 || off > st.Size() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: offset %d outside %d bytes: %w", rel, off, st.Size(), fs.ErrInvalid)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	if length < 0 {
		return f, st.Size(), nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, st.Size(), nil
}

// Staging makes a hidden folder inside the library, on the same file
// system, so that publishing is a rename.
func (l Folder) Staging(name string) (string, error) {
	if err := os.MkdirAll(l.Root, 0o755); err != nil {
		return "", fmt.Errorf("library %s: %w", l.Root, err)
	}
	dir, err := MakeWorkFolder(l.Root, ".staging-", name+"-")
	if err != nil {
		return "", fmt.Errorf("library %s: %w", l.Root, err)
	}
	return dir, nil
}

// Check lists the library folder.
func (l Folder) Check(context.Context) error {
	// The error names the folder already, and a caller names the library.
	_, err := os.ReadDir(l.Root)
	return err
}

// Publish moves a finished staging folder into place as the new version
// of name, then drops versions older than the previous one (clients still
// streaming the previous version keep being served until they reload).
func (l Folder) Publish(_ context.Context, staging, name, build string, progress func(Progress)) (err error) {
	defer func() {
		if err != nil {
			RemoveWorkFolder(staging)
		} else {
			ReleaseWorkFolder(staging) // renamed into place
		}
	}()
	if err := os.Chmod(staging, 0o755); err != nil {
		return fmt.Errorf("library %s: %w", l.Root, err)
	}
	vdir := filepath.Join(l.Root, versionsDir)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return fmt.Errorf("library: %w", err)
	}
	// Publishes to one folder take turns from here to the end of pruning:
	// one publish of a name would otherwise prune the version another has
	// just moved in, or made live.
	unlock, err := lockFolder(vdir)
	if err != nil {
		return err
	}
	defer unlock()
	version := name + "." + build
	if err := os.Rename(staging, filepath.Join(vdir, version)); err != nil {
		return fmt.Errorf("library: install %s: %w", name, err)
	}
	atPublishStep("installed", build)
	link := filepath.Join(l.Root, name)
	previous := ""
	if st, err := os.Lstat(link); err == nil {
		if st.Mode()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(link); err == nil {
				previous = filepath.Base(t)
			}
		} else if st.IsDir() {
			// A plain folder (copied in by hand): keep it as the previous version.
			previous = name + ".legacy-" + build
			if err := os.Rename(link, filepath.Join(vdir, previous)); err != nil {
				return fmt.Errorf("library: move aside %s: %w", link, err)
			}
		}
	}
	tmpLink := filepath.Join(l.Root, ".link-"+version)
	if err := os.Symlink(filepath.Join(versionsDir, version), tmpLink); err != nil {
		return fmt.Errorf("library: %w", err)
	}
	if err := os.Rename(tmpLink, link); err != nil {
		os.Remove(tmpLink)
		return fmt.Errorf("library: publish %s: %w", name, err)
	}
	if progress != nil {
		progress(Progress{Live: true})
	}
	atPublishStep("live", build)
	l.prune(name, version, previous)
	return nil
}

// publishLock is the file in .versions that publishes lock (lock_unix.go);
// it is no version of any name (a version's name has a build after a dot).
const publishLock = ".publish.lock"

// prune removes the versions of name other than current and previous.
func (l Folder) prune(name, current, previous string) {
	vdir := filepath.Join(l.Root, versionsDir)
	entries, err := os.ReadDir(vdir)
	if err != nil {
		return
	}
	for _, e := range entries {
		v := e.Name()
		if v == current || v == previous || !isVersionOf(v, name) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(vdir, v))
	}
}
