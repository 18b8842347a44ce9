package origin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/deepcast/deepcast/media"
)

// errDamaged is a library file that is not what asset.json says it is:
// another size, or other bytes. It is never served: an edge would keep a
// truncated segment for a year under the whole one's ETag.
var errDamaged = errors.New("file does not match asset.json")

// verified is what a file looked like when its bytes last matched their
// checksum: while it looks the same, the bytes are taken as unchanged.
type verified struct {
	size  int64
	mtime time.Time
	// ino and ctime (the inode's change time, which every write moves and
	// no user can set back) catch a file rewritten in place with its
	// modification time restored (cp --preserve, rsync -t, touch -r).
	ino   uint64
	ctime int64
}

// fileChecks remembers, per version folder and file, the last verified
// look of each file: the checksum is computed on a file's first serve and
// again whenever it changes (size, modification or change time, inode), never per
// request; the size is compared on every serve.
type fileChecks struct{ m sync.Map } // path -> verified

// open opens rel in e's folder and checks it against info. It returns
// errDamaged (wrapped with what differs) for a damaged file, and the
// open error (os.ErrNotExist for a pruned version) otherwise.
func (s *Server) openVerified(e *Entry, rel string, info media.FileInfo) (*os.File, error) {
	path := filepath.Join(e.Dir, rel)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() != info.Size {
		f.Close()
		return nil, s.damaged(e, rel, fmt.Errorf("%w: %d bytes, asset.json says %d", errDamaged, st.Size(), info.Size))
	}
	look := verified{size: st.Size(), mtime: st.ModTime()}
	look.ino, look.ctime = fileIdentity(st)
	if v, ok := s.checks.m.Load(path); ok && v.(verified) == look {
		return f, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != info.SHA256 {
		f.Close()
		return nil, s.damaged(e, rel, fmt.Errorf("%w: SHA-256 %s, asset.json says %s", errDamaged, got[:16], info.SHA256[:min(16, len(info.SHA256))]))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	s.checks.m.Store(path, look)
	return f, nil
}

// damaged logs and counts a damaged file of e, forgets that it was
// verified, and returns err.
func (s *Server) damaged(e *Entry, rel string, err error) error {
	s.noteDamaged(e.Name, rel, e.Dir, err)
	s.checks.m.Delete(filepath.Join(e.Dir, rel))
	return err
}

// noteDamaged is the log line and the count of one refused damaged file.
func (s *Server) noteDamaged(asset, rel, dir string, err error) {
	s.log.Error("damaged library file not served", "asset", asset, "file", rel, "dir", dir, "err", err)
	s.metrics.damaged.Inc()
}
