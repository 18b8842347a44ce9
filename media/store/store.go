// Package store keeps a library of packaged assets: a folder on a local
// disk or a bucket prefix on an S3-compatible object store, behind one
// small interface (list, resolve the live version, read with a range,
// publish a new version atomically). The packager writes through it and
// the origin reads through it; neither knows which store it is.
//
// Both stores lay a library out the same way: every published build of an
// asset lives in an immutable version folder (.versions/NAME.BUILD/), and
// the asset's name points at the live one — a symbolic link in a folder,
// a small pointer object in a bucket. Publishing writes the whole version
// first and moves the pointer last, so a reader sees the old version or the
// new one, never a mix, and an interrupted publish leaves the old one live.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// publishHook, when set (by tests), is called by Publish at its steps:
// "uploaded" (object stores: every file is up), "installed" and "live".
var publishHook func(point, build string)

// atPublishStep calls publishHook.
func atPublishStep(point, build string) {
	if publishHook != nil {
		publishHook(point, build)
	}
}

// ErrNoAsset is returned for a name that is not in the library.
var ErrNoAsset = errors.New("no such asset")

// ErrUnavailable wraps a store that did not answer (down, refusing, or
// slower than the caller's deadline); the request may succeed later.
var ErrUnavailable = errors.New("library store unavailable")

// Version is the live version of one asset, as Current found it.
type Version struct {
	// ID names the version folder: NAME.BUILD.
	ID string
	// Dir is the version folder on disk; empty for an object store.
	Dir string
	// Tag changes whenever the pointer does (the pointer object's ETag).
	Tag string
	// Previous is the version this one replaced when it went live, where
	// the store records it (an object store's pointer does): see
	// Store.Previous.
	Previous string
}

// Progress is a snapshot of a publish: bytes written to the store.
type Progress struct {
	Done, Total int64
	Elapsed     time.Duration
	// Live is set on the one report made when the new version became the
	// one readers get; what follows it is housekeeping (pruning old
	// versions).
	Live bool
}

// Store is a library of assets.
type Store interface {
	// String names the library for messages: a folder or an s3:// URL.
	String() string
	// Names lists the assets, sorted.
	Names(ctx context.Context) ([]string, error)
	// Current resolves the live version of name. prev is the version the
	// caller holds (the zero Version for none): a store may answer it is
	// unchanged without reading it again. The error wraps ErrNoAsset for
	// a name that is not in the library.
	Current(ctx context.Context, name string, prev Version) (Version, error)
	// Previous resolves the version that v replaced, which a publish keeps
	// for the clients still streaming it: what a reader falls back to when
	// v cannot be served (damaged, a file missing) and it has served no
	// version of name before. The error wraps ErrNoAsset when the library
	// has none.
	Previous(ctx context.Context, name string, v Version) (Version, error)
	// ReadFile reads a whole file of a version, refusing one over limit
	// bytes. A missing file wraps fs.ErrNotExist.
	ReadFile(ctx context.Context, v Version, rel string, limit int64) ([]byte, error)
	// Open reads length bytes of a file of a version from off (length < 0:
	// to its end). It returns the reader and the file's whole size. A
	// missing file wraps fs.ErrNotExist.
	Open(ctx context.Context, v Version, rel string, off, length int64) (io.ReadCloser, int64, error)
	// Staging makes an empty local folder to build a version of name in.
	Staging(name string) (string, error)
	// Publish makes the finished staging folder the live version name.build,
	// then drops versions older than the previous one. On any error the
	// previous version stays live and complete. The staging folder is
	// consumed either way.
	Publish(ctx context.Context, staging, name, build string, progress func(Progress)) error
	// Check reports whether the store answers.
	Check(ctx context.Context) error
}

// Open returns the store a library location names: an s3://BUCKET/PREFIX
// URL or a folder.
func Open(ctx context.Context, location string, opt S3Options) (Store, error) {
	if IsS3(location) {
		return OpenS3(ctx, location, opt)
	}
	return Folder{Root: location}, nil
}

// IsS3 reports whether a library location is an object store URL.
func IsS3(location string) bool { return strings.HasPrefix(location, "s3://") }

// MaxNameLen bounds asset and rendition names.
const MaxNameLen = 128

// NameRule says in words what ValidName checks, for error messages.
var NameRule = fmt.Sprintf("use only A-Z a-z 0-9 . _ -, at most %d bytes, not starting with a dot", MaxNameLen)

// ValidName reports whether s may name an asset or rendition: it matches
// [A-Za-z0-9._-]+, is at most MaxNameLen bytes, is not "." or "..", and does
// not start with "." (hidden names are the library's own).
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen || s[0] == '.' {
		return false
	}
	// A loop, not a regexp: every request to the origin checks one or two
	// names, and the regexp was 3% of the origin's CPU serving manifests.
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// validRel reports whether rel names a file inside a version: one or more
// valid names joined by '/'. Callers build rel from validated names; this
// is the store's own guard that no key or path leaves the version.
func validRel(rel string) bool {
	if rel == "" {
		return false
	}
	for part := range strings.SplitSeq(rel, "/") {
		if !ValidName(part) {
			return false
		}
	}
	return true
}

// checkRel refuses a file name that is not a valid relative name.
func checkRel(rel string) error {
	if !validRel(rel) {
		return fmt.Errorf("library file %q: %w", rel, fs.ErrInvalid)
	}
	return nil
}

// versionsDir holds every version folder of a library.
const versionsDir = ".versions"

// isVersionOf reports whether version folder v is a build of name: the
// build suffix has no dots, so "a.b.BUILD" is a's build only if a is "a.b".
func isVersionOf(v, name string) bool {
	build, ok := strings.CutPrefix(v, name+".")
	return ok && build != "" && !strings.Contains(build, ".")
}
