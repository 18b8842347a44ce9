package edge

import (
	"hash/fnv"
)

// rendezvousOwner picks the member that owns key by highest random weight
// (rendezvous hashing): every node computes the same owner, and removing a
// member moves only the keys it owned.
func rendezvousOwner(key string, members []string) int {
	best, bestScore := -1, uint64(0)
	for i, m := range members {
		h := fnv.New64a()
		h.Write([]byte(m))
		h.Write([]byte{0})
		h.Write([]byte(key))
		s := mix64(h.Sum64())
		if best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// mix64 is a 64-bit finaliser (splitmix64): FNV alone spreads similar keys poorly.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
