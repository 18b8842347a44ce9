package httpsem

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// Allow is the Allow header of a 405 answer to r (RFC 9110 §15.5.6): the
// methods routes answers on r's path, HEAD wherever GET (the nodes route
// a HEAD without a route of its own to GET, with chi's GetHead), and
// OPTIONS, which every node answers for CORS preflights before routing.
func Allow(routes chi.Routes, r *http.Request) string {
	path := r.URL.RawPath // as chi routes: the escaped path when there is one
	if path == "" {
		path = r.URL.Path
	}
	has := func(m string) bool { return routes.Match(chi.NewRouteContext(), m, path) }
	var allow []string
	if has(http.MethodGet) {
		allow = append(allow, http.MethodGet, http.MethodHead)
	} else if has(http.MethodHead) {
		allow = append(allow, http.MethodHead)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if has(m) {
			allow = append(allow, m)
		}
	}
	return strings.Join(append(allow, http.MethodOptions), ", ")
}

// MethodLabel is method as a metrics label: one of RFC 9110's methods (and
// PATCH), else "other". A client chooses the method token freely, so the
// raw token as a label would let it make a new series per request, without
// bound, in every node's memory and every scrape.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodOptions, http.MethodPatch, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}
