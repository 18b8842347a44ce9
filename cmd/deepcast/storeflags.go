package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/deepcast/deepcast/media/store"
)

// storeFlags are the object store options of the commands that take a
// library: credentials and region come from the AWS SDK's standard chain
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, shared config
// files, instance roles), never from flags.
type storeFlags struct {
	endpoint  *string
	pathStyle *bool
	parallel  *int
}

func addStoreFlags(fs *flag.FlagSet) *storeFlags {
	return &storeFlags{
		endpoint:  fs.String("s3-endpoint", "", "S3 endpoint URL for a non-AWS store (default: AWS, or AWS_ENDPOINT_URL_S3)"),
		pathStyle: fs.Bool("s3-path-style", false, "address the bucket in the URL path (stores without virtual-host buckets)"),
		parallel:  fs.Int("s3-parallel", 16, "files uploaded at once when publishing to an object store"),
	}
}

// open opens the library at location: an s3://BUCKET/PREFIX URL or a folder.
func (f *storeFlags) open(ctx context.Context, location string) (store.Store, error) {
	if *f.parallel < 1 || *f.parallel > 256 {
		return nil, fmt.Errorf("-s3-parallel %d: want 1..256: %w", *f.parallel, errUsage)
	}
	return store.Open(ctx, location, store.S3Options{Endpoint: *f.endpoint, PathStyle: *f.pathStyle, Parallel: *f.parallel})
}

// checkStore asks an object store library to answer within a bound, so a
// wrong endpoint or credentials fail at start, not on the first request.
func checkStore(ctx context.Context, lib store.Store) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := lib.Check(ctx); err != nil {
		return fmt.Errorf("library %s: %w", lib, err)
	}
	return nil
}
