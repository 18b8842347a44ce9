package origin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
)

// TestCatalogStaysWithinItsMemory: an origin whose library holds more
// assets than its catalogue memory keeps the most recently requested ones
// loaded, drops the others, serves every asset all the same, and neither
// a listing nor the dashboard's stats count as requests or load the
// library for a count.
func TestCatalogStaysWithinItsMemory(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	folder := store.Folder{Root: lib}
	dir, err := folder.Resolve(mediatest.AssetName)
	if err != nil {
		t.Fatal(err)
	}
	const copies = 8
	for i := range copies {
		storetest.CopyIn(t, folder, dir, fmt.Sprintf("copy%d", i), "b1")
	}
	// The cost of one asset, from an origin without a bound.
	probe, pts := start(t, lib)
	get(t, pts.URL+"/vod/copy0/manifest.mpd")
	_, one, _ := probe.Catalog().Memory()
	if one < 1000 {
		t.Fatalf("one asset costs %d bytes: the estimate misses what it holds", one)
	}

	budget := one * 5 / 2
	s, ts := start(t, lib, func(c *Config) { c.CatalogBytes = budget })
	cat := s.Catalog()
	hot := "/vod/" + mediatest.AssetName + "/manifest.mpd"
	for i := range copies {
		for _, path := range []string{hot, fmt.Sprintf("/vod/copy%d/manifest.mpd", i)} {
			if resp, _ := get(t, ts.URL+path); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", path, resp.StatusCode)
			}
		}
		if n, b, _ := cat.Memory(); b > budget {
			t.Fatalf("after copy%d: %d entries hold %d bytes, over the bound of %d", i, n, b, budget)
		}
	}
	n, _, evictions := cat.Memory()
	if evictions < copies-2 || n > 2 {
		t.Errorf("%d entries loaded, %d evictions: want at most 2 of %d assets loaded", n, evictions, copies+1)
	}
	// The asset asked for between every other one stayed loaded.
	cat.mu.RLock()
	_, hotLoaded := cat.entries[mediatest.AssetName]
	cat.mu.RUnlock()
	if !hotLoaded {
		t.Errorf("the most requested asset was dropped: eviction is not by recency")
	}

	// The stats count the library without loading it.
	resp, body := get(t, ts.URL+"/api/stats")
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: %d %v", resp.StatusCode, err)
	}
	if st.Assets != copies+1 {
		t.Errorf("stats count %d assets, want %d", st.Assets, copies+1)
	}
	if m, _, _ := cat.Memory(); m != n {
		t.Errorf("the stats loaded assets: %d loaded, %d before", m, n)
	}
	// A listing loads them all, one at a time, and leaves the requested
	// one loaded.
	resp, body = get(t, ts.URL+"/api/assets")
	var list struct{ Assets []AssetSummary }
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != http.StatusOK || len(list.Assets) != copies+1 {
		t.Fatalf("listing: %d, %d assets, %v", resp.StatusCode, len(list.Assets), err)
	}
	cat.mu.RLock()
	_, hotLoaded = cat.entries[mediatest.AssetName]
	cat.mu.RUnlock()
	if _, b, _ := cat.Memory(); b > budget || !hotLoaded {
		t.Errorf("after a listing: %d bytes (bound %d), requested asset loaded %v", b, budget, hotLoaded)
	}
}
