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
