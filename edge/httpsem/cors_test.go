package httpsem

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	h := CORS("GET, HEAD, OPTIONS", "Location, X-Deepcast-Edge")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = w.Write([]byte("body"))
	}))
	for _, tc := range []struct {
		method, status, cacheControl, allowMethods, body string
	}{
		{method: http.MethodGet, status: "200 OK", cacheControl: "max-age=60", body: "body"},
		{method: http.MethodHead, status: "200 OK", cacheControl: "max-age=60"},
		{method: http.MethodOptions, status: "204 No Content", cacheControl: "no-store", allowMethods: "GET, HEAD, OPTIONS"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, "/vod/a/manifest.mpd", nil)
			req.Header.Set("Origin", "https://player.example")
			h.ServeHTTP(rec, req)
			res := rec.Result()
			got := map[string]string{
				"status":                        res.Status,
				"Access-Control-Allow-Origin":   res.Header.Get("Access-Control-Allow-Origin"),
				"Access-Control-Expose-Headers": res.Header.Get("Access-Control-Expose-Headers"),
				"Access-Control-Allow-Methods":  res.Header.Get("Access-Control-Allow-Methods"),
				"Cache-Control":                 res.Header.Get("Cache-Control"),
			}
			want := map[string]string{
				"status":                        tc.status,
				"Access-Control-Allow-Origin":   "*",
				"Access-Control-Expose-Headers": "Location, X-Deepcast-Edge",
				"Access-Control-Allow-Methods":  tc.allowMethods,
				"Cache-Control":                 tc.cacheControl,
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s: %q, want %q", k, got[k], w)
				}
			}
			if tc.method == http.MethodOptions && res.Header.Get("Access-Control-Allow-Headers") != CORSRequestHeaders {
				t.Errorf("preflight allows headers %q, want %q", res.Header.Get("Access-Control-Allow-Headers"), CORSRequestHeaders)
			}
			if tc.method == http.MethodGet && rec.Body.String() != tc.body {
				t.Errorf("body %q, want %q", rec.Body.String(), tc.body)
			}
		})
	}
}
