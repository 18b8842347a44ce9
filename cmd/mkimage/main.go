// Command mkimage builds deepcast's container image without a container
// daemon: the static binary on an empty base (with the system's CA
// bundle for HTTPS upstreams and ACME, and a /tmp for spool files),
// written as an OCI image layout (https://github.com/opencontainers/image-spec)
// and as a tarball of it, which `podman load`, `docker load` (25+),
// skopeo and registries take.
//
//	go run ./cmd/mkimage -bin bin/deepcast-static -o bin/image -tag deepcast:dev
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/deepcast-static", "the deepcast binary to ship (build it with CGO_ENABLED=0)")
	out := flag.String("o", "bin/image", "output folder: the OCI layout, and OUT.tar beside it")
	tag := flag.String("tag", "deepcast:dev", "the image's name:tag")
	caFile := flag.String("ca", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to ship (empty: none)")
	version := flag.String("version", "dev", "the version label")
	flag.Parse()
	if err := build(*bin, *out, *tag, *caFile, *version); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// blob is a content-addressed file of the layout.
type blob struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

func build(binPath, out, tag, caFile, version string) error {
	name, ref, ok := strings.Cut(tag, ":")
	if !ok || name == "" || ref == "" {
		return fmt.Errorf("-tag %q: want name:tag", tag)
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return err
	}
	files := []layerFile{
		{path: "tmp/", mode: 0o1777, dir: true},
		{path: "usr/", mode: 0o755, dir: true},
		{path: "usr/local/", mode: 0o755, dir: true},
		{path: "usr/local/bin/", mode: 0o755, dir: true},
		{path: "usr/local/bin/deepcast", mode: 0o755, data: bin},
	}
	if caFile != "" {
		ca, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		files = append(files, layerFile{path: "etc/", mode: 0o755, dir: true}, layerFile{path: "etc/ssl/", mode: 0o755, dir: true},
			layerFile{path: "etc/ssl/certs/", mode: 0o755, dir: true}, layerFile{path: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca})
	}
	layer, diffID, err := makeLayer(files)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	put := func(mediaType string, data []byte) (blob, error) {
		sum := sha256.Sum256(data)
		d := hex.EncodeToString(sum[:])
		return blob{MediaType: mediaType, Digest: "sha256:" + d, Size: int64(len(data))},
			os.WriteFile(filepath.Join(out, "blobs", "sha256", d), data, 0o644)
	}
	layerBlob, err := put("application/vnd.oci.image.layer.v1.tar+gzip", layer)
	if err != nil {
		return err
	}
	created := time.Unix(0, 0).UTC() // reproducible: the same binary, the same image
	config := map[string]any{
		"created":      created,
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"User":         "65532:65532",
			"Entrypoint":   []string{"/usr/local/bin/deepcast"},
			"Cmd":          []string{"help"},
			"Env":          []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "TMPDIR=/tmp"},
			"ExposedPorts": map[string]any{"8080/tcp": map[string]any{}, "8443/tcp": map[string]any{}, "8443/udp": map[string]any{}},
			"Labels": map[string]string{
				"org.opencontainers.image.title":    "deepcast",
				"org.opencontainers.image.version":  version,
				"org.opencontainers.image.licenses": "Apache-2.0",
			},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]any{{"created": created, "created_by": "deepcast mkimage"}},
	}
	cfgJSON, _ := json.Marshal(config)
	cfgBlob, err := put("application/vnd.oci.image.config.v1+json", cfgJSON)
	if err != nil {
		return err
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": cfgBlob, "layers": []blob{layerBlob},
	})
	manBlob, err := put("application/vnd.oci.image.manifest.v1+json", manifest)
	if err != nil {
		return err
	}
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []map[string]any{{"mediaType": manBlob.MediaType, "digest": manBlob.Digest, "size": manBlob.Size,
			"annotations": map[string]string{"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": tag}}},
	})
	if err := os.WriteFile(filepath.Join(out, "index.json"), index, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	if err := tarDir(out, out+".tar"); err != nil {
		return err
	}
	fmt.Printf("mkimage: %s (%s, %d MiB layer) in %s and %s.tar\n", tag, manBlob.Digest[:19], len(layer)>>20, out, out)
	return nil
}

// layerFile is one entry of the image's only layer.
type layerFile struct {
	path string
	mode int64
	dir  bool
	data []byte
}

// makeLayer is the gzipped tar of files and the digest of the plain tar
// (the layer's diff ID).
func makeLayer(files []layerFile) ([]byte, string, error) {
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, ModTime: time.Unix(0, 0), Uid: 0, Gid: 0, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diff := sha256.Sum256(plain.Bytes())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if _, err := io.Copy(zw, &plain); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), "sha256:" + hex.EncodeToString(diff[:]), nil
}

// tarDir writes the files of dir as a tar (the layout, for `load`).
func tarDir(dir, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name, h.ModTime = filepath.ToSlash(rel), time.Unix(0, 0)
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
