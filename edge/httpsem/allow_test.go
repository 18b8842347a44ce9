package httpsem

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
)

func TestAllow(t *testing.T) {
	r := chi.NewRouter()
	ok := func(http.ResponseWriter, *http.Request) {}
	r.Get("/vod/*", ok)
	r.Head("/vod/*", ok)
	r.Post("/vod/{asset}/clearkey", ok)
	r.Post("/api/purge", ok)
	r.Get("/healthz", ok)
	r.Head("/only-head", ok)
	for _, c := range []struct{ path, want string }{
		{"/vod/a/v/1.m4s", "GET, HEAD, OPTIONS"},
		{"/vod/a/clearkey", "GET, HEAD, POST, OPTIONS"},
		{"/api/purge", "POST, OPTIONS"},
		{"/healthz", "GET, HEAD, OPTIONS"},
		{"/only-head", "HEAD, OPTIONS"},
		{"/nowhere", "OPTIONS"},
	} {
		req := httptest.NewRequest(http.MethodPut, c.path, nil)
		if got := Allow(r, req); got != c.want {
			t.Errorf("%s: Allow %q, want %q", c.path, got, c.want)
		}
	}
}

func TestMethodLabel(t *testing.T) {
	for in, want := range map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE", "OPTIONS": "OPTIONS",
		"PATCH": "PATCH", "CONNECT": "CONNECT", "TRACE": "TRACE",
		"get": "other", "M00X": "other", "PROPFIND": "other", "": "other",
	} {
		if got := MethodLabel(in); got != want {
			t.Errorf("MethodLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
