package origin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
)

// licenceRequest and licenceResponse are W3C EME ClearKey's JSON license
// request and response (the key ids and keys in unpadded base64url).
type licenceRequest struct {
	Kids []string `json:"kids"`
	Type string   `json:"type"`
}

type licenceKey struct {
	Kty string `json:"kty"`
	K   string `json:"k"`
	Kid string `json:"kid"`
}

type licenceResponse struct {
	Keys []licenceKey `json:"keys"`
	Type string       `json:"type"`
}

// maxLicenceRequest bounds a licence request's body: a few key ids.
const maxLicenceRequest = 4 << 10

// serveLicence is the ClearKey licence endpoint of an encrypted asset
// (POST /vod/{asset}/clearkey): the asset's key for the key ids asked,
// never cached. Under /vod/{asset}/, an edge that checks tokens lets only
// holders of a token for the asset reach it.
func (s *Server) serveLicence(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if e.Asset.Protection == nil {
		httpError(w, http.StatusNotFound, "asset is not encrypted")
		return
	}
	var req licenceRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxLicenceRequest)).Decode(&req); err != nil || len(req.Kids) == 0 {
		httpError(w, http.StatusBadRequest, `want a ClearKey licence request: {"kids":["<base64url key id>"],"type":"temporary"}`)
		return
	}
	raw, err := s.catalog.Store().ReadFile(r.Context(), e.Version, media.KeysFile, maxLicenceRequest)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			s.storeDown(w, e.Name, media.KeysFile, err)
			return
		}
		s.log.Error("asset key unreadable", "asset", e.Name, "err", err) // the error never holds the key
		httpError(w, http.StatusInternalServerError, "asset key unreadable")
		return
	}
	kid, key, err := media.ParseContentKey(raw)
	if err != nil {
		s.log.Error("asset key unreadable", "asset", e.Name, "file", media.KeysFile)
		httpError(w, http.StatusInternalServerError, "asset key unreadable")
		return
	}
	enc := base64.RawURLEncoding
	resp := licenceResponse{Keys: []licenceKey{}, Type: "temporary"}
	if req.Type == "persistent-license" {
		resp.Type = req.Type
	}
	for _, k := range req.Kids {
		got, err := enc.DecodeString(k)
		if err == nil && string(got) == string(kid) {
			resp.Keys = append(resp.Keys, licenceKey{Kty: "oct", K: enc.EncodeToString(key), Kid: enc.EncodeToString(kid)})
			break
		}
	}
	if len(resp.Keys) == 0 {
		httpError(w, http.StatusNotFound, "no key for the key ids asked")
		return
	}
	s.metrics.licences.Inc()
	writeJSON(w, http.StatusOK, resp)
}
