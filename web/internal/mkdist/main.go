// Command mkdist copies the front-end packages the pages use from
// web/node_modules into web/dist, with their licences, for `make build` to
// embed them in the binary.
package main

import (
	"fmt"
	"os"

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
}
