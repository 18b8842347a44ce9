package httpsem

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// ReprDigest is the Repr-Digest field (RFC 9530) for a representation
// whose SHA-256 is sha256hex (64 hex digits, as asset.json records it):
// "sha-256=:BASE64:". It is "" for anything that is not a whole SHA-256,
// so a shortened or missing record sends no field rather than a wrong one.
func ReprDigest(sha256hex string) string {
	return string(AppendReprDigest(nil, sha256hex))
}

// AppendReprDigest appends ReprDigest(sha256hex) to dst, without
// allocating when dst has room: it is on the path of every segment served.
func AppendReprDigest(dst []byte, sha256hex string) []byte {
	if len(sha256hex) != 64 {
		return dst
	}
	var sum [32]byte
	if _, err := hex.Decode(sum[:], []byte(sha256hex)); err != nil {
		return dst
	}
	dst = append(dst, "sha-256=:"...)
	dst = base64.StdEncoding.AppendEncode(dst, sum[:])
	return append(dst, ':')
}

// ReprSHA256 finds the sha-256 member of a Repr-Digest field (a Structured
// Fields dictionary of byte sequences, RFC 9530 §2), ok false when there is
// none or it is not 32 bytes of valid base64. Other algorithms are skipped,
// as the RFC asks of a recipient that does not know them.
func ReprSHA256(field string) (sum [32]byte, ok bool) {
	for member := range strings.SplitSeq(field, ",") {
		key, value, found := strings.Cut(strings.TrimSpace(member), "=")
		if !found || key != "sha-256" {
			continue
		}
		// A member may carry parameters after the value (";p=1"): they
		// mean nothing to a digest and are ignored.
		value, _, _ = strings.Cut(value, ";")
		b64, opened := strings.CutPrefix(value, ":")
		b64, closed := strings.CutSuffix(b64, ":")
		if !opened || !closed {
			return sum, false
		}
		// 44 characters decode to at most 33 bytes: room for them all,
		// then exactly 32 must have come out.
		var buf [33]byte
		if len(b64) != base64.StdEncoding.EncodedLen(len(sum)) {
			return sum, false
		}
		n, err := base64.StdEncoding.Decode(buf[:], []byte(b64))
		if err != nil || n != len(sum) {
			return sum, false
		}
		copy(sum[:], buf[:n])
		return sum, true
	}
	return sum, false
}
