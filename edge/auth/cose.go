package auth

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// CBOR tags and COSE labels a CAT uses (RFC 8392, RFC 9052, RFC 9053).
const (
	tagCWT   = 61
	tagMac0  = 17
	tagSign1 = 18

	headerAlg  = 1
	headerCrit = 2
	headerCty  = 3
	headerKid  = 4

	// AlgHS256 is COSE's HMAC 256/256; AlgHS256T64 is HMAC 256/64
	// (the tag cut to 8 bytes); AlgES256 is ECDSA P-256 with SHA-256.
	AlgHS256    = 5
	AlgHS256T64 = 4
	AlgES256    = -7
)

// maxToken bounds a token's encoded length: a CAT is a few hundred bytes,
// and nothing larger is decoded at all.
const maxToken = 4096

// decMode decodes what a client sends: duplicate map keys, deep nesting
// and big collections are refused, so a token cannot be read two ways or
// cost much to read.
var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  8,
		MaxArrayElements: 64,
		MaxMapPairs:      64,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsAllowed,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err) // constant options
	}
	return m
}()

// encMode writes deterministic CBOR (RFC 8949 core rules), as COSE's
// MAC_structure and Sig_structure need.
var encMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // constant options
	}
	return m
}()

// coseMessage is COSE_Mac0 and COSE_Sign1 alike: protected header (a
// serialized map), unprotected header, payload, and the tag or signature.
type coseMessage struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int64]cbor.RawMessage
	Payload     []byte
	Tag         []byte
}

// parsedToken is a token whose structure has been read, not yet verified.
type parsedToken struct {
	sign   bool // COSE_Sign1; COSE_Mac0 otherwise
	alg    int64
	kid    []byte
	msg    coseMessage
	claims map[int64]cbor.RawMessage
}

// decodeBase64 takes the URL-safe alphabet (what CAT specifies) and, since
// some minters use it, the standard one; padding is optional.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// parseToken reads a base64 CAT: an optional CWT tag around a tagged (or
// untagged MAC) COSE message whose payload is the claims map.
func parseToken(s string) (*parsedToken, error) {
	if len(s) > maxToken {
		return nil, errors.New("token too long")
	}
	raw, err := decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	var t parsedToken
	var outer cbor.RawTag
	body := raw
	if err := decMode.Unmarshal(raw, &outer); err == nil {
		if outer.Number == tagCWT {
			if err := decMode.Unmarshal(outer.Content, &outer); err != nil {
				return nil, errors.New("a CWT tag around something that is not a tagged COSE message")
			}
		}
		switch outer.Number {
		case tagMac0:
		case tagSign1:
			t.sign = true
		default:
			return nil, fmt.Errorf("CBOR tag %d: not a COSE_Mac0 or COSE_Sign1", outer.Number)
		}
		body = outer.Content
	}
	if err := decMode.Unmarshal(body, &t.msg); err != nil {
		return nil, fmt.Errorf("not a COSE message: %w", err)
	}
	var protected map[int64]cbor.RawMessage
	if len(t.msg.Protected) > 0 {
		if err := decMode.Unmarshal(t.msg.Protected, &protected); err != nil {
			return nil, fmt.Errorf("protected header: %w", err)
		}
	}
	if err := t.readHeaders(protected); err != nil {
		return nil, err
	}
	if err := decMode.Unmarshal(t.msg.Payload, &t.claims); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	return &t, nil
}

// readHeaders takes alg from the protected header (where COSE wants it)
// and kid from either; a critical header deepcast does not know refuses
// the token, as RFC 9052 requires.
func (t *parsedToken) readHeaders(protected map[int64]cbor.RawMessage) error {
	for label, v := range protected {
		if _, dup := t.msg.Unprotected[label]; dup {
			return fmt.Errorf("header %d both protected and unprotected", label)
		}
		switch label {
		case headerAlg, headerKid, headerCty:
		case headerCrit:
			var crit []int64
			if err := decMode.Unmarshal(v, &crit); err != nil || len(crit) == 0 {
				return errors.New("crit header: want a non-empty list of integer labels")
			}
			for _, c := range crit {
				if c != headerAlg && c != headerKid && c != headerCty {
					return fmt.Errorf("critical header %d is not supported", c)
				}
			}
		}
	}
	algRaw, ok := protected[headerAlg]
	if !ok {
		return errors.New("no alg in the protected header")
	}
	if err := decMode.Unmarshal(algRaw, &t.alg); err != nil {
		return errors.New("alg: not an integer")
	}
	kidRaw, ok := protected[headerKid]
	if !ok {
		kidRaw, ok = t.msg.Unprotected[headerKid]
	}
	if ok {
		if err := decMode.Unmarshal(kidRaw, &t.kid); err != nil {
			return errors.New("kid: not a byte string")
		}
	}
	return nil
}

// toBeMACed and toBeSigned are COSE's MAC_structure and Sig_structure with
// no external data.
func toBeMACed(protected, payload []byte) []byte {
	b, _ := encMode.Marshal([]any{"MAC0", protected, []byte{}, payload})
	return b
}

func toBeSigned(protected, payload []byte) []byte {
	b, _ := encMode.Marshal([]any{"Signature1", protected, []byte{}, payload})
	return b
}

// verify checks the token's tag or signature with key; the key's
// algorithm must be the token's.
func (t *parsedToken) verify(k *Key) bool {
	if k.Alg != t.alg {
		return false
	}
	switch t.alg {
	case AlgHS256, AlgHS256T64:
		if t.sign {
			return false
		}
		m := hmac.New(sha256.New, k.secret)
		m.Write(toBeMACed(t.msg.Protected, t.msg.Payload))
		sum := m.Sum(nil)
		if t.alg == AlgHS256T64 {
			sum = sum[:8]
		}
		return hmac.Equal(sum, t.msg.Tag)
	case AlgES256:
		if !t.sign || len(t.msg.Tag) != 64 || k.public == nil {
			return false
		}
		h := sha256.Sum256(toBeSigned(t.msg.Protected, t.msg.Payload))
		r, s := new(big.Int).SetBytes(t.msg.Tag[:32]), new(big.Int).SetBytes(t.msg.Tag[32:])
		return ecdsa.Verify(k.public, h[:], r, s)
	}
	return false
}

// seal wraps claims (a CBOR map) into a CWT-tagged COSE message with key:
// a COSE_Mac0 for HMAC keys, a COSE_Sign1 for ES256 keys, the key id in
// the unprotected header.
func seal(claims []byte, k *Key) (string, error) {
	protected, err := encMode.Marshal(map[int64]int64{headerAlg: k.Alg})
	if err != nil {
		return "", err
	}
	msg := coseMessage{Protected: protected, Payload: claims, Unprotected: map[int64]cbor.RawMessage{}}
	if k.ID != "" {
		kid, _ := encMode.Marshal([]byte(k.ID))
		msg.Unprotected[headerKid] = kid
	}
	tag := uint64(tagMac0)
	switch k.Alg {
	case AlgHS256, AlgHS256T64:
		m := hmac.New(sha256.New, k.secret)
		m.Write(toBeMACed(protected, claims))
		msg.Tag = m.Sum(nil)
		if k.Alg == AlgHS256T64 {
			msg.Tag = msg.Tag[:8]
		}
	case AlgES256:
		if k.private == nil {
			return "", fmt.Errorf("key %q: a public key cannot sign", k.ID)
		}
		h := sha256.Sum256(toBeSigned(protected, claims))
		r, s, err := ecdsa.Sign(rand.Reader, k.private, h[:])
		if err != nil {
			return "", err
		}
		msg.Tag = make([]byte, 64)
		r.FillBytes(msg.Tag[:32])
		s.FillBytes(msg.Tag[32:])
		tag = tagSign1
	default:
		return "", fmt.Errorf("key %q: algorithm %d cannot mint tokens", k.ID, k.Alg)
	}
	b, err := encMode.Marshal(cbor.Tag{Number: tagCWT, Content: cbor.Tag{Number: tag, Content: msg}})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
