package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// StalePublish is how long a publish to an object store may go unheard
// of before its version counts as abandoned. A publish marks its version
// folder as being written with a marker object it rewrites every
// publishBeat, and removes once the version is live; another publish of
// the same name prunes old versions when it goes live, and leaves alone a
// version whose marker was written less than StalePublish ago, by the
// store's clock. Two publishes of one name that overlap (two packagers, an
// ingest retried on another origin) would otherwise delete each other's
// upload. The marker of a publish that was killed stops being rewritten,
// and its partial upload is pruned by the first publish after StalePublish.
const StalePublish = 10 * time.Second

// publishBeat is how often a publish rewrites its marker: several beats fit
// in StalePublish, so one lost write does not make it look abandoned.
const publishBeat = 2 * time.Second

// publishingMarker is the marker's name in the version folder; files of a
// version never start with a dot (validRel), so no reader ever serves it.
const publishingMarker = ".publishing"

// beginPublish writes version's marker, and keeps rewriting it until the
// returned stop is called (stop may be called more than once). The marker
// write is the publish's first: its error is the store's answer to writes.
func (s *S3) beginPublish(ctx context.Context, version string) (stop func(), err error) {
	key := s.versionKey(version, publishingMarker)
	put := func(ctx context.Context) error {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(key),
			Body: strings.NewReader(version), ContentType: aws.String("text/plain")})
		return err
	}
	if err := put(ctx); err != nil {
		return nil, fmt.Errorf("marker: %w", s.fail("write", key, err))
	}
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(publishBeat)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
				pctx, pcancel := context.WithTimeout(bctx, publishBeat)
				_ = put(pctx) // a missed beat is made up by the next; StalePublish spans several
				pcancel()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			// Gone at once, so a publish that prunes after this one went
			// live need not wait StalePublish to prune it. Left behind, it
			// only delays that.
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer dcancel()
			_, _ = s.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(key)})
		})
	}, nil
}

// publishing reports whether version's marker was written less than
// StalePublish before now (the store's time). When the store cannot say,
// the version counts as being written: pruning can wait.
func (s *S3) publishing(ctx context.Context, version string, now time.Time) bool {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.versionKey(version, publishingMarker))})
	if err != nil {
		return !notFound(err)
	}
	return now.Sub(aws.ToTime(out.LastModified)) < StalePublish
}

// checkComplete lists version's folder and checks that every staged file
// is there with its size: a publish of the same name that pruned it
// (its marker went stale: the store refused the beats, or the process
// stalled) must not make a half-deleted version live.
func (s *S3) checkComplete(ctx context.Context, version string, files []stagedFile) error {
	sizes := make(map[string]int64, len(files))
	prefix := s.versionKey(version, "")
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.fail("list", prefix, err)
		}
		for _, o := range page.Contents {
			sizes[strings.TrimPrefix(aws.ToString(o.Key), prefix)] = aws.ToInt64(o.Size)
		}
	}
	var missing []string
	for _, f := range files {
		if size, ok := sizes[f.rel]; !ok || size != f.size {
			missing = append(missing, f.rel)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("version %s lost %d of its %d files while it was uploaded (first %s): %w",
			version, len(missing), len(files), missing[0], errConcurrentPrune)
	}
	return nil
}

// errConcurrentPrune: another publish of the same name deleted part of
// this one's upload.
var errConcurrentPrune = errors.New("another publish of the same name pruned it; the previous version stays live")
