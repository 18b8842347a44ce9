package httpsem

import "net/http"

// CORSRequestHeaders is what every node's preflight answer allows a player
// on another origin to send: ranges, conditionals, CMCD, a bearer token
// and a Common Access Token in its header (CTA-5007). The router, the
// edges and the origin allow the same set, because a request the router
// redirects reaches an edge with the headers it was preflighted with at
// the router: a header allowed at the edge but not at the router fails
// the browser's first preflight.
const CORSRequestHeaders = "Range, If-None-Match, If-Modified-Since, If-Range, Authorization, Content-Type, " +
	"CMCD-Request, CMCD-Object, CMCD-Status, CMCD-Session, CTA-Common-Access-Token"

// CORS returns the middleware with which a node answers browsers'
// cross-origin checks: any page may read its responses and the response
// headers listed in expose (comma-separated), and a preflight (OPTIONS)
// is answered at once with the methods the node takes and
// CORSRequestHeaders, for the browser to keep a day and no shared cache
// to keep at all.
func CORS(methods, expose string) func(http.Handler) http.Handler {
	// Header slices built once: assigned, not Set, on every response.
	anyOrigin, exposed := []string{"*"}, []string{expose}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Access-Control-Allow-Origin"] = anyOrigin
			h["Access-Control-Expose-Headers"] = exposed
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", methods)
				h.Set("Access-Control-Allow-Headers", CORSRequestHeaders)
				h.Set("Access-Control-Max-Age", "86400")
				h.Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
