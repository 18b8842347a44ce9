package origin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
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
	const copies = 8
	for i := range copies {
		storetest.CopyAssetAs(t, store.Folder{Root: lib}, lib, mediatest.AssetName, fmt.Sprintf("copy%d", i))
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

// TestAssetListingsArePaged: /api/assets gives at most a page of assets
// in name order, and where the next page starts; the pages together are
// the whole library, each asset once, and a page loads only its own
// assets.
func TestAssetListingsArePaged(t *testing.T) {
	lib := mediatest.CopyLibrary(t)
	var want []string
	for i := range 6 {
		name := fmt.Sprintf("a%d", i)
		storetest.CopyAssetAs(t, store.Folder{Root: lib}, lib, mediatest.AssetName, name)
		want = append(want, name)
	}
	want = append(want, mediatest.AssetName)
	slices.Sort(want)
	s, ts := start(t, lib)

	type page struct {
		Assets []AssetSummary
		Next   string
	}
	list := func(query string) (int, page) {
		t.Helper()
		resp, body := get(t, ts.URL+"/api/assets"+query)
		var p page
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
		return resp.StatusCode, p
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatalf("more than %d pages of 3: %v", len(want), got)
		}
		before, _, _ := s.Catalog().Memory()
		code, p := list("?limit=3&after=" + url.QueryEscape(after))
		if code != http.StatusOK || len(p.Assets) > 3 {
			t.Fatalf("page after %q: %d, %d assets; want 200, at most 3", after, code, len(p.Assets))
		}
		if loaded, _, _ := s.Catalog().Memory(); loaded > before+len(p.Assets) {
			t.Errorf("a page of %d assets loaded %d", len(p.Assets), loaded-before)
		}
		for _, a := range p.Assets {
			got = append(got, a.Name)
		}
		if p.Next == "" {
			break
		}
		if len(p.Assets) != 3 || p.Next != p.Assets[2].Name {
			t.Fatalf("page after %q: %d assets, next %q; a page with a next is full and ends at next", after, len(p.Assets), p.Next)
		}
		after = p.Next
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged listing %v, want %v", got, want)
	}
	// Unpaged, as before: every asset (the library is under a page).
	if code, p := list(""); code != http.StatusOK || len(p.Assets) != len(want) || p.Next != "" {
		t.Errorf("whole listing: %d, %d assets, next %q; want 200, %d, none", code, len(p.Assets), p.Next, len(want))
	}
	// After a name not in the library: from the next name in order.
	if _, p := list("?after=a3x"); len(p.Assets) == 0 || p.Assets[0].Name != "a4" {
		t.Errorf("after a3x: %v, want from a4", p.Assets)
	}
	if _, p := list("?after=zzz"); len(p.Assets) != 0 || p.Next != "" {
		t.Errorf("after the last name: %d assets, next %q; want none", len(p.Assets), p.Next)
	}
	// With pages of 2: listings give 2 by default and no more, and the
	// index page lists the first 2 and links to the rest.
	_, small := start(t, lib, func(c *Config) { c.ListPage = 2 })
	resp, body := get(t, small.URL+"/api/assets")
	var p page
	if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != http.StatusOK || len(p.Assets) != 2 || p.Next != want[1] {
		t.Errorf("listing with pages of 2: %d, %d assets, next %q, %v; want 200, 2, %s", resp.StatusCode, len(p.Assets), p.Next, err, want[1])
	}
	if resp, _ := get(t, small.URL+"/api/assets?limit=3"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("limit=3 with pages of 2: %d, want 400", resp.StatusCode)
	}
	resp, body = get(t, small.URL+"/")
	link := `href="/api/assets?after=` + want[1] + `"`
	if resp.StatusCode != http.StatusOK || strings.Count(string(body), "<tr><td>") != 2 || !strings.Contains(string(body), link) {
		t.Errorf("index page with room for 2 assets: %d, %d rows, link %s: %v\n%s", resp.StatusCode, strings.Count(string(body), "<tr><td>"), link, strings.Contains(string(body), link), body)
	}
	for _, bad := range []string{"0", "-1", "1001", "x", "1e3"} {
		if code, _ := list("?limit=" + bad); code != http.StatusBadRequest {
			t.Errorf("limit=%s: %d, want 400", bad, code)
		}
	}
}
