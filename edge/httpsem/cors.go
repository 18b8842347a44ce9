package httpsem

// CORSRequestHeaders is what every node's preflight answer allows a player
// on another origin to send: ranges, conditionals, CMCD, a bearer token
// and a Common Access Token in its header (CTA-5007). The router, the
// edges and the origin allow the same set, because a request the router
// redirects reaches an edge with the headers it was preflighted with at
// the router: a header allowed at the edge but not at the router fails
// the browser's first preflight.
const CORSRequestHeaders = "Range, If-None-Match, If-Modified-Since, If-Range, Authorization, Content-Type, " +
	"CMCD-Request, CMCD-Object, CMCD-Status, CMCD-Session, CTA-Common-Access-Token"
