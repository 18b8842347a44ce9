// Command mkdist copies the front-end packages the pages use from
// web/node_modules into web/dist, with their licences, and compiles the
// ABR core to WebAssembly into web/dist/abr, for `make build` to embed
// them in the binary. It runs from the module's root.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/deepcast/deepcast/web"
)

func main() {
	modules, dist := "web/node_modules", "web/dist"
	if len(os.Args) == 3 {
		modules, dist = os.Args[1], os.Args[2]
	}
	n, err := web.BuildDist(modules, dist)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdist:", err)
		os.Exit(1)
	}
	fmt.Printf("mkdist: %d files from %s into %s\n", n, modules, dist)
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	if err := web.BuildABR(context.Background(), goCmd, ".", filepath.Join(dist, "abr")); err != nil {
		fmt.Fprintln(os.Stderr, "mkdist:", err)
		os.Exit(1)
	}
	fmt.Printf("mkdist: the ABR core in WebAssembly into %s\n", filepath.Join(dist, "abr"))
}
