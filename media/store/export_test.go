package store

// IdleDirect is how many store connections lib's pool holds idle (0 for a
// store without direct reads).
func IdleDirect(lib Store) int {
	s, ok := lib.(*S3)
	if !ok {
		return 0
	}
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	return len(s.pool.idle)
}

// PausePublish makes every Publish of build call pause(point) at point:
// "uploaded" (object stores: every file is up, not yet checked),
// "installed" (the version is in the store, nothing points at it yet) and
// "live" (it is live, old versions not yet pruned). The hook goes when the
// test ends.
func PausePublish(t interface{ Cleanup(func()) }, build string, pause func(point string)) {
	publishHook = func(point, b string) {
		if b == build {
			pause(point)
		}
	}
	t.Cleanup(func() { publishHook = nil })
}
