package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/origin"
)

// BenchmarkOriginServe compares the origin behind the fast path, on event
// loops and with a goroutine per connection (DEEPCAST_FASTPATH=goroutines),
// with the same origin on net/http alone (DEEPCAST_FASTPATH=off), for a
// manifest and a media segment, over 64 loopback keep-alive connections
// (one per parallel goroutine; as many as wrk uses in make bench: with
// few connections an in-process client measures thread wake-ups more
// than servers, see fastpath's benchmarkRoundTrips). `make bench` runs it
// six times and compares the servers with benchstat -col /server.
func BenchmarkOriginServe(b *testing.B) {
	lib := mediatest.Library(b)
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		b.Fatal(err)
	}
	objects := []struct{ name, path string }{
		{"manifest", "/vod/" + a.Name + "/manifest.mpd"},
		{"segment", fmt.Sprintf("/vod/%s/%s/1.m4s", a.Name, a.Renditions[0].ID)},
	}
	for _, server := range []struct{ name, mode string }{{"fastpath", ""}, {"goroutines", "goroutines"}, {"net-http", "off"}} {
		for _, obj := range objects {
			b.Run("server="+server.name+"/object="+obj.name, func(b *testing.B) {
				b.Setenv("DEEPCAST_FASTPATH", server.mode)
				o, err := origin.New(origin.Config{Library: lib, Logger: discard()})
				if err != nil {
					b.Fatal(err)
				}
				defer o.Close()
				base, stop := startServe(b, o)
				defer stop()
				addr := strings.TrimPrefix(base, "http://")
				req := []byte("GET " + obj.path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
				b.ReportAllocs()
				b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					br := bufio.NewReaderSize(c, 64<<10)
					for pb.Next() {
						if _, err := c.Write(req); err != nil {
							b.Error(err)
							return
						}
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						if resp.StatusCode != http.StatusOK {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
			})
		}
	}
}
