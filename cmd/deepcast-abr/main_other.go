//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "deepcast-abr runs in a browser: build it with GOOS=js GOARCH=wasm (make build puts it in web/dist/abr)")
	os.Exit(2)
}
