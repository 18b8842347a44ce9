package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/fxamacker/cbor/v2"
)

// Key is one CAT key: an HMAC secret (HS256) or a P-256 key pair (ES256;
// a public key alone verifies but cannot mint).
type Key struct {
	ID      string // the COSE kid, as text; tokens name the key they need
	Alg     int64  // AlgHS256, AlgHS256T64 or AlgES256
	secret  []byte
	public  *ecdsa.PublicKey
	private *ecdsa.PrivateKey
}

// jwk is the JSON form of a COSE key: RFC 7517's names for the same
// parameters COSE_Key has (RFC 9052 section 7), one-to-one.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	K   string `json:"k,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	D   string `json:"d,omitempty"`
}

// KeyFile is what `deepcast token -new-key` writes and -auth-key reads:
//
//	{"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "<base64url secret>"},
//	          {"kty": "EC", "kid": "k2", "alg": "ES256", "crv": "P-256", "x": "…", "y": "…", "d": "…"}]}
//
// i.e. COSE keys written with JWK's parameter names. A CBOR COSE_Key or
// COSE_KeySet (RFC 9052) is read too.
type KeyFile struct {
	Keys []jwk `json:"keys"`
}

// LoadKeys reads a key file (see KeyFile).
func LoadKeys(path string) ([]*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	keys, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return keys, nil
}

// ParseKeys reads the contents of a key file: JSON (a key set or a single
// key) or CBOR (a COSE_Key or a COSE_KeySet).
func ParseKeys(b []byte) ([]*Key, error) {
	var keys []*Key
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var set KeyFile
		if err := json.Unmarshal(t, &set); err != nil {
			return nil, err
		}
		if set.Keys == nil {
			var one jwk
			if err := json.Unmarshal(t, &one); err != nil {
				return nil, err
			}
			set.Keys = []jwk{one}
		}
		for i, j := range set.Keys {
			k, err := j.key()
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", i+1, err)
			}
			keys = append(keys, k)
		}
	} else {
		var set []map[int64]cbor.RawMessage
		if err := decMode.Unmarshal(b, &set); err != nil {
			var one map[int64]cbor.RawMessage
			if err := decMode.Unmarshal(b, &one); err != nil {
				return nil, errors.New("neither JSON keys nor a CBOR COSE_Key or COSE_KeySet")
			}
			set = append(set, one)
		}
		for i, m := range set {
			k, err := coseKey(m)
			if err != nil {
				return nil, fmt.Errorf("COSE key %d: %w", i+1, err)
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.ID] {
			return nil, fmt.Errorf("two keys with the id %q", k.ID)
		}
		seen[k.ID] = true
	}
	return keys, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func (j jwk) key() (*Key, error) {
	k := &Key{ID: j.Kid}
	switch j.Kty {
	case "oct":
		switch j.Alg {
		case "HS256", "":
			k.Alg = AlgHS256
		case "HS256/64":
			k.Alg = AlgHS256T64
		default:
			return nil, fmt.Errorf("alg %q: a symmetric key is HS256 or HS256/64", j.Alg)
		}
		var err error
		if k.secret, err = b64(j.K); err != nil || len(k.secret) < 16 {
			return nil, errors.New("k: want at least 16 bytes in base64url")
		}
		return k, nil
	case "EC":
		if j.Crv != "P-256" || (j.Alg != "ES256" && j.Alg != "") {
			return nil, fmt.Errorf("crv %q alg %q: only P-256 with ES256", j.Crv, j.Alg)
		}
		x, errX := b64(j.X)
		y, errY := b64(j.Y)
		if errX != nil || errY != nil {
			return nil, errors.New("x, y: not base64url")
		}
		var d []byte
		if j.D != "" {
			var err error
			if d, err = b64(j.D); err != nil {
				return nil, errors.New("d: not base64url")
			}
		}
		return ecKey(k, x, y, d)
	}
	return nil, fmt.Errorf("kty %q: want oct or EC", j.Kty)
}

// ecKey fills k from P-256 coordinates (and the private scalar, if any),
// refusing points off the curve.
func ecKey(k *Key, x, y, d []byte) (*Key, error) {
	k.Alg = AlgES256
	if len(x) != 32 || len(y) != 32 {
		return nil, errors.New("P-256 coordinates are 32 bytes each")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	k.public = pub
	if d != nil {
		priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
		if err != nil {
			return nil, fmt.Errorf("private key: %w", err)
		}
		if !priv.PublicKey.Equal(pub) {
			return nil, errors.New("private key does not match x, y")
		}
		k.private = priv
	}
	return k, nil
}

// COSE_Key labels (RFC 9052 section 7, RFC 9053).
const (
	keyKty = 1
	keyKid = 2
	keyAlg = 3
	keyK   = -1 // symmetric: the secret; EC2: crv
	keyX   = -2
	keyY   = -3
	keyD   = -4

	ktyEC2       = 2
	ktySymmetric = 4
	crvP256      = 1
)

func coseKey(m map[int64]cbor.RawMessage) (*Key, error) {
	var kty int64
	if err := decMode.Unmarshal(m[keyKty], &kty); err != nil {
		return nil, errors.New("kty missing")
	}
	k := &Key{}
	if raw, ok := m[keyKid]; ok {
		var kid []byte
		if err := decMode.Unmarshal(raw, &kid); err != nil {
			return nil, errors.New("kid: not a byte string")
		}
		k.ID = string(kid)
	}
	var alg int64
	if raw, ok := m[keyAlg]; ok {
		if err := decMode.Unmarshal(raw, &alg); err != nil {
			return nil, errors.New("alg: not an integer")
		}
	}
	bytesAt := func(label int64) []byte {
		var b []byte
		if raw, ok := m[label]; ok && decMode.Unmarshal(raw, &b) == nil {
			return b
		}
		return nil
	}
	switch kty {
	case ktySymmetric:
		if alg == 0 {
			alg = AlgHS256
		}
		if alg != AlgHS256 && alg != AlgHS256T64 {
			return nil, fmt.Errorf("alg %d: a symmetric key is HMAC 256/256 (5) or 256/64 (4)", alg)
		}
		k.Alg, k.secret = alg, bytesAt(keyK)
		if len(k.secret) < 16 {
			return nil, errors.New("k: want at least 16 bytes")
		}
		return k, nil
	case ktyEC2:
		var crv int64
		if err := decMode.Unmarshal(m[keyK], &crv); err != nil || crv != crvP256 || (alg != 0 && alg != AlgES256) {
			return nil, errors.New("only P-256 keys with ES256 (-7)")
		}
		return ecKey(k, bytesAt(keyX), bytesAt(keyY), bytesAt(keyD))
	}
	return nil, fmt.Errorf("kty %d: want 4 (symmetric) or 2 (EC2)", kty)
}

// NewKey makes a fresh key: "HS256" (a 32-byte secret) or "ES256".
func NewKey(id, alg string) (*Key, error) {
	if id == "" {
		id = hexID()
	}
	switch alg {
	case "HS256", "":
		k := &Key{ID: id, Alg: AlgHS256, secret: make([]byte, 32)}
		rand.Read(k.secret)
		return k, nil
	case "ES256":
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return &Key{ID: id, Alg: AlgES256, private: priv, public: &priv.PublicKey}, nil
	}
	return nil, fmt.Errorf("algorithm %q: want HS256 or ES256", alg)
}

// Secret is an HMAC key's secret (for other implementations in tests and
// tools); nil for ES256 keys.
func (k *Key) Secret() []byte { return k.secret }

// CanMint reports whether the key can make tokens (an HMAC key, or an
// ES256 key with its private half).
func (k *Key) CanMint() bool { return k.secret != nil || k.private != nil }

// Public is the key without its private half: what an edge that only
// verifies ES256 tokens needs. An HMAC key is its own public key.
func (k *Key) Public() *Key {
	if k.Alg != AlgES256 {
		return k
	}
	return &Key{ID: k.ID, Alg: k.Alg, public: k.public}
}

// MarshalKeys writes keys in KeyFile's JSON form.
func MarshalKeys(keys ...*Key) ([]byte, error) {
	var f KeyFile
	enc := base64.RawURLEncoding.EncodeToString
	for _, k := range keys {
		switch k.Alg {
		case AlgHS256, AlgHS256T64:
			alg := "HS256"
			if k.Alg == AlgHS256T64 {
				alg = "HS256/64"
			}
			f.Keys = append(f.Keys, jwk{Kty: "oct", Kid: k.ID, Alg: alg, K: enc(k.secret)})
		case AlgES256:
			point, err := k.public.Bytes() // 0x04, X, Y
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k.ID, err)
			}
			j := jwk{Kty: "EC", Kid: k.ID, Alg: "ES256", Crv: "P-256", X: enc(point[1:33]), Y: enc(point[33:65])}
			if k.private != nil {
				d, err := k.private.Bytes()
				if err != nil {
					return nil, fmt.Errorf("key %q: %w", k.ID, err)
				}
				j.D = enc(d)
			}
			f.Keys = append(f.Keys, j)
		default:
			return nil, fmt.Errorf("key %q: algorithm %d", k.ID, k.Alg)
		}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

// hexID is a random key id for keys made without one.
func hexID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
