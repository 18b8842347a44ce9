package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3Options configure the object store client beyond what the SDK's
// standard chain (environment, shared config files, instance roles) gives.
type S3Options struct {
	// Endpoint is the store's URL for a non-AWS store; empty: the SDK's
	// choice (AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
	Endpoint string
	// PathStyle addresses the bucket in the path, not the host name.
	PathStyle bool
	// Parallel bounds the files uploaded at once by Publish (16 when zero).
	Parallel int
	// NoDirect reads whole objects through the SDK even from a plain-HTTP
	// endpoint (see Direct), for comparison.
	NoDirect bool
}

// defaultRegion is used when the standard chain names none: S3-compatible
// stores accept any region, and the SDK refuses to sign without one.
const defaultRegion = "us-east-1"

// maxPointer bounds a pointer object: it holds one version name.
const maxPointer = 4 << 10

// S3 is a library under a prefix of a bucket on an S3-compatible store.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or "a/b/" (with the slash)
	location string
	parallel int
	// direct: the endpoint is plain HTTP, and whole objects are read on
	// connections of pool (see OpenDirect).
	direct  bool
	presign *s3.PresignClient
	pool    connPool
	signed  sync.Map // key -> *signedRequest
	nsigned atomic.Int64
}

// OpenS3 opens the library at an s3://BUCKET/PREFIX URL. It does not
// contact the store: Check does.
func OpenS3(ctx context.Context, location string, opt S3Options) (*S3, error) {
	bucket, prefix, err := parseS3URL(location)
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("library %s: AWS configuration: %w", location, err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	// Segments are fetched by many requests at once: keep a connection
	// for each instead of net/http's two idle ones per host.
	cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = 512
	})
	endpoint := opt.Endpoint
	if endpoint == "" {
		endpoint = cmp.Or(os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL"))
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opt.Endpoint != "" {
			o.BaseEndpoint = aws.String(opt.Endpoint)
		}
		// A bucket cannot be a subdomain of an IP address or localhost:
		// such endpoints take the bucket in the path whatever was asked.
		o.UsePathStyle = opt.PathStyle || hostOnlyEndpoint(endpoint)
		// Checksums only where S3 requires them: many S3-compatible stores
		// refuse the SDK's default trailing checksums on uploads.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	parallel := opt.Parallel
	if parallel <= 0 {
		parallel = 16
	}
	// The canonical URL: what messages print and what String returns.
	location = strings.TrimSuffix("s3://"+bucket+"/"+prefix, "/")
	return &S3{client: client, bucket: bucket, prefix: prefix, location: location, parallel: parallel,
		direct: directFor(endpoint) && !opt.NoDirect, presign: s3.NewPresignClient(client)}, nil
}

// hostOnlyEndpoint reports an endpoint URL whose host is an IP address or
// localhost.
func hostOnlyEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return false
	}
	h := u.Hostname()
	return h == "localhost" || net.ParseIP(h) != nil
}

// parseS3URL splits s3://BUCKET/PREFIX. The prefix's parts must be valid
// names, so no key the library makes can leave it.
func parseS3URL(location string) (bucket, prefix string, err error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", "", fmt.Errorf("library %q: want s3://BUCKET/PREFIX", location)
	}
	if !validBucket(u.Host) {
		return "", "", fmt.Errorf("library %q: bucket %q is not a valid bucket name", location, u.Host)
	}
	p := strings.Trim(u.Path, "/")
	if p != "" {
		if u.RawPath != "" || !validRel(p) {
			return "", "", fmt.Errorf("library %q: prefix %q must be names of [A-Za-z0-9._-] joined by '/'", location, p)
		}
		p += "/"
	}
	return u.Host, p, nil
}

// validBucket checks S3's bucket naming rules: 3 to 63 of [a-z0-9.-],
// starting and ending with a letter or digit, no "..".
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 || strings.Contains(b, "..") {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '.' && c != '-' || i == 0 || i == len(b)-1) {
			return false
		}
	}
	return true
}

// String is the library's URL.
func (s *S3) String() string { return s.location }

// pointerKey is the object naming name's live version.
func (s *S3) pointerKey(name string) string { return s.prefix + name }

// versionKey is the key of a file of a version.
func (s *S3) versionKey(version, rel string) string {
	return s.prefix + versionsDir + "/" + version + "/" + rel
}

// pointer is the content of a pointer object.
type pointer struct {
	Format  int    `json:"format"`
	Version string `json:"version"`
	// Previous is the version this one replaced (kept by the pruning),
	// for readers that cannot serve this one; absent in pointers written
	// before it was recorded, and for a first version.
	Previous string `json:"previous,omitempty"`
}

// Names lists the pointer objects directly under the prefix.
func (s *S3) Names(ctx context.Context) ([]string, error) {
	var names []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail("list", s.prefix, err)
		}
		for _, o := range page.Contents {
			if n := strings.TrimPrefix(aws.ToString(o.Key), s.prefix); ValidName(n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// Current reads name's pointer object, conditionally on prev's ETag.
func (s *S3) Current(ctx context.Context, name string, prev Version) (Version, error) {
	if !ValidName(name) {
		return Version{}, fmt.Errorf("asset %q: %w", name, ErrNoAsset)
	}
	p, err := s.getPointer(ctx, name, prev.Tag)
	if err != nil {
		if status(err) == http.StatusNotModified {
			return prev, nil
		}
		return Version{}, err
	}
	return Version{ID: p.Version, Tag: p.tag, Previous: p.Previous}, nil
}

// Previous is the version v's pointer names as the one it replaced.
func (s *S3) Previous(_ context.Context, name string, v Version) (Version, error) {
	if v.Previous == "" || v.Previous == v.ID {
		return Version{}, fmt.Errorf("asset %q: no version before %s recorded: %w", name, v.ID, ErrNoAsset)
	}
	// No Tag: the pointer's ETag is v's, and a check of the pointer with
	// it would take "unchanged" for "still the previous version".
	return Version{ID: v.Previous}, nil
}

// storedPointer is a pointer object as read from the store.
type storedPointer struct {
	pointer
	tag      string
	modified time.Time // when it was written, by the store's clock
}

// getPointer reads and checks name's pointer object; with ifNoneMatch, an
// unchanged one is the store's 304 error.
func (s *S3) getPointer(ctx context.Context, name, ifNoneMatch string) (storedPointer, error) {
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.pointerKey(name))}
	if ifNoneMatch != "" {
		in.IfNoneMatch = aws.String(ifNoneMatch)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if status(err) == http.StatusNotModified {
			return storedPointer{}, err
		}
		if notFound(err) {
			return storedPointer{}, fmt.Errorf("asset %q: %w", name, ErrNoAsset)
		}
		return storedPointer{}, s.fail("asset "+name, s.pointerKey(name), err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxPointer+1))
	if err != nil {
		return storedPointer{}, s.fail("asset "+name, s.pointerKey(name), err)
	}
	var p pointer
	if len(data) > maxPointer || json.Unmarshal(data, &p) != nil || p.Format != 1 || !isVersionOf(p.Version, name) {
		// A pointer to another asset's version (or anything else) is not
		// followed: the key space outside name's versions stays out of reach.
		return storedPointer{}, fmt.Errorf("asset %q: pointer object %s is not a version of it", name, s.pointerKey(name))
	}
	if !isVersionOf(p.Previous, name) {
		p.Previous = "" // the same rule for the version it replaced
	}
	return storedPointer{pointer: p, tag: aws.ToString(out.ETag), modified: aws.ToTime(out.LastModified)}, nil
}

// ReadFile reads a whole (small) object of a version.
func (s *S3) ReadFile(ctx context.Context, v Version, rel string, limit int64) ([]byte, error) {
	body, size, err := s.Open(ctx, v, rel, 0, -1)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if size > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", rel, size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, s.fail("read", s.versionKey(v.ID, rel), err)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("%s: read %d of %d bytes: %w", rel, len(data), size, ErrUnavailable)
	}
	return data, nil
}

// Open GETs an object of a version, with a Range when not all of it is
// wanted; the body streams from the store.
func (s *S3) Open(ctx context.Context, v Version, rel string, off, length int64) (io.ReadCloser, int64, error) {
	if err := checkRel(rel); err != nil {
		return nil, 0, err
	}
	if !isVersionName(v.ID) {
		return nil, 0, fmt.Errorf("version %q: %w", v.ID, fs.ErrInvalid)
	}
	if off < 0 || length == 0 {
		return nil, 0, fmt.Errorf("%s: range at %d of %d bytes: %w", rel, off, length, fs.ErrInvalid)
	}
	key := s.versionKey(v.ID, rel)
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	switch {
	case length > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+length-1, 10))
	case off > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(off, 10) + "-")
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, 0, s.fail("read", key, err)
	}
	size := aws.ToInt64(out.ContentLength)
	if in.Range != nil {
		// "bytes FIRST-LAST/SIZE": the whole object's size is after the slash.
		_, total, ok := strings.Cut(aws.ToString(out.ContentRange), "/")
		n, err := strconv.ParseInt(total, 10, 64)
		if !ok || err != nil {
			out.Body.Close()
			return nil, 0, fmt.Errorf("%s: store answered a range with Content-Range %q: %w", key, aws.ToString(out.ContentRange), ErrUnavailable)
		}
		size = n
	}
	return out.Body, size, nil
}

// isVersionName reports whether id can name a version folder.
func isVersionName(id string) bool {
	name, build, ok := cutLast(id, ".")
	return ok && ValidName(id) && ValidName(name) && build != ""
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// Staging makes a local temporary folder: the version is built on disk
// and uploaded whole.
func (s *S3) Staging(name string) (string, error) {
	dir, err := MakeWorkFolder("", "deepcast-staging-", name+"-")
	if err != nil {
		return "", fmt.Errorf("staging %s: %w", name, err)
	}
	return dir, nil
}

// Check asks the store about the bucket.
func (s *S3) Check(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		return s.fail("bucket", "", err)
	}
	return nil
}

// stagedFile is one file of a staging folder to upload.
type stagedFile struct {
	rel  string
	size int64
}

// Publish uploads the staging folder under .versions/NAME.BUILD/ with
// bounded parallel uploads, then writes the pointer object (the only
// write a reader sees), reports Live, and deletes the versions older than
// the one it replaced (which stays, as the previous one). Pruning waits
// until the new version is live, as in the folder library: its deletes
// would otherwise compete with the uploads, and publishing is done for
// readers when the pointer is written. If an upload fails or ctx ends
// first, what was uploaded is deleted and the pointer is not touched.
func (s *S3) Publish(ctx context.Context, staging, name, build string, progress func(Progress)) (err error) {
	defer RemoveWorkFolder(staging)
	version := name + "." + build
	if !ValidName(name) || !isVersionOf(version, name) {
		return fmt.Errorf("publish %q build %q: invalid name", name, build)
	}
	files, total, err := listStaging(staging)
	if err != nil {
		return err
	}
	start := time.Now()
	var done atomic.Int64
	var pmu sync.Mutex
	report := func(live bool) {
		if progress != nil {
			pmu.Lock()
			progress(Progress{Done: done.Load(), Total: total, Elapsed: time.Since(start), Live: live})
			pmu.Unlock()
		}
	}
	report(false)
	// The marker tells concurrent publishes of name that this version is
	// being written, so that their pruning leaves it alone; it is the
	// first thing written, so a store refusing writes fails here.
	stopBeat, err := s.beginPublish(ctx, version)
	if err != nil {
		return fmt.Errorf("publish %s to %s: %w", name, s.location, err)
	}
	defer stopBeat()
	// Nothing points at a version that failed; remove it even when ctx is
	// cancelled (Ctrl-C), within a bound of its own.
	abandon := func(err error) error {
		stopBeat()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := s.deletePartial(cctx, version); derr != nil {
			err = fmt.Errorf("%w (and the partial upload stays, to be pruned by a later publish: %v)", err, derr)
		}
		return fmt.Errorf("publish %s to %s: %w", name, s.location, err)
	}
	if err := s.uploadAll(ctx, staging, version, files, func(n int64) { done.Add(n); report(false) }); err != nil {
		return abandon(err)
	}
	atPublishStep("uploaded", build)
	if err := s.checkComplete(ctx, version, files); err != nil {
		return abandon(err)
	}
	atPublishStep("installed", build)
	// The version this one replaces is kept for the clients streaming it:
	// read just before the pointer moves, since another publish of name
	// may have gone live while this one uploaded.
	previous := ""
	if v, err := s.Current(ctx, name, Version{}); err == nil {
		previous = v.ID
	}
	body, _ := json.Marshal(pointer{Format: 1, Version: version, Previous: previous})
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.pointerKey(name)),
		Body: strings.NewReader(string(body)), ContentType: aws.String("application/json"), CacheControl: aws.String("no-store")}); err != nil {
		err = fmt.Errorf("pointer: %w", s.fail("write", s.pointerKey(name), err))
		// A write whose answer was lost (an error after the store took it,
		// a timeout) may have made this version live: deleting it then
		// would leave the asset pointing at nothing. Only a pointer read
		// back that names another version lets the upload go.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		live, rerr := s.Current(cctx, name, Version{})
		cancel()
		switch {
		case rerr == nil && live.ID == version:
			// It took effect: the publish is done.
		case rerr == nil || errors.Is(rerr, ErrNoAsset):
			return abandon(err)
		default:
			stopBeat()
			return fmt.Errorf("publish %s to %s: %w (whether it took effect is unknown: the pointer could not be read back, %v; the upload stays)", name, s.location, err, rerr)
		}
	}
	report(true)
	stopBeat()
	atPublishStep("live", build)
	s.prune(ctx, name, version, previous)
	return nil
}

// listStaging lists the files of a staging folder with their sizes.
func listStaging(staging string) ([]stagedFile, int64, error) {
	var files []stagedFile
	var total int64
	err := filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(staging, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !validRel(rel) {
			return fmt.Errorf("%s: not a library file name", rel)
		}
		files = append(files, stagedFile{rel: rel, size: info.Size()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("staging %s: %w", staging, err)
	}
	// Biggest first: the long uploads start early and the tail is short.
	slices.SortFunc(files, func(a, b stagedFile) int { return int(b.size - a.size) })
	return files, total, nil
}

// multipartThreshold is the size from which a file is uploaded in parts.
const multipartThreshold = 16 << 20

// uploadAll uploads files with at most s.parallel at once; the first
// error stops the rest.
func (s *S3) uploadAll(ctx context.Context, staging, version string, files []stagedFile, uploaded func(int64)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The SDK's transfer manager (the successor of feature/s3/manager,
	// which is deprecated) does the multipart uploads of big files.
	up := transfermanager.New(s.client, func(o *transfermanager.Options) {
		o.PartSizeBytes = 8 << 20
		o.MultipartUploadThreshold = multipartThreshold
		o.Concurrency = 4
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	work := make(chan stagedFile)
	var wg sync.WaitGroup
	for range min(s.parallel, max(1, len(files))) {
		wg.Go(func() {
			for f := range work {
				if err := s.uploadFile(ctx, up, staging, version, f); err != nil {
					cancel(err)
					continue
				}
				uploaded(f.size)
			}
		})
	}
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		select {
		case work <- f:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// uploadFile uploads one staged file.
func (s *S3) uploadFile(ctx context.Context, up *transfermanager.Client, staging, version string, f stagedFile) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file, err := os.Open(filepath.Join(staging, filepath.FromSlash(f.rel)))
	if err != nil {
		return err
	}
	defer file.Close()
	key := s.versionKey(version, f.rel)
	var ct *string
	if t := contentType(f.rel); t != "" {
		ct = aws.String(t)
	}
	// Below the multipart threshold the transfer manager would read the
	// whole file into memory first (up to 16 MiB for each of the parallel
	// uploads); a PutObject streams it from the file instead.
	if f.size < multipartThreshold {
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: file, ContentLength: aws.Int64(f.size), ContentType: ct})
	} else {
		_, err = up.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: &s.bucket, Key: &key, Body: file, ContentLength: aws.Int64(f.size), ContentType: ct})
	}
	if err != nil {
		return s.fail("upload", key, err)
	}
	return nil
}

// contentType labels the objects for people browsing the bucket; the
// origin sets its own headers.
func contentType(rel string) string {
	switch path.Ext(rel) {
	case ".mpd":
		return "application/dash+xml"
	case ".m4s":
		return "video/iso.segment"
	case ".mp4":
		return "video/mp4"
	case ".vtt":
		return "text/vtt; charset=utf-8"
	}
	return mime.TypeByExtension(path.Ext(rel))
}

// prune deletes the versions of name other than current and previous
// (among them those of publishes that were interrupted), except the one
// live now and those another publish is still writing. Failures are left
// for the next publish.
func (s *S3) prune(ctx context.Context, name, current, previous string) {
	vprefix := s.prefix + versionsDir + "/"
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(vprefix + name + "."), Delimiter: aws.String("/")})
	var old []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return
		}
		for _, cp := range page.CommonPrefixes {
			v := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), vprefix), "/")
			if v != current && v != previous && isVersionOf(v, name) {
				old = append(old, v)
			}
		}
	}
	if len(old) == 0 {
		return
	}
	// The pointer as it is now: a publish that went live since this one
	// did keeps its version, and the pointer's time is the store's now,
	// to age the markers by (hosts' clocks may disagree with the store's).
	live, err := s.getPointer(ctx, name, "")
	if err != nil {
		return
	}
	for _, v := range old {
		if v == live.Version || s.publishing(ctx, v, live.modified) {
			continue
		}
		_, _ = s.deleteVersion(ctx, v)
	}
}

// deletePartial deletes a version that was never published. An upload
// the client gave up on may still land on the store after it (the store
// had its whole body), so the folder is listed again until it stays empty
// for a moment, a bounded number of times.
func (s *S3) deletePartial(ctx context.Context, version string) error {
	var err error
	for range 5 {
		var n int
		if n, err = s.deleteVersion(ctx, version); err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}

// deleteVersion deletes every object of a version folder and says how
// many there were.
func (s *S3) deleteVersion(ctx context.Context, version string) (int, error) {
	if !isVersionName(version) {
		return 0, fmt.Errorf("version %q: %w", version, fs.ErrInvalid)
	}
	deleted := 0
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + versionsDir + "/" + version + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return deleted, s.fail("list", version, err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		deleted += len(page.Contents)
		ids := make([]types.ObjectIdentifier, 0, len(page.Contents))
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &s.bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return deleted, s.fail("delete", version, err)
		}
		if len(out.Errors) > 0 {
			return deleted, fmt.Errorf("delete %s: %d objects refused, first %s: %s", version, len(out.Errors), aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
	}
	return deleted, nil
}

// fail wraps a store error: a missing object as fs.ErrNotExist, anything
// else (down, slow, refusing) as ErrUnavailable.
func (s *S3) fail(op, key string, err error) error {
	if notFound(err) {
		return fmt.Errorf("%s %s: %w", op, key, fs.ErrNotExist)
	}
	return fmt.Errorf("%s s3://%s/%s: %w: %w", op, s.bucket, key, ErrUnavailable, err)
}

// status is the HTTP status of a store's error answer, 0 for none.
func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// notFound reports an answer that the object or key does not exist.
func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf) || status(err) == http.StatusNotFound
}
