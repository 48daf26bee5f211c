package eas

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// testJPEG is a fake JPEG of n bytes (the SOI marker, then filler).
func testJPEG(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0})
	return b
}

var (
	aliceJPEG = testJPEG(600)
	carolJPEG = testJPEG(5000)
)

// aliceProfile is alice's full directory entry.
var aliceProfile = Profile{
	DisplayName: "Alice Smith", FirstName: "Alice", LastName: "Smith", Title: "Engineer",
	Company: "Example Corp", Office: "B12", Phone: "+1 555 0100", HomePhone: "+1 555 0101",
	MobilePhone: "+1 555 0102", Alias: "asmith", Picture: aliceJPEG,
}

// putProfile stores p as user's profile.
func (ts *testServer) putProfile(user string, p Profile) {
	ts.t.Helper()
	u, err := ts.st.User(context.Background(), user)
	if err != nil {
		ts.t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		ts.t.Fatal(err)
	}
	if err := ts.st.PutUserSetting(context.Background(), u.ID, ProfileSettingKey, b); err != nil {
		ts.t.Fatal(err)
	}
}

// addUser creates a user (who never logs in) with a profile.
func (ts *testServer) addUser(name string, p Profile, disabled bool) {
	ts.t.Helper()
	if _, err := ts.st.CreateUser(context.Background(), name, ""); err != nil {
		ts.t.Fatal(err)
	}
	ts.putProfile(name, p)
	if disabled {
		if err := ts.st.SetDisabled(context.Background(), name, true); err != nil {
			ts.t.Fatal(err)
		}
	}
}

// newGALServer is the test server with a small directory: alice (full
// profile and a 600-byte picture), bob (no profile), carol (a 5000-byte
// picture), erin, and dave, who is disabled.
func newGALServer(t *testing.T) *testServer {
	ts := newTestServer(t, nil)
	ts.putProfile("alice", aliceProfile)
	ts.addUser("carol", Profile{FirstName: "Carol", LastName: "Smithers", Picture: carolJPEG}, false)
	ts.addUser("erin@example.org", Profile{DisplayName: "Erin Smythe"}, false)
	ts.addUser("dave", Profile{DisplayName: "Dave Smith", Picture: aliceJPEG}, true)
	return ts
}

// galStore sends a Search of the GAL as alice (provisioned) and returns
// Response > Store, checking the top-level status.
func (ts *testServer) galStore(version, query string, options ...*wbxml.Node) *wbxml.Node {
	ts.t.Helper()
	st := wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchName, "GAL"), wbxml.T(wbxml.SearchQuery, query))
	if len(options) > 0 {
		st.Append(wbxml.E(wbxml.SearchOptions, options...))
	}
	return ts.searchStore(version, st)
}

func (ts *testServer) searchStore(version string, st *wbxml.Node) *wbxml.Node {
	ts.t.Helper()
	k := ts.provision(call{version: version})
	r := ts.do(call{cmd: "Search", version: version, policyKey: &k, body: wbxml.E(wbxml.SearchSearch, st)})
	if r.code != 200 || r.body == nil {
		ts.t.Fatalf("Search: HTTP %d %q", r.code, r.raw)
	}
	if got := r.body.ChildText(wbxml.SearchStatus); got != "1" {
		ts.t.Fatalf("Search status %s: %v", got, r.body)
	}
	return r.body.Path(wbxml.SearchResponse, wbxml.SearchStore)
}

// galResult is an expected Result with these properties.
func galResult(props ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.SearchResult, wbxml.E(wbxml.SearchProperties, props...))
}

// galStoreResp is an expected Store: status 1, results, Range, Total.
func galStoreResp(rng, total string, results ...*wbxml.Node) *wbxml.Node {
	st := wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, "1"))
	if len(results) == 0 {
		return st.Append(wbxml.E(wbxml.SearchResult), wbxml.T(wbxml.SearchTotal, total))
	}
	return st.Append(results...).Append(wbxml.T(wbxml.SearchRange, rng), wbxml.T(wbxml.SearchTotal, total))
}

// aliceProps are alice's properties in MS-ASCMD 2.2.3.139.3 order.
func aliceProps(extra ...*wbxml.Node) []*wbxml.Node {
	return append([]*wbxml.Node{
		wbxml.T(wbxml.GALDisplayName, "Alice Smith"), wbxml.T(wbxml.GALPhone, "+1 555 0100"),
		wbxml.T(wbxml.GALOffice, "B12"), wbxml.T(wbxml.GALTitle, "Engineer"),
		wbxml.T(wbxml.GALCompany, "Example Corp"), wbxml.T(wbxml.GALAlias, "asmith"),
		wbxml.T(wbxml.GALFirstName, "Alice"), wbxml.T(wbxml.GALLastName, "Smith"),
		wbxml.T(wbxml.GALHomePhone, "+1 555 0101"), wbxml.T(wbxml.GALMobilePhone, "+1 555 0102"),
		wbxml.T(wbxml.GALEmailAddress, "alice@example.com"),
	}, extra...)
}

func carolProps(extra ...*wbxml.Node) []*wbxml.Node {
	return append([]*wbxml.Node{
		wbxml.T(wbxml.GALDisplayName, "Carol Smithers"), wbxml.T(wbxml.GALFirstName, "Carol"),
		wbxml.T(wbxml.GALLastName, "Smithers"), wbxml.T(wbxml.GALEmailAddress, "carol@example.com"),
	}, extra...)
}

func bobProps(extra ...*wbxml.Node) []*wbxml.Node {
	return append([]*wbxml.Node{
		wbxml.T(wbxml.GALDisplayName, "bob"), wbxml.T(wbxml.GALEmailAddress, "bob@example.com"),
	}, extra...)
}

// galPic is an expected gal:Picture.
func galPic(status string, data []byte) *wbxml.Node {
	p := wbxml.E(wbxml.GALPicture, wbxml.T(wbxml.GALStatus, status))
	if data != nil {
		p.Append(wbxml.O(wbxml.GALData, data))
	}
	return p
}

func TestSearchGALQuery(t *testing.T) {
	for _, v := range []string{"12.1", "14.1"} {
		t.Run(v, func(t *testing.T) {
			ts := newGALServer(t)
			// A prefix of the last names: alice and carol, ordered by
			// display name; dave (disabled) and Erin Smythe are not listed.
			checkTree(t, "smi", ts.galStore(v, "smi"), galStoreResp("0-1", "2",
				galResult(aliceProps()...), galResult(carolProps()...)))
			for _, tc := range []struct {
				query string
				want  []string // display names
			}{
				{"ALICE", []string{"Alice Smith"}},            // case-insensitive
				{"  alice   SMITH ", []string{"Alice Smith"}}, // spaces collapsed
				{"al sm", []string{"Alice Smith"}},            // words
				{"sm car", []string{"Carol Smithers"}},        // words in any order
				{"asm", []string{"Alice Smith"}},              // alias
				{"bob@ex", []string{"bob"}},                   // email address
				{"erin@example.org", []string{"Erin Smythe"}}, // login with a domain
				{"s", []string{"Alice Smith", "Carol Smithers", "Erin Smythe"}},
				{"example", nil}, // not the domain
				{"mith", nil},    // prefixes only
				{"dave", nil},    // disabled
				{"Dave Smith", nil},
			} {
				var got []string
				for r := range ts.galStore(v, tc.query).Each(wbxml.SearchResult) {
					if n := r.Path(wbxml.SearchProperties, wbxml.GALDisplayName); n != nil {
						got = append(got, n.Text())
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("query %q (-want +got):\n%s", tc.query, diff)
				}
			}
			// No match: an empty Result and Total 0.
			checkTree(t, "no match", ts.galStore(v, "zz"), galStoreResp("", "0"))
			// Disabling a user hides them; enabling shows them again.
			if err := ts.st.SetDisabled(context.Background(), "carol", true); err != nil {
				t.Fatal(err)
			}
			checkTree(t, "carol disabled", ts.galStore(v, "smi"), galStoreResp("0-0", "1", galResult(aliceProps()...)))
		})
	}
}

func TestSearchGALPaging(t *testing.T) {
	for _, v := range []string{"12.1", "14.1"} {
		t.Run(v, func(t *testing.T) {
			ts := newTestServer(t, nil)
			for _, n := range []string{"pat3", "pat1", "pat5", "pat2", "pat4"} {
				ts.addUser(n, Profile{DisplayName: "Pat " + n[3:]}, false)
			}
			pat := func(i string) *wbxml.Node {
				return galResult(wbxml.T(wbxml.GALDisplayName, "Pat "+i), wbxml.T(wbxml.GALEmailAddress, "pat"+i+"@example.com"))
			}
			rng := func(r string) *wbxml.Node { return wbxml.T(wbxml.SearchRange, r) }
			checkTree(t, "0-1", ts.galStore(v, "pat", rng("0-1")), galStoreResp("0-1", "5", pat("1"), pat("2")))
			checkTree(t, "2-3", ts.galStore(v, "pat", rng("2-3")), galStoreResp("2-3", "5", pat("3"), pat("4")))
			checkTree(t, "4-9", ts.galStore(v, "pat", rng("4-9")), galStoreResp("4-4", "5", pat("5")))
			checkTree(t, "5-9", ts.galStore(v, "pat", rng("5-9")), galStoreResp("", "5"))
			checkTree(t, "default", ts.galStore(v, "pat"), galStoreResp("0-4", "5", pat("1"), pat("2"), pat("3"), pat("4"), pat("5")))
			// A range wider than 100 results is cut to 100 (MS-ASCMD
			// 2.2.3.143.3), as for the Mailbox.
			checkTree(t, "1-500", ts.galStore(v, "pat", rng("1-500")), galStoreResp("1-4", "5", pat("2"), pat("3"), pat("4"), pat("5")))
		})
	}
}

func TestSearchGALInvalid(t *testing.T) {
	ts := newGALServer(t)
	status := func(v string, st *wbxml.Node) string {
		t.Helper()
		return ts.searchStore(v, st).ChildText(wbxml.SearchStatus)
	}
	gal := func(query *wbxml.Node, opts ...*wbxml.Node) *wbxml.Node {
		st := wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchName, "GAL"))
		if query != nil {
			st.Append(query)
		}
		if len(opts) > 0 {
			st.Append(wbxml.E(wbxml.SearchOptions, opts...))
		}
		return st
	}
	q := wbxml.T(wbxml.SearchQuery, "smi")
	pic := func(children ...*wbxml.Node) *wbxml.Node { return wbxml.E(wbxml.SearchPicture, children...) }
	for _, tc := range []struct {
		name    string
		version string
		store   *wbxml.Node
		want    string
	}{
		{"no Query", "14.1", gal(nil), "2"},
		{"empty Query", "14.1", gal(wbxml.T(wbxml.SearchQuery, "  ")), "2"},
		{"Query of elements", "14.1", gal(wbxml.E(wbxml.SearchQuery, wbxml.E(wbxml.SearchAnd, wbxml.T(wbxml.SearchFreeText, "smi")))), "2"},
		{"overlong Query", "14.1", gal(wbxml.T(wbxml.SearchQuery, strings.Repeat("a", 257))), "2"},
		{"reversed Range", "12.1", gal(q, wbxml.T(wbxml.SearchRange, "3-1")), "2"},
		{"garbage Range", "14.1", gal(q, wbxml.T(wbxml.SearchRange, "first ten")), "2"},
		{"negative MaxSize", "14.1", gal(q, pic(wbxml.T(wbxml.SearchMaxSize, "-1"))), "2"},
		{"garbage MaxPictures", "14.1", gal(q, pic(wbxml.T(wbxml.SearchMaxPictures, "many"))), "2"},
		// Picture does not exist before 14.1: ignored.
		{"Picture at 12.1", "12.1", gal(q, pic(wbxml.T(wbxml.SearchMaxSize, "-1"))), "1"},
		// A one-letter query is valid: MS-ASCMD sets no minimum.
		{"one letter", "14.1", gal(wbxml.T(wbxml.SearchQuery, "a")), "1"},
	} {
		if got := status(tc.version, tc.store); got != tc.want {
			t.Errorf("%s: Store status %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestSearchGALPictures(t *testing.T) {
	ts := newGALServer(t)
	pic := func(children ...*wbxml.Node) *wbxml.Node { return wbxml.E(wbxml.SearchPicture, children...) }
	maxSize := func(n string) *wbxml.Node { return wbxml.T(wbxml.SearchMaxSize, n) }
	maxPics := func(n string) *wbxml.Node { return wbxml.T(wbxml.SearchMaxPictures, n) }

	// No limits: every entry with a photo gets it, the others 173.
	checkTree(t, "no limits", ts.galStore("14.1", "s", pic()), galStoreResp("0-2", "3",
		galResult(aliceProps(galPic("1", aliceJPEG))...),
		galResult(carolProps(galPic("1", carolJPEG))...),
		galResult(wbxml.T(wbxml.GALDisplayName, "Erin Smythe"), wbxml.T(wbxml.GALEmailAddress, "erin@example.org"), galPic("173", nil))))

	// MaxSize 1000: carol's 5000 bytes are too large (174).
	checkTree(t, "MaxSize", ts.galStore("14.1", "smi", pic(maxSize("1000"))), galStoreResp("0-1", "2",
		galResult(aliceProps(galPic("1", aliceJPEG))...),
		galResult(carolProps(galPic("174", nil))...)))

	// MaxPictures 1: alice gets hers, carol's would pass but the limit
	// is reached (175), erin has none (173).
	checkTree(t, "MaxPictures", ts.galStore("14.1", "s", pic(maxPics("1"))), galStoreResp("0-2", "3",
		galResult(aliceProps(galPic("1", aliceJPEG))...),
		galResult(carolProps(galPic("175", nil))...),
		galResult(wbxml.T(wbxml.GALDisplayName, "Erin Smythe"), wbxml.T(wbxml.GALEmailAddress, "erin@example.org"), galPic("173", nil))))
	checkTree(t, "MaxPictures 0, no photo", ts.galStore("14.1", "b", pic(maxPics("0"))), galStoreResp("0-0", "1",
		galResult(bobProps(galPic("173", nil))...)))
	checkTree(t, "MaxPictures 0", ts.galStore("14.1", "car", pic(maxPics("0"))), galStoreResp("0-0", "1",
		galResult(carolProps(galPic("175", nil))...)))
	checkTree(t, "limit reached", ts.galStore("14.1", "smi", pic(maxPics("1"))), galStoreResp("0-1", "2",
		galResult(aliceProps(galPic("1", aliceJPEG))...),
		galResult(carolProps(galPic("175", nil))...)))
	// After the limit a too-large photo is still 174.
	checkTree(t, "limit and size", ts.galStore("14.1", "smi", pic(maxPics("1"), maxSize("1000"))), galStoreResp("0-1", "2",
		galResult(aliceProps(galPic("1", aliceJPEG))...),
		galResult(carolProps(galPic("174", nil))...)))

	// A stored picture over MaxPictureBytes (written around Validate) is
	// too large whatever the client allows.
	ts.addUser("gus", Profile{DisplayName: "Gus Big", Picture: testJPEG(MaxPictureBytes + 1)}, false)
	checkTree(t, "oversized", ts.galStore("14.1", "gus", pic()), galStoreResp("0-0", "1",
		galResult(wbxml.T(wbxml.GALDisplayName, "Gus Big"), wbxml.T(wbxml.GALEmailAddress, "gus@example.com"), galPic("174", nil))))

	// Before 14.1 there are no pictures, asked for or not.
	checkTree(t, "14.0", ts.galStore("14.0", "smi", pic()), galStoreResp("0-1", "2",
		galResult(aliceProps()...), galResult(carolProps()...)))
	checkTree(t, "12.1", ts.galStore("12.1", "smi", pic()), galStoreResp("0-1", "2",
		galResult(aliceProps()...), galResult(carolProps()...)))
	// 14.1 without Picture in the request: none either.
	checkTree(t, "not asked", ts.galStore("14.1", "smi"), galStoreResp("0-1", "2",
		galResult(aliceProps()...), galResult(carolProps()...)))
}

func TestSearchGALBadProfile(t *testing.T) {
	ts := newGALServer(t)
	u, err := ts.st.User(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	// A record that does not decode is listed with the defaults.
	if err := ts.st.PutUserSetting(context.Background(), u.ID, ProfileSettingKey, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	checkTree(t, "bad profile", ts.galStore("14.1", "bob"), galStoreResp("0-0", "1", galResult(bobProps()...)))
	if !strings.Contains(ts.logs.String(), "stored profile does not decode") {
		t.Error("bad profile not logged")
	}
}

func TestGALCommandsAdvertised(t *testing.T) {
	ts := newTestServer(t, nil)
	r := ts.do(call{method: http.MethodOptions, version: "-"})
	cmds := strings.Split(r.header.Get("MS-ASProtocolCommands"), ",")
	for _, want := range []string{"ResolveRecipients", "Search"} {
		if !strings.Contains(","+strings.Join(cmds, ",")+",", ","+want+",") {
			t.Errorf("MS-ASProtocolCommands %q lacks %s", r.header.Get("MS-ASProtocolCommands"), want)
		}
	}
}

func TestProfileValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Profile
		want string // "" for valid
	}{
		{"empty", Profile{}, ""},
		{"full", aliceProfile, ""},
		{"email", Profile{EmailAddress: "a.smith@example.com"}, ""},
		{"email with a name", Profile{EmailAddress: "Alice <a@example.com>"}, "bare address"},
		{"not an email", Profile{EmailAddress: "alice"}, "bare address"},
		{"long field", Profile{Title: strings.Repeat("x", 257)}, "longer than 256"},
		{"control character", Profile{Office: "B\n12"}, "control characters"},
		{"bad UTF-8", Profile{Company: "\xff"}, "not UTF-8"},
		{"not a JPEG", Profile{Picture: []byte("GIF89a...")}, "not a JPEG"},
		{"picture too large", Profile{Picture: testJPEG(MaxPictureBytes + 1)}, "more than"},
		{"largest picture", Profile{Picture: testJPEG(MaxPictureBytes)}, ""},
	} {
		err := tc.p.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestGALClientE2E drives the address list as a phone does, with
// eas/client: it negotiates 14.1, provisions when asked, searches the GAL
// with pictures and resolves recipients.
func TestGALClientE2E(t *testing.T) {
	ts := newGALServer(t)
	ctx := t.Context()
	phone, err := client.New(client.Config{URL: ts.srv.URL, User: "bob", Password: "bob-pw", DeviceID: "GALPHONE1", DeviceType: "Android"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := phone.SearchGAL(ctx, client.GALQuery{Query: "smi", Range: "0-0", Picture: &client.PictureOptions{MaxSize: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	want := []client.GALEntry{{DisplayName: "Alice Smith", Phone: "+1 555 0100", Office: "B12", Title: "Engineer",
		Company: "Example Corp", Alias: "asmith", FirstName: "Alice", LastName: "Smith", HomePhone: "+1 555 0101",
		MobilePhone: "+1 555 0102", EmailAddress: "alice@example.com", Picture: &client.Picture{Status: 1, Data: aliceJPEG}}}
	if diff := cmp.Diff(want, res.Entries); diff != "" || res.Range != "0-0" || res.Total != 2 || phone.Version() != "14.1" {
		t.Errorf("SearchGAL: range %q total %d version %s, entries (-want +got):\n%s", res.Range, res.Total, phone.Version(), diff)
	}
	next, err := phone.SearchGAL(ctx, client.GALQuery{Query: "smi", Range: "1-1"})
	if err != nil || len(next.Entries) != 1 || next.Entries[0].DisplayName != "Carol Smithers" || next.Entries[0].Picture != nil {
		t.Errorf("second page: %+v, %v", next, err)
	}

	rr, err := phone.ResolveRecipients(ctx, []string{"Alice Smith <alice@example.com>", "smi", "nobody@example.org"},
		client.ResolveOptions{CertificateRetrieval: 2, AvailabilityStart: ts.clock.now, AvailabilityEnd: ts.clock.now.Add(time.Hour),
			Picture: &client.PictureOptions{MaxPictures: 1}})
	if err != nil {
		t.Fatal(err)
	}
	wantRR := []client.Resolution{
		{To: "Alice Smith <alice@example.com>", Status: 1, RecipientCount: 1, Recipients: []client.Recipient{{
			Type: 1, DisplayName: "Alice Smith", EmailAddress: "alice@example.com", AvailabilityStatus: 163,
			CertificatesStatus: 7, Picture: &client.Picture{Status: 1, Data: aliceJPEG}}}},
		{To: "smi", Status: 2, RecipientCount: 2, Recipients: []client.Recipient{
			{Type: 1, DisplayName: "Alice Smith", EmailAddress: "alice@example.com", Picture: &client.Picture{Status: 1, Data: aliceJPEG}},
			{Type: 1, DisplayName: "Carol Smithers", EmailAddress: "carol@example.com", Picture: &client.Picture{Status: 175}}}},
		{To: "nobody@example.org", Status: 4, RecipientCount: -1},
	}
	if diff := cmp.Diff(wantRR, rr.Responses); diff != "" {
		t.Errorf("ResolveRecipients (-want +got):\n%s", diff)
	}
}

// Without a mail backend Search serves the GAL only: a Mailbox search is
// Store status 2.
func TestSearchGALWithoutMail(t *testing.T) {
	ts := newGALServer(t)
	mailbox := wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchName, "Mailbox"),
		wbxml.E(wbxml.SearchQuery, wbxml.E(wbxml.SearchAnd, wbxml.T(wbxml.SearchFreeText, "x"))))
	checkTree(t, "Mailbox", ts.searchStore("14.1", mailbox), wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, "2")))
	checkTree(t, "GAL", ts.galStore("14.1", "erin"), galStoreResp("0-0", "1",
		galResult(wbxml.T(wbxml.GALDisplayName, "Erin Smythe"), wbxml.T(wbxml.GALEmailAddress, "erin@example.org"))))
	// A Search without Store is still invalid content (status 101).
	k := ts.provision(call{})
	r := ts.do(call{cmd: "Search", policyKey: &k, body: wbxml.E(wbxml.SearchSearch)})
	checkTree(t, "no Store", r.body, wbxml.E(wbxml.SearchSearch, wbxml.T(wbxml.SearchStatus, "101")))
}
