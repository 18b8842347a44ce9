package cmcd

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// specExample is the query of CTA-5004's own example of every key.
const specExample = `CMCD=bl%3D21300%2Cbr%3D3200%2Cbs%2Ccid%3D%22faec5fc2-ac30-11eabb37-0242ac130002%22%2Cd%3D4004%2Cdl%3D18500%2Cmtp%3D48100%2Cnor%3D%22..%252F300kbps%252Ftrack.m4v%22%2Cnrr%3D%2212323-48763%22%2Cot%3Dv%2Cpr%3D1.08%2Crtp%3D12000%2Csf%3Dd%2Csid%3D%226e2fb550-c457-11e9-bb97-0800200c9a66%22%2Cst%3Dv%2Csu%2Ctb%3D6000`

func TestFromRequestReadsTheSpecificationsExample(t *testing.T) {
	d, found, err := FromRequest("x=1&"+specExample, nil)
	if err != nil || !found {
		t.Fatalf("found %v, err %v", found, err)
	}
	want := Data{Bitrate: 3200, Buffer: 21300, Starved: true, Duration: 4004, Deadline: 18500, Throughput: 48100, RequestedMax: 12000,
		TopBitrate: 6000, Rate: 1.08, Startup: true, Version: 1, Object: "v", Format: "d", StreamType: "v",
		Session: "6e2fb550-c457-11e9-bb97-0800200c9a66", Content: "faec5fc2-ac30-11eabb37-0242ac130002",
		Next: "..%2F300kbps%2Ftrack.m4v", NextRange: "12323-48763"}
	if d != want {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
}

func TestFromRequestMergesTheHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("CMCD-Request", `bl=2100,mtp=25400,nor="3.m4s",su`)
	h.Set("CMCD-Object", "br=3200,d=4004,ot=v,tb=6000")
	h.Set("CMCD-Status", "bs,rtp=15000")
	h.Set("CMCD-Session", `sid="6e2fb550",st=l,sf=h,v=1`)
	d, found, err := FromRequest("", h)
	if err != nil || !found {
		t.Fatalf("found %v, err %v", found, err)
	}
	if d.Buffer != 2100 || d.Throughput != 25400 || d.Next != "3.m4s" || !d.Startup || d.Bitrate != 3200 || d.Object != "v" ||
		!d.Starved || d.RequestedMax != 15000 || d.Session != "6e2fb550" || d.StreamType != "l" || d.Format != "h" || d.Deadline != -1 {
		t.Errorf("got %+v", d)
	}
	if _, found, _ := FromRequest("CMCDX=1&a=CMCD", http.Header{"Accept": {"*/*"}}); found {
		t.Error("found CMCD in a request without it")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		list string
		ok   bool
		want func(Data) bool
	}{
		{"", true, func(d Data) bool { return d == Empty() }},
		{"bl=0", true, func(d Data) bool { return d.Buffer == 0 }},
		{"bs", true, func(d Data) bool { return d.Starved }},
		{"bs=false,su=true", true, func(d Data) bool { return !d.Starved && d.Startup }},
		{` bl=100 , ot=a `, true, func(d Data) bool { return d.Buffer == 100 && d.Object == "a" }},
		{`sid="a,b\"c\\d"`, true, func(d Data) bool { return d.Session == `a,b"c\d` }},
		{`com.example-myNumericKey=500,com.example-myStringKey="x",bl=5`, true, func(d Data) bool { return d.Buffer == 5 }},
		{"v=2,xyz=abc", true, func(d Data) bool { return d.Version == 2 }},
		{"bl=-1", false, nil},
		{"bl=1.5", false, nil},
		{`bl="1"`, false, nil},
		{"br", false, nil},
		{"sid=abc", false, nil},
		{`sid="abc`, false, nil},
		{`sid="abc\`, false, nil},
		{`sid="a"x`, false, nil},
		{"ot=", false, nil},
		{"ot=v v", false, nil},
		{"bs=yes", false, nil},
		{"pr=-1", false, nil},
		{"pr=NaN", false, nil},
		{",bl=1", false, nil},
		{"=1", false, nil},
		{`nor="` + strings.Repeat("a", 2000) + `"`, false, nil},
		{strings.Repeat("bl=1,", 1000), false, nil},
	}
	for _, tc := range tests {
		d := Empty()
		err := Parse(&d, tc.list)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%.60q): error %v, want ok %v", tc.list, err, tc.ok)
			continue
		}
		if tc.ok && !tc.want(d) {
			t.Errorf("Parse(%.60q) = %+v", tc.list, d)
		}
	}
}

func TestViewersSummary(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	v := NewViewers(time.Minute, 3)
	report := func(at time.Time, list string) {
		d := Empty()
		if err := Parse(&d, list); err != nil {
			t.Fatal(err)
		}
		v.ObserveFrom(&d, netip.Prefix{}, "", at)
	}
	report(now, `sid="a",ot=v,br=3000,bl=12000`)
	report(now, `sid="a",ot=a,br=128,bl=11000`) // the sound does not replace the picture's state
	report(now, `sid="b",ot=v,br=1000,bl=2000,bs,st=l`)
	report(now, `sid="c",ot=m`)                                // a manifest: watching, nothing known yet
	report(now, `ot=v,bl=1`)                                   // no session: not a viewer
	report(now, `ot=v,bl=1,sid="`+strings.Repeat("x", 65)+`"`) // longer than CTA-5004 allows
	s := v.Summary(now)
	want := Summary{Sessions: 3, Live: 1, Starved: 1, BufferMedianSeconds: 7, BufferMinSeconds: 2, BitrateMeanKbps: 2000}
	if s != want {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	// Active: those that asked within the span; b, quiet for 20 s, is
	// still a viewer of the minute but no longer fetching.
	report(now.Add(20*time.Second), `sid="a",ot=v`)
	report(now.Add(12*time.Second), `sid="c",ot=v`)
	if got := v.Active(now.Add(20*time.Second), 10*time.Second); got != 2 {
		t.Errorf("active within 10 s: %d, want 2 (a and c)", got)
	}
	if got := v.Active(now.Add(20*time.Second), time.Minute); got != 3 {
		t.Errorf("active within the minute: %d, want 3", got)
	}
	// Full: a fourth session is counted, not kept, until the others age out.
	report(now.Add(time.Second), `sid="d",ot=v,bl=5000`)
	if s := v.Summary(now.Add(time.Second)); s.Sessions != 3 || s.Untracked != 1 {
		t.Errorf("over Max: %+v", s)
	}
	later := now.Add(90 * time.Second)
	report(later, `sid="d",ot=v,bl=5000`)
	if s := v.Summary(later); s.Sessions != 1 || s.Starved != 0 || s.BufferMedianSeconds != 5 || s.BitrateMeanKbps != -1 {
		t.Errorf("after the window: %+v", s)
	}
	// A stall older than the window no longer counts; the session does.
	report(later, `sid="e",ot=v,bs`)
	report(later.Add(61*time.Second), `sid="e",ot=v`)
	if s := v.Summary(later.Add(61 * time.Second)); s.Sessions != 1 || s.Starved != 0 {
		t.Errorf("an old stall: %+v", s)
	}
}

func FuzzParse(f *testing.F) {
	q, _ := url.QueryUnescape(strings.TrimPrefix(specExample, "CMCD="))
	for _, s := range []string{q, `sid="a\"b"`, "bs,su", "bl=1,,", `nor="`, "ot=v,=", "pr=1e308"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		d := Empty()
		if err := Parse(&d, list); err != nil {
			return
		}
		for _, n := range []int64{d.Bitrate, d.Buffer, d.Duration, d.Deadline, d.Throughput, d.RequestedMax, d.TopBitrate} {
			if n < -1 {
				t.Fatalf("%q: a negative integer %d", list, n)
			}
		}
		if d.Rate < 0 || d.Rate > 100 || len(d.Session) > maxString || len(d.Next) > maxString {
			t.Fatalf("%q: out of bounds: %+v", list, d)
		}
		v := NewViewers(time.Minute, 2)
		v.ObserveFrom(&d, netip.Prefix{}, "", time.Unix(0, 0))
		if s := v.Summary(time.Unix(0, 0)); s.Sessions > 1 {
			t.Fatalf("%q: %+v", list, s)
		}
	})
}

// TestViewersPerClient: one address that makes up session ids keeps
// PerClient of them (the rest are untracked), others are not held back by
// it, and its share comes back as its sessions age out; an unknown client
// is not bounded.
func TestViewersPerClient(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	v := NewViewers(time.Minute, 100)
	v.PerClient = 3
	flood, other := netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/64")
	for i := range 10 {
		d := Empty()
		d.Session = fmt.Sprintf("flood-%d", i)
		v.ObserveFrom(&d, flood, "", now)
	}
	for _, sid := range []string{"x", "y"} {
		d := Empty()
		d.Session = sid
		v.ObserveFrom(&d, other, "", now)
	}
	d := Empty()
	d.Session = "flood-0" // a kept session goes on reporting
	v.ObserveFrom(&d, flood, "", now.Add(30*time.Second))
	if s := v.Summary(now.Add(30 * time.Second)); s.Sessions != 5 || s.Untracked != 7 {
		t.Errorf("sessions %d, untracked %d; want 5 (3 of the flood, 2 others) and 7", s.Sessions, s.Untracked)
	}
	// Two of the flood's sessions age out: two new ones fit again.
	later := now.Add(75 * time.Second)
	for _, sid := range []string{"flood-a", "flood-b", "flood-c"} {
		d := Empty()
		d.Session = sid
		v.ObserveFrom(&d, flood, "", later)
	}
	if got := v.Active(later, time.Second); got != 2 {
		t.Errorf("new sessions of the flood's address after two aged out: %d, want 2", got)
	}
	for i := range 10 {
		d := Empty()
		d.Session = fmt.Sprintf("anon-%d", i)
		v.ObserveFrom(&d, netip.Prefix{}, "", later)
	}
	if got := v.Active(later, time.Second); got != 12 {
		t.Errorf("sessions from no known client: %d active, want all 10 beside the 2", got)
	}
}

func BenchmarkFromRequestAndObserve(b *testing.B) {
	query := "CMCD=" + url.QueryEscape(`bl=21300,br=3200,d=4004,mtp=48100,nor="2.m4s",ot=v,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,tb=6000`)
	v := NewViewers(time.Minute, 100)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		d, found, err := FromRequest(query, nil)
		if !found || err != nil {
			b.Fatal(err)
		}
		v.ObserveFrom(&d, netip.Prefix{}, "", now)
	}
}

// FuzzUnescape holds the decoder of the CMCD argument to url.QueryUnescape.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"bl%3D21300%2Cbs", "a+b", "%", "%4", "%zz", "%e2%82%AC", "plain", "%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, err := unescape(q)
		want, werr := url.QueryUnescape(q)
		if len(q) > 3*maxLen {
			return
		}
		if (err == nil) != (werr == nil) || err == nil && got != want {
			t.Fatalf("unescape(%q) = %q, %v; url.QueryUnescape: %q, %v", q, got, err, want, werr)
		}
	})
}

// TestViewersSessions: the sessions fetching, with what they play (the
// last asset named) and the video bitrate they last took.
func TestViewersSessions(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	v := NewViewers(time.Minute, 10)
	report := func(at time.Time, asset, list string) {
		d := Empty()
		if err := Parse(&d, list); err != nil {
			t.Fatal(err)
		}
		v.ObserveFrom(&d, netip.Prefix{}, asset, at)
	}
	report(now, "film", `sid="a",ot=m`)
	report(now, "film", `sid="a",ot=v,br=1000,bl=8000`)
	report(now, "", `sid="a",ot=a,br=128`) // an asset not known keeps the last
	report(now, "show", `sid="b",ot=v,br=350`)
	report(now.Add(-20*time.Second), "film", `sid="c",ot=v,br=2000`) // quiet since
	report(now, "film", `sid="b",ot=m`)                              // b moved on to the film
	got := v.Sessions(now, 15*time.Second)
	slices.SortFunc(got, func(x, y Session) int { return strings.Compare(x.ID, y.ID) })
	want := []Session{{ID: "a", Asset: "film", BitrateKbps: 1000, BufferMs: 8000}, {ID: "b", Asset: "film", BitrateKbps: 350, BufferMs: -1}}
	if !slices.Equal(got, want) {
		t.Errorf("sessions: %+v, want %+v", got, want)
	}
}
