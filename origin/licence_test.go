package origin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
)

// TestClearKeyLicence: POST /vod/{asset}/clearkey answers W3C ClearKey
// JSON with the asset's key for its key id, from a folder library and
// from an object store, and refuses everything else cleanly.
func TestClearKeyLicence(t *testing.T) {
	folder := t.TempDir()
	kid, key := bytes.Repeat([]byte{7}, 16), []byte("sixteen byte key")
	if _, err := media.Package(context.Background(), []string{mediatest.Source(t)}, media.PackageOptions{Library: folder, Name: "sec", Copy: true,
		Encrypt: &media.Encryption{Scheme: media.SchemeCBCS, KeyID: kid, Key: key}}); err != nil {
		t.Fatal(err)
	}
	if _, err := media.Package(context.Background(), []string{mediatest.Source(t)}, media.PackageOptions{Library: folder, Name: "open", Copy: true}); err != nil {
		t.Fatal(err)
	}
	srv := storetest.Start(t)
	bucket := srv.Bucket(t, "licence-test")
	s3lib, err := store.Open(context.Background(), "s3://"+bucket+"/lib", store.S3Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	storetest.CopyAsset(t, s3lib, folder, "sec")
	storetest.CopyAsset(t, s3lib, folder, "open")
	b64 := base64.RawURLEncoding.EncodeToString
	request := func(kids ...[]byte) string {
		var r licenceRequest
		r.Type = "temporary"
		for _, k := range kids {
			r.Kids = append(r.Kids, b64(k))
		}
		b, _ := json.Marshal(r)
		return string(b)
	}
	for name, mut := range map[string]func(*Config){"folder": func(*Config) {}, "s3": func(c *Config) { c.Store = s3lib }} {
		t.Run(name, func(t *testing.T) {
			s, ts := start(t, folder, mut)
			before := testutil.ToFloat64(s.metrics.licences)
			cases := []struct {
				name, asset, body string
				want              int
			}{
				{"the key", "sec", request(bytes.Repeat([]byte{1}, 16), kid), 200},
				{"another key id", "sec", request(bytes.Repeat([]byte{1}, 16)), 404},
				{"not json", "sec", "kids=1", 400},
				{"no kids", "sec", `{"kids":[]}`, 400},
				{"too big", "sec", `{"kids":["` + strings.Repeat("A", 8<<10) + `"]}`, 400},
				{"clear asset", "open", request(kid), 404},
				{"no asset", "nope", request(kid), 404},
				{"hostile name", "..%2f", request(kid), 400},
			}
			for _, c := range cases {
				resp, err := http.Post(ts.URL+"/vod/"+c.asset+"/clearkey", "application/json", strings.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.want && !(c.name == "hostile name" && resp.StatusCode == 404) {
					t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.want)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("%s: Cache-Control %q", c.name, cc)
				}
				if c.want != 200 {
					continue
				}
				var lr licenceResponse
				if err := json.Unmarshal(body, &lr); err != nil || len(lr.Keys) != 1 || lr.Keys[0].K != b64(key) || lr.Keys[0].Kid != b64(kid) || lr.Keys[0].Kty != "oct" {
					t.Errorf("%s: %s", c.name, body)
				}
			}
			if got := testutil.ToFloat64(s.metrics.licences) - before; got != 1 {
				t.Errorf("licences counted: %v, want 1", got)
			}
			if resp, _ := http.Get(ts.URL + "/vod/sec/clearkey"); resp == nil || resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("GET of the licence endpoint: %v", resp)
			}
		})
	}
}
