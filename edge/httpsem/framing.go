package httpsem

import "net/http"

// CloseAfterTransferCoding closes an HTTP/1.x connection after answering
// a request that came with a Transfer-Encoding. RFC 9112 §6.1 requires it
// when a request carries both Transfer-Encoding and Content-Length, a
// request-smuggling pattern whose body length two servers in a chain may
// read differently; net/http follows the Transfer-Encoding and drops the
// Content-Length before a handler sees it, so every such request is
// closed after. Players never send one (their requests have no body), so
// this costs real clients nothing.
func CloseAfterTransferCoding(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}
