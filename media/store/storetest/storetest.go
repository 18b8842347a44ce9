// Package storetest runs a real S3 server for tests and the demo:
// versitygw (the Versity S3 gateway, Apache-2.0) with its posix backend in
// a folder, started as a process on a loopback port. The binary is
// $DEEPCAST_VERSITYGW, else versitygw on the PATH, else the module's tool
// line (`go tool versitygw`), built once and cached by the go command.
package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deepcast/deepcast/media/store"
)

// Credentials of every test server: the tests are alone on loopback.
const (
	AccessKey = "deepcasttest"
	SecretKey = "deepcast-test-secret-key"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of the versitygw binary, building it with the
// go command the first time (a minute or two; cached afterwards).
func Binary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("DEEPCAST_VERSITYGW"); p != "" {
			binPath = p
			return
		}
		if p, err := exec.LookPath("versitygw"); err == nil {
			binPath = p
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "tool", "-n", "versitygw").Output()
		if err != nil {
			binErr = fmt.Errorf("no versitygw: not on the PATH, and `go tool -n versitygw` (in the deepcast module) failed: %w", err)
			return
		}
		binPath = strings.TrimSpace(string(out))
	})
	return binPath, binErr
}

// Server is a running versitygw.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint string
	// Dir holds the buckets (one folder each).
	Dir string
	// Log is where its output goes.
	Log  string
	addr string
	opts Options
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
}

// Start runs a versitygw for the test, stopped when it ends, and points
// the AWS SDK's standard chain at it through the environment (so the test
// cannot run in parallel with others that set it).
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with options.
func StartWith(tb testing.TB, o Options) *Server {
	tb.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	s, err := LaunchWith(tb.TempDir(), addr, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	for k, v := range s.Env() {
		setenv(tb, k, v)
	}
	return s
}

// Options are how a versitygw is run beyond its address and folder.
type Options struct {
	// Netns is the network namespace to run it in (none when empty), for
	// a store across a rate-limited link.
	Netns string
	// KeepAlive lets clients reuse connections (versitygw --keep-alive).
	// versitygw closes every connection after one request unless told
	// otherwise; AWS S3, MinIO and Ceph RGW keep them open.
	KeepAlive bool
}

// LaunchWith runs versitygw on addr with its buckets in dir (its log
// beside them, in dir/versitygw.log), as the options say, and waits until
// it answers. Stop ends it.
func LaunchWith(dir, addr string, o Options) (*Server, error) {
	data := filepath.Join(dir, "buckets")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	s := &Server{Dir: data, Log: filepath.Join(dir, "versitygw.log"), addr: addr, Endpoint: "http://" + addr, opts: o}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// setenv is testing.TB's Setenv where there is one.
func setenv(tb testing.TB, k, v string) {
	if t, ok := tb.(interface{ Setenv(string, string) }); ok {
		t.Setenv(k, v)
		return
	}
	old, had := os.LookupEnv(k)
	os.Setenv(k, v)
	tb.Cleanup(func() {
		if had {
			os.Setenv(k, old)
		} else {
			os.Unsetenv(k)
		}
	})
}

// Env is the environment that points the AWS SDK at the server.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     AccessKey,
		"AWS_SECRET_ACCESS_KEY": SecretKey,
		"AWS_REGION":            "us-east-1",
		"AWS_ENDPOINT_URL_S3":   s.Endpoint,
		// Nothing from the machine's own AWS files.
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
}

// start launches the process on s.addr and waits, bounded, until it answers.
func (s *Server) start() error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{bin, "--access", AccessKey, "--secret", SecretKey, "--port", s.addr}
	if s.opts.KeepAlive {
		args = append(args, "--keep-alive")
	}
	args = append(args, "posix", s.Dir)
	if s.opts.Netns != "" {
		// ip execs the server in the namespace: s.cmd is the server itself.
		args = append([]string{"ip", "netns", "exec", s.opts.Netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("versitygw: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			out, _ := os.ReadFile(s.Log)
			return fmt.Errorf("versitygw exited at start:\n%s", out)
		default:
		}
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("versitygw did not answer on %s within 30 s", s.addr)
}

// Pid is the server's process ID (0 when it is not running): what a
// benchmark reads its CPU time by.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills the server (a store that goes away) and waits for it.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// Restart starts a stopped server again on the same address and folder.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// Client is an S3 client of the server.
func (s *Server) Client(tb testing.TB) *s3.Client {
	tb.Helper()
	c, err := s.client()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func (s *Server) client() (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: AccessKey, SecretAccessKey: SecretKey}, nil
		})))
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	}), nil
}

// EnsureBucket creates a bucket unless it exists.
func (s *Server) EnsureBucket(ctx context.Context, name string) error {
	client, err := s.client()
	if err != nil {
		return err
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)}); err == nil {
		return nil
	}
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// Bucket creates a bucket and returns its name.
func (s *Server) Bucket(tb testing.TB, name string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client(tb).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		tb.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Keys lists every key of a bucket under prefix.
func (s *Server) Keys(tb testing.TB, bucket, prefix string) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(tb), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			tb.Fatalf("list %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// CopyIn publishes a copy of a version folder's files (an asset already
// packaged into a folder library) into lib as name.build.
func CopyIn(tb testing.TB, lib store.Store, versionDir, name, build string) {
	tb.Helper()
	staging, err := lib.Staging(name)
	if err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("cp", "-rL", versionDir+"/.", staging).CombinedOutput(); err != nil {
		tb.Fatalf("copy %s: %v: %s", versionDir, err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := lib.Publish(ctx, staging, name, build, nil); err != nil {
		tb.Fatal(err)
	}
}

// CopyAsset publishes a copy of the live version of asset name of a folder
// library into lib, under the same build.
func CopyAsset(tb testing.TB, lib store.Store, folder, name string) {
	tb.Helper()
	CopyAssetAs(tb, lib, folder, name, name)
}

// CopyAssetAs is CopyAsset publishing the copy as asset as (lib may be the
// folder library itself: a library of several assets from one package).
func CopyAssetAs(tb testing.TB, lib store.Store, folder, name, as string) {
	tb.Helper()
	dir, err := store.Folder{Root: folder}.Resolve(name)
	if err != nil {
		tb.Fatal(err)
	}
	CopyIn(tb, lib, dir, as, strings.TrimPrefix(filepath.Base(dir), name+"."))
}

// FreePort returns a loopback port that is free for both TCP and UDP right
// now, for a server the test starts as another process (which must be told
// its port). The port comes from outside the kernel's ephemeral range: a
// port from inside it, released between the check and the server's bind,
// can meanwhile become the local end of any outgoing connection on the
// machine (CI once lost the router's DNS port that way), while ports
// outside it are only ever taken by explicit binds.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := portsOutsideEphemeral()
	freePortMu.Lock()
	defer freePortMu.Unlock()
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if freePortGiven[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		freePortGiven[port] = true
		return port
	}
	t.Fatalf("no free port in %d-%d", lo, hi)
	return 0
}

var (
	freePortMu    sync.Mutex
	freePortGiven = map[int]bool{}
)

// portsOutsideEphemeral is a range of ports [lo, hi) outside the kernel's
// ephemeral range (/proc/sys/net/ipv4/ip_local_port_range).
func portsOutsideEphemeral() (lo, hi int) {
	low, high := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if l, err := strconv.Atoi(f[0]); err == nil {
				low = l
			}
			if h, err := strconv.Atoi(f[1]); err == nil {
				high = h
			}
		}
	}
	return portsOutside(low, high)
}

// portsOutside is the wider of the ports below the ephemeral range
// [low, high] (from 10000, clear of well-known services) and those above
// it; with under 1000 either way, any port from 10000.
func portsOutside(low, high int) (lo, hi int) {
	lo, hi = 10000, low
	if 65536-(high+1) > hi-lo {
		lo, hi = high+1, 65536
	}
	if hi-lo < 1000 {
		return 10000, 65536
	}
	return lo, hi
}
