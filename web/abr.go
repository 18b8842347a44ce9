package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The ABR core in WebAssembly (cmd/deepcast-abr) and Go's loader for it,
// as BuildABR writes them into a folder (web/dist/abr for `make build`).
const (
	ABRWasm   = "deepcast-abr.wasm"
	WasmExec  = "wasm_exec.js"
	goLicence = "go.LICENSE"
	abrSubdir = "abr"
)

// BuildABR compiles the ABR core to WebAssembly into dir (and a gzipped
// copy, which is what browsers are sent), with Go's wasm_exec.js beside
// it; goCmd is the go command, module the module's root.
func BuildABR(ctx context.Context, goCmd, module, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out := filepath.Join(dir, ABRWasm)
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/deepcast-abr")
	cmd.Dir = module
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the ABR core for the browser: %w\n%s", err, b)
	}
	root, err := exec.CommandContext(ctx, goCmd, "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	loader, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(root)), "lib", "wasm", WasmExec))
	if err != nil {
		return fmt.Errorf("the Go distribution's %s: %w", WasmExec, err)
	}
	if err := os.WriteFile(filepath.Join(dir, WasmExec), loader, 0o644); err != nil {
		return err
	}
	// wasm_exec.js and the Go runtime in the module are Go's, under its
	// licence, which goes beside them.
	licence, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(root)), "LICENSE"))
	if err != nil {
		return fmt.Errorf("the Go licence: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, goLicence), licence, 0o644); err != nil {
		return err
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(wasm)
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out+".gz", gz.Bytes(), 0o644)
}

// abrFiles is where the page's ABR core comes from: cfg.ABRDir, else
// what `make build` embedded, else web/dist/abr on disk; nil when none
// has it.
func abrFiles(dir string) fs.FS {
	if dir != "" {
		return os.DirFS(dir)
	}
	if sub, err := fs.Sub(dist, "dist/"+abrSubdir); err == nil {
		if _, err := fs.Stat(sub, ABRWasm); err == nil {
			return sub
		}
	}
	d := filepath.Join("web", "dist", abrSubdir)
	if _, err := os.Stat(filepath.Join(d, ABRWasm)); err == nil {
		return os.DirFS(d)
	}
	return nil
}

// serveABR serves the ABR core's two files, the WebAssembly gzipped to
// clients that take it.
func serveABR(files fs.FS) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if files == nil || (name != ABRWasm && name != WasmExec && name != goLicence) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		if name == ABRWasm {
			w.Header().Set("Content-Type", "application/wasm")
			w.Header().Add("Vary", "Accept-Encoding")
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				if _, err := fs.Stat(files, name+".gz"); err == nil {
					w.Header().Set("Content-Encoding", "gzip")
					http.ServeFileFS(w, r, files, name+".gz")
					return
				}
			}
		} else if name == WasmExec {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		http.ServeFileFS(w, r, files, name)
	}
}
