package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// diskTier keeps objects as files (header + body, written atomically) with
// an in-memory index rebuilt from the files at start, so a restarted node
// is warm. Bounded by size; the least recently used objects go first.
// Every read checks length and SHA-256: a corrupt file is removed, never served.
type diskTier struct {
	dir   string
	limit int64
	log   *slog.Logger

	mu        sync.Mutex
	index     map[string]*diskEntry
	bytes     int64
	evictions int64

	writeErrors atomic.Int64 // objects not written: a full or failing file system
}

// used is the bytes the tier holds.
func (d *diskTier) used() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bytes
}

type diskEntry struct {
	file string
	size int64
	used time.Time
	// checked is set on files this process wrote: their bytes were
	// hashed as they arrived. A file found at start is hashed against
	// its header once, by check, before its first hit as a large object
	// (see bigEntry); bad says it did not match.
	checked bool
	check   sync.Once
	bad     bool
}

// diskHeader is the JSON header of an object file.
type diskHeader struct {
	Key    string `json:"key"`
	Len    int    `json:"len"`
	SHA256 string `json:"sha256"`
	objectMeta
}

// diskMarker is the file that makes a folder the disk tier's: the tier
// only ever removes files in a folder that has it, and only files named as
// the tier names them.
const diskMarker = ".deepcast-disk-tier"

// spoolFolder is the subfolder of the disk tier where large objects are
// spooled while they arrive (see large.go); what is left there after a
// crash is removed at start.
const spoolFolder = ".spool"

// diskMarkerText is the marker's content, for a person who finds the folder.
const diskMarkerText = "This folder is a deepcast edge's disk tier: the edge adds and removes files here.\n"

// claimDiskDir makes sure dir is the tier's own: an empty or new folder is
// claimed with the marker file; a folder that has the marker is the
// tier's; any other folder is refused, so a mistyped -disk never deletes a
// user's files. (A folder of a version before the marker, holding only
// files in the tier's layout, is claimed too.)
func claimDiskDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("disk tier: %w", err)
	}
	marker := filepath.Join(dir, diskMarker)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("disk tier: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !isShardDir(e.Name()) || !onlyTierFiles(filepath.Join(dir, e.Name())) {
			return fmt.Errorf("disk tier: %s is not empty and has no %s file: refusing to use a folder the edge did not create (give an empty or new folder)", dir, diskMarker)
		}
	}
	if err := os.WriteFile(marker, []byte(diskMarkerText), 0o644); err != nil {
		return fmt.Errorf("disk tier: %w", err)
	}
	return nil
}

// isShardDir reports a name of the tier's two-hex-digit subfolders.
func isShardDir(name string) bool { return len(name) == 2 && isLowerHex(name) }

// isObjectFile reports a name the tier gives an object file (64 hex digits)
// or its temporary file.
func isObjectFile(name string) bool {
	return len(name) == 64 && isLowerHex(name) || strings.HasPrefix(name, ".tmp-")
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// onlyTierFiles reports whether dir holds object files only.
func onlyTierFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !isObjectFile(e.Name()) {
			return false
		}
	}
	return true
}

func openDiskTier(dir string, limit int64, log *slog.Logger) (*diskTier, error) {
	if err := claimDiskDir(dir); err != nil {
		return nil, err
	}
	d := &diskTier{dir: dir, limit: limit, log: log, index: map[string]*diskEntry{}}
	if spools, err := os.ReadDir(filepath.Join(dir, spoolFolder)); err == nil {
		for _, e := range spools {
			if strings.HasPrefix(e.Name(), "deepcast-spool-") {
				os.Remove(filepath.Join(dir, spoolFolder, e.Name())) // ours, from before a crash
			}
		}
	}
	shards, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("disk tier: %w", err)
	}
	for _, shard := range shards {
		if !shard.IsDir() || !isShardDir(shard.Name()) {
			continue // the marker, or something someone put there: not ours to touch
		}
		files, err := os.ReadDir(filepath.Join(dir, shard.Name()))
		if err != nil {
			return nil, fmt.Errorf("disk tier: %w", err)
		}
		for _, e := range files {
			p := filepath.Join(dir, shard.Name(), e.Name())
			if !e.Type().IsRegular() || !isObjectFile(e.Name()) {
				continue
			}
			if strings.HasPrefix(e.Name(), ".tmp-") {
				os.Remove(p) // a write of ours interrupted by a crash
				continue
			}
			h, size, err := readDiskHeader(p)
			if err != nil || d.fileFor(h.Key) != p {
				if err == nil {
					err = fmt.Errorf("holds key %q, which belongs in another file", h.Key)
				}
				log.Warn("disk tier: dropping unreadable object", "file", p, "err", err)
				os.Remove(p)
				continue
			}
			used := time.Now()
			if info, err := e.Info(); err == nil {
				used = info.ModTime()
			}
			d.index[h.Key] = &diskEntry{file: p, size: size, used: used} // not checked: see bigEntry
			d.bytes += size
		}
	}
	d.mu.Lock()
	d.evictLocked()
	d.mu.Unlock()
	return d, nil
}

func (d *diskTier) fileFor(key string) string {
	sum := sha256.Sum256([]byte(key))
	name := hex.EncodeToString(sum[:])
	return filepath.Join(d.dir, name[:2], name)
}

func readDiskHeader(path string) (*diskHeader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var lenBuf [4]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return nil, 0, err
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n == 0 || n > 64<<10 {
		return nil, 0, fmt.Errorf("bad header length %d", n)
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 4); err != nil {
		return nil, 0, err
	}
	var h diskHeader
	if err := json.Unmarshal(buf, &h); err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	return &h, st.Size(), nil
}

// get reads and verifies an object; a corrupt or truncated file is removed.
func (d *diskTier) get(key string) (*object, bool) {
	d.mu.Lock()
	e := d.index[key]
	if e != nil {
		e.used = time.Now()
	}
	d.mu.Unlock()
	if e == nil {
		return nil, false
	}
	o, err := d.read(e.file, key)
	if err != nil {
		d.log.Warn("disk tier: corrupt object removed, will refetch", "key", key, "err", err)
		d.delEntry(key, e)
		return nil, false
	}
	return o, true
}

func (d *diskTier) read(path, key string) (*object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 4 {
		return nil, errors.New("truncated header")
	}
	n := int(binary.BigEndian.Uint32(data))
	if n <= 0 || 4+n > len(data) {
		return nil, errors.New("truncated header")
	}
	var h diskHeader
	if err := json.Unmarshal(data[4:4+n], &h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	body := data[4+n:]
	if h.Key != key {
		return nil, fmt.Errorf("file holds %q", h.Key)
	}
	if len(body) != h.Len {
		return nil, fmt.Errorf("body is %d bytes, header says %d", len(body), h.Len)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != h.SHA256 {
		return nil, errors.New("checksum mismatch")
	}
	return &object{Key: h.Key, Body: body, objectMeta: h.objectMeta, Sum: sum}, nil
}

// put writes o atomically (temporary file, then rename) and evicts to fit.
func (d *diskTier) put(o *object) error {
	h := diskHeader{Key: o.Key, Len: len(o.Body), SHA256: hex.EncodeToString(o.Sum[:]), objectMeta: o.objectMeta}
	return d.write(o.Key, h, bytes.NewReader(o.Body), int64(len(o.Body)))
}

// write stores header h and size bytes of body as key's file, atomically
// (temporary file, then rename), and evicts to fit.
func (d *diskTier) write(key string, h diskHeader, body io.Reader, size int64) (err error) {
	defer func() {
		if err != nil {
			d.writeErrors.Add(1)
		}
	}()
	hdr, err := json.Marshal(h)
	if err != nil {
		return err
	}
	total := int64(4+len(hdr)) + size
	if total > d.limit/2 {
		return nil
	}
	path := d.fileFor(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	var lenBuf [4]byte
	binary.BigEndian.PutUint32(lenBuf[:], uint32(len(hdr)))
	_, err = tmp.Write(append(lenBuf[:], hdr...))
	if err == nil {
		var n int64
		n, err = io.Copy(tmp, body)
		if err == nil && n != size {
			err = fmt.Errorf("wrote %d of %d bytes", n, size)
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("disk tier: %w", err)
	}
	d.mu.Lock()
	if old := d.index[key]; old != nil {
		d.bytes -= old.size
	}
	d.index[key] = &diskEntry{file: path, size: total, used: time.Now(), checked: true}
	d.bytes += total
	d.evictLocked()
	d.mu.Unlock()
	return nil
}

// putFile stores an object whose body is the first size bytes of body (a
// finished spool) with SHA-256 sum, as put does for one in memory.
func (d *diskTier) putFile(o *object, sum []byte, body *os.File, size int64) error {
	h := diskHeader{Key: o.Key, Len: int(size), SHA256: hex.EncodeToString(sum), objectMeta: o.objectMeta}
	return d.write(o.Key, h, io.NewSectionReader(body, 0, size), size)
}

// holdsBig reports whether key's file holds more than limit bytes.
func (d *diskTier) holdsBig(key string, limit int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.index[key]
	return e != nil && e.size > limit
}

// bigEntry returns the complete file of key when its body is larger than
// limit: served by file, never read into memory. A file whose length
// disagrees with its header is removed.
//
// A large body is sent while it is read, so its SHA-256 cannot be checked
// on every hit as a small object's is. Files this process wrote were
// hashed as they arrived; a file found at start is hashed once, before its
// first hit. That is where damage comes from: files are renamed into place
// without fsync, so after a crash or a power cut one may have its full
// length and blocks that were never written (zeros), and a disk may rot
// while the node is down. Such a file is removed and fetched again, never
// served under its immutable ETag.
func (d *diskTier) bigEntry(key string, limit int64) (*bigObject, bool) {
	d.mu.Lock()
	e := d.index[key]
	if e != nil {
		e.used = time.Now()
	}
	d.mu.Unlock()
	if e == nil || e.size <= limit {
		return nil, false
	}
	h, size, err := readDiskHeader(e.file)
	if err == nil && h.Key != key {
		err = fmt.Errorf("file holds %q", h.Key)
	}
	var offset int64
	if err == nil {
		offset = size - int64(h.Len)
		if h.Len < 0 || offset < 4 {
			err = fmt.Errorf("body is %d bytes, header says %d", size, h.Len)
		}
	}
	if err == nil && !e.checked {
		e.check.Do(func() { e.bad = !bodyMatches(e.file, offset, h.SHA256) })
		if e.bad {
			err = errors.New("checksum mismatch")
		}
	}
	if err != nil {
		d.log.Warn("disk tier: corrupt object removed, will refetch", "key", key, "err", err)
		d.delEntry(key, e)
		return nil, false
	}
	meta := &object{Key: h.Key, objectMeta: h.objectMeta}
	return &bigObject{meta: meta, size: int64(h.Len), path: e.file, offset: offset}, true
}

// bodyMatches reports whether the bytes of file from offset on have the
// SHA-256 whose hex is want.
func bodyMatches(file string, offset int64, want string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return false
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return false
	}
	return hex.EncodeToString(sum.Sum(nil)) == want
}

// evictLocked removes least recently used objects until the tier fits.
func (d *diskTier) evictLocked() {
	if d.bytes <= d.limit {
		return
	}
	type kv struct {
		key string
		e   *diskEntry
	}
	all := make([]kv, 0, len(d.index))
	for k, e := range d.index {
		all = append(all, kv{k, e})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].e.used.Before(all[j].e.used) })
	for _, it := range all {
		if d.bytes <= d.limit*9/10 {
			break
		}
		os.Remove(it.e.file)
		delete(d.index, it.key)
		d.bytes -= it.e.size
		d.evictions++
	}
}

// del removes key and reports whether the tier held it.
func (d *diskTier) del(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.index[key]
	if e != nil {
		d.removeLocked(key, e)
	}
	return e != nil
}

// delEntry removes key's file if e is still its entry: a write that
// replaced it since (at the same path) is kept.
func (d *diskTier) delEntry(key string, e *diskEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.index[key] == e {
		d.removeLocked(key, e)
	}
}

// removeLocked removes entry e of key and its file.
func (d *diskTier) removeLocked(key string, e *diskEntry) {
	os.Remove(e.file)
	d.bytes -= e.size
	delete(d.index, key)
}

func (d *diskTier) keysWithPrefix(prefix string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for k := range d.index {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func (d *diskTier) stats() (objects int, bytes, evictions int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.index), d.bytes, d.evictions
}
