package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
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
}

type diskEntry struct {
	file string
	size int64
	used time.Time
}

// diskHeader is the JSON header of an object file.
type diskHeader struct {
	Key          string        `json:"key"`
	Len          int           `json:"len"`
	SHA256       string        `json:"sha256"`
	ContentType  string        `json:"contentType"`
	ETag         string        `json:"etag"`
	LastModified string        `json:"lastModified"`
	CacheControl string        `json:"cacheControl"`
	LastSegment  string        `json:"lastSegment,omitempty"`
	Stored       time.Time     `json:"stored"`
	Expires      time.Time     `json:"expires"`
	SWR          time.Duration `json:"swr"`
	SIE          time.Duration `json:"sie"`
	NoCache      bool          `json:"noCache"`
}

func openDiskTier(dir string, limit int64, log *slog.Logger) (*diskTier, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("disk tier: %w", err)
	}
	d := &diskTier{dir: dir, limit: limit, log: log, index: map[string]*diskEntry{}}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.Remove(p) // a write interrupted by a crash
			return nil
		}
		h, size, err := readDiskHeader(p)
		if err != nil {
			log.Warn("disk tier: dropping unreadable object", "file", p, "err", err)
			os.Remove(p)
			return nil
		}
		info, _ := e.Info()
		used := time.Now()
		if info != nil {
			used = info.ModTime()
		}
		d.index[h.Key] = &diskEntry{file: p, size: size, used: used}
		d.bytes += size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("disk tier: %w", err)
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
		d.del(key)
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
	return &object{Key: h.Key, Body: body, ContentType: h.ContentType, ETag: h.ETag, LastModified: h.LastModified,
		CacheControl: h.CacheControl, LastSegment: h.LastSegment, Stored: h.Stored, Expires: h.Expires,
		SWR: h.SWR, SIE: h.SIE, NoCache: h.NoCache, Sum: sum}, nil
}

// put writes o atomically (temporary file, then rename) and evicts to fit.
func (d *diskTier) put(o *object) error {
	h := diskHeader{Key: o.Key, Len: len(o.Body), SHA256: hex.EncodeToString(o.Sum[:]), ContentType: o.ContentType,
		ETag: o.ETag, LastModified: o.LastModified, CacheControl: o.CacheControl, LastSegment: o.LastSegment,
		Stored: o.Stored, Expires: o.Expires, SWR: o.SWR, SIE: o.SIE, NoCache: o.NoCache}
	hdr, err := json.Marshal(h)
	if err != nil {
		return err
	}
	size := int64(4 + len(hdr) + len(o.Body))
	if size > d.limit/2 {
		return nil
	}
	path := d.fileFor(o.Key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	var lenBuf [4]byte
	binary.BigEndian.PutUint32(lenBuf[:], uint32(len(hdr)))
	buf.Write(lenBuf[:])
	buf.Write(hdr)
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		_, err = tmp.Write(o.Body)
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
	if old := d.index[o.Key]; old != nil {
		d.bytes -= old.size
	}
	d.index[o.Key] = &diskEntry{file: path, size: size, used: time.Now()}
	d.bytes += size
	d.evictLocked()
	d.mu.Unlock()
	return nil
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

func (d *diskTier) del(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.index[key]; e != nil {
		os.Remove(e.file)
		d.bytes -= e.size
		delete(d.index, key)
	}
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
