// Package player is deepcast's ABR client: it reads an MPD (through the
// manifest package, and nothing else of ours), downloads segments while
// measuring throughput, keeps a buffer model, and lets an ABR algorithm pick
// each chunk's rendition. The session loop is written once and runs either
// on the wall clock over real HTTP (play) or on a virtual clock over a
// bandwidth trace (sim), so simulation and reality share the ABR code.
//
// Algorithms and QoE models live one per file behind small interfaces and
// keep all state in their own values: sessions run in parallel by the
// thousand.
//
// The same algorithms run in the browser (cmd/deepcast-abr, WebAssembly,
// through BrowserSession): the files that reach the network or draw plots
// are left out of js builds, which keeps that module under 1 MB gzipped.
package player
