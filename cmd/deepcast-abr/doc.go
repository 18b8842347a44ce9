// Command deepcast-abr is the player's ABR core for browsers: the same Go
// code `deepcast sim` and `deepcast play` run, compiled to WebAssembly
// (GOOS=js GOARCH=wasm; `make build` does it, into web/dist/abr) for the
// player page, which plugs it into dash.js as a custom ABR rule.
//
// Loaded with Go's wasm_exec.js, it sets globalThis.deepcastABR:
//
//	deepcastABR.algorithms                  // ["bba", "bola", "deepcast", …]
//	deepcastABR.newSession(name, videoJSON) // {id} or {error}; videoJSON as player.BrowserVideo
//	deepcastABR.choose(id, stateJSON)       // {quality} or {error}; stateJSON as player.BrowserState
//	deepcastABR.abandon(id, progressJSON)   // {quality}: -1 goes on; or {error}; progressJSON as player.BrowserProgress
//	deepcastABR.closeSession(id)
//
// and calls globalThis.onDeepcastABR() when it is ready, if that exists.
package main
