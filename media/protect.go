package media

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Common Encryption schemes (ISO/IEC 23001-7): AES-CTR of whole samples
// or subsamples (cenc), and AES-CBC of one 16-byte block in ten of the
// video slice data, whole audio samples (cbcs).
const (
	SchemeCENC = "cenc"
	SchemeCBCS = "cbcs"
)

// KeysFile is the asset's private metadata: its content key. It sits
// beside asset.json, and no /vod/ route ever serves it; the origin reads
// it for the ClearKey licence endpoint only.
const KeysFile = "keys.json"

// ClearKeySystemID is W3C ClearKey's DRM system id (DASH-IF IOP), and
// CommonSystemID the id of the common PSSH box that carries key ids to any
// CDM (W3C EME "cenc" initialization data).
const (
	ClearKeySystemID = "e2719d58-a985-b3c9-781a-b030af78d30e"
	CommonSystemID   = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
)

// Protection is how an asset is encrypted: public (asset.json, the MPD).
type Protection struct {
	Scheme string `json:"scheme"` // cenc or cbcs
	KeyID  string `json:"keyId"`  // 32 hex digits
}

// ContentKey is an asset's key: the KeysFile's content.
type ContentKey struct {
	KeyID string `json:"keyId"` // 32 hex digits
	Key   string `json:"key"`   // 32 hex digits
}

// Encryption asks Package to encrypt an asset.
type Encryption struct {
	Scheme string // cenc or cbcs
	// KeyID and Key are 16 bytes each; random when nil.
	KeyID, Key []byte
}

// ParseKeyPair reads "KID:KEY" (32 hex digits each), as -key-file
// holds it (and ffmpeg, Shaka Packager and mp4ff's tools write it).
func ParseKeyPair(s string) (kid, key []byte, err error) {
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, errors.New("key file: want KID:KEY in hex")
		}
		if kid, err = parseHex16(k); err != nil {
			return nil, nil, fmt.Errorf("key id: %w", err)
		}
		if key, err = parseHex16(v); err != nil {
			return nil, nil, fmt.Errorf("key: %w", err)
		}
		return kid, key, nil
	}
	return nil, nil, errors.New("key file: no KID:KEY line")
}

// parseHex16 reads 16 bytes written as 32 hex digits (a UUID's dashes
// allowed).
func parseHex16(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("%q: want 32 hex digits", s)
	}
	return b, nil
}

// resolve checks the options and draws a random key id and key where none
// is given.
func (e *Encryption) resolve() error {
	if e.Scheme != SchemeCENC && e.Scheme != SchemeCBCS {
		return fmt.Errorf("encryption scheme %q: want cenc or cbcs", e.Scheme)
	}
	for _, p := range []*[]byte{&e.KeyID, &e.Key} {
		switch {
		case *p == nil:
			*p = make([]byte, 16)
			rand.Read(*p)
		case len(*p) != 16:
			return errors.New("key id and key are 16 bytes each")
		}
	}
	return nil
}

// uuidString writes 16 bytes as a UUID (8-4-4-4-12), the MPD's
// cenc:default_KID form.
func uuidString(b []byte) string {
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// protectRendition encrypts a written rendition in place (its init
// segment gets the protection boxes and PSSHs, every segment its sample
// encryption) and updates its file records.
func protectRendition(dir string, r *Rendition, e Encryption) error {
	initPath := filepath.Join(dir, "init.mp4")
	data, err := os.ReadFile(initPath)
	if err != nil {
		return fmt.Errorf("encrypt %s: %w", r.ID, err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil || f.Init == nil {
		return fmt.Errorf("encrypt %s: init segment: %v", r.ID, err)
	}
	kid := mp4.UUID(e.KeyID)
	// The common PSSH (key ids for any CDM) is what EME's "cenc"
	// initialization data carries to the ClearKey CDM. No ClearKey-system
	// PSSH: dash.js would hand it to the CDM as "keyids" JSON, which it
	// is not; the MPD's default_KID gives dash.js its key id.
	common, err := mp4.NewPsshBox(CommonSystemID, []string{hex.EncodeToString(e.KeyID)}, nil)
	if err != nil {
		return err
	}
	// cenc: 8-byte per-sample IVs (CMAF's rule), counting up from a random
	// start per rendition; cbcs: one random constant IV per rendition.
	iv := make([]byte, 8)
	if e.Scheme == SchemeCBCS {
		iv = make([]byte, 16)
	}
	rand.Read(iv)
	ipd, err := mp4.InitProtect(f.Init, e.Key, iv, e.Scheme, kid, []*mp4.PsshBox{common})
	if err != nil {
		return fmt.Errorf("encrypt %s: %w", r.ID, err)
	}
	var buf bytes.Buffer
	if err := f.Init.Encode(&buf); err != nil {
		return fmt.Errorf("encrypt %s: init segment: %w", r.ID, err)
	}
	if r.Init, err = writeFileSum(initPath, buf.Bytes()); err != nil {
		return err
	}
	enc, err := ipd.NewFragmentEncryptor(e.Key, iv)
	if err != nil {
		return fmt.Errorf("encrypt %s: %w", r.ID, err)
	}
	for i := range r.Segments {
		s := &r.Segments[i]
		path := filepath.Join(dir, fmt.Sprintf("%d.m4s", s.Number))
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("encrypt %s: %w", r.ID, err)
		}
		f, err := mp4.DecodeFile(bytes.NewReader(data))
		if err != nil || len(f.Segments) != 1 || len(f.Segments[0].Fragments) != 1 {
			return fmt.Errorf("encrypt %s segment %d: want one fragment (%v)", r.ID, s.Number, err)
		}
		if err := enc.EncryptFragment(f.Segments[0].Fragments[0]); err != nil {
			return fmt.Errorf("encrypt %s segment %d: %w", r.ID, s.Number, err)
		}
		buf.Reset()
		if err := f.Segments[0].Encode(&buf); err != nil {
			return fmt.Errorf("encrypt %s segment %d: %w", r.ID, s.Number, err)
		}
		fi, err := writeFileSum(path, buf.Bytes())
		if err != nil {
			return err
		}
		if s.Key > 0 {
			// The samples keep their sizes; the boxes before them grew.
			s.Key += fi.Size - s.Size
		}
		s.Size, s.SHA256 = fi.Size, fi.SHA256
	}
	return nil
}

// writeKeys writes the asset's private key file, readable by its owner.
func writeKeys(staging string, e Encryption) error {
	b, _ := json.Marshal(ContentKey{KeyID: hex.EncodeToString(e.KeyID), Key: hex.EncodeToString(e.Key)})
	if err := os.WriteFile(filepath.Join(staging, KeysFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	return nil
}

// ParseContentKey reads a KeysFile.
func ParseContentKey(b []byte) (kid, key []byte, err error) {
	var ck ContentKey
	if err := json.Unmarshal(b, &ck); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", KeysFile, err)
	}
	if kid, err = parseHex16(ck.KeyID); err != nil {
		return nil, nil, fmt.Errorf("%s: key id: %w", KeysFile, err)
	}
	if key, err = parseHex16(ck.Key); err != nil {
		return nil, nil, fmt.Errorf("%s: key: %w", KeysFile, err)
	}
	return kid, key, nil
}
