package eas

import (
	"strings"
	"testing"

	"github.com/easd/easd/wbxml"
)

// resolve sends ResolveRecipients as alice (provisioned) with the given
// children (To elements and Options) and returns the response.
func (ts *testServer) resolve(version string, children ...*wbxml.Node) *wbxml.Node {
	ts.t.Helper()
	k := ts.provision(call{version: version})
	r := ts.do(call{cmd: "ResolveRecipients", version: version, policyKey: &k,
		body: wbxml.E(wbxml.ResolveRecipientsResolveRecipients, children...)})
	if r.code != 200 || r.body == nil {
		ts.t.Fatalf("ResolveRecipients: HTTP %d %q", r.code, r.raw)
	}
	return r.body
}

func rrTo(s string) *wbxml.Node { return wbxml.T(wbxml.ResolveRecipientsTo, s) }

func rrOptions(children ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.ResolveRecipientsOptions, children...)
}

// rrResp is an expected ResolveRecipients with status 1 and responses.
func rrResp(responses ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.ResolveRecipientsResolveRecipients,
		append([]*wbxml.Node{wbxml.T(wbxml.ResolveRecipientsStatus, "1")}, responses...)...)
}

// rrResponse is an expected Response; count "" leaves RecipientCount out.
func rrResponse(to, status, count string, recipients ...*wbxml.Node) *wbxml.Node {
	r := wbxml.E(wbxml.ResolveRecipientsResponse, wbxml.T(wbxml.ResolveRecipientsTo, to), wbxml.T(wbxml.ResolveRecipientsStatus, status))
	if count != "" {
		r.Append(wbxml.T(wbxml.ResolveRecipientsRecipientCount, count))
	}
	return r.Append(recipients...)
}

// rrRecipient is an expected GAL Recipient (Type 1) with extra children.
func rrRecipient(name, addr string, extra ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.ResolveRecipientsRecipient, append([]*wbxml.Node{
		wbxml.T(wbxml.ResolveRecipientsType, "1"),
		wbxml.T(wbxml.ResolveRecipientsDisplayName, name),
		wbxml.T(wbxml.ResolveRecipientsEmailAddress, addr),
	}, extra...)...)
}

func rrStatusOnly(tag wbxml.Tag, status string) *wbxml.Node {
	return wbxml.E(tag, wbxml.T(wbxml.ResolveRecipientsStatus, status))
}

func rrPic(status string, data []byte) *wbxml.Node {
	p := rrStatusOnly(wbxml.ResolveRecipientsPicture, status)
	if data != nil {
		p.Append(wbxml.O(wbxml.ResolveRecipientsData, data))
	}
	return p
}

var (
	rrAlice = func(extra ...*wbxml.Node) *wbxml.Node {
		return rrRecipient("Alice Smith", "alice@example.com", extra...)
	}
	rrCarol = func(extra ...*wbxml.Node) *wbxml.Node {
		return rrRecipient("Carol Smithers", "carol@example.com", extra...)
	}
	rrBob = func(extra ...*wbxml.Node) *wbxml.Node { return rrRecipient("bob", "bob@example.com", extra...) }
)

func TestResolveRecipients(t *testing.T) {
	for _, v := range []string{"12.1", "14.1"} {
		t.Run(v, func(t *testing.T) {
			ts := newGALServer(t)
			got := ts.resolve(v,
				rrTo("alice@example.com"),               // exact address
				rrTo("Alice Smith <ALICE@Example.com>"), // address with a name, any case
				rrTo("carol smithers"),                  // exact display name
				rrTo("asmith"),                          // exact alias
				rrTo("bob"),                             // exact login
				rrTo("smi"),                             // two matches: ambiguous
				rrTo("erin"),                            // one prefix match
				rrTo("nobody@example.org"),              // unknown
				rrTo("dave@example.com"),                // disabled
				rrTo("Dave Smith"))
			checkTree(t, "response", got, rrResp(
				rrResponse("alice@example.com", "1", "1", rrAlice()),
				rrResponse("Alice Smith <ALICE@Example.com>", "1", "1", rrAlice()),
				rrResponse("carol smithers", "1", "1", rrCarol()),
				rrResponse("asmith", "1", "1", rrAlice()),
				rrResponse("bob", "1", "1", rrBob()),
				rrResponse("smi", "2", "2", rrAlice(), rrCarol()),
				rrResponse("erin", "1", "1", rrRecipient("Erin Smythe", "erin@example.org")),
				rrResponse("nobody@example.org", "4", ""),
				rrResponse("dave@example.com", "4", ""),
				rrResponse("Dave Smith", "4", "")))

			// MaxAmbiguousRecipients 1: a partial list (3) with the total.
			got = ts.resolve(v, rrTo("smi"), rrTo("s"),
				rrOptions(wbxml.T(wbxml.ResolveRecipientsMaxAmbiguousRecipients, "1")))
			checkTree(t, "MaxAmbiguousRecipients 1", got, rrResp(
				rrResponse("smi", "3", "2", rrAlice()),
				rrResponse("s", "3", "3", rrAlice())))
			got = ts.resolve(v, rrTo("smi"), rrTo("alice@example.com"),
				rrOptions(wbxml.T(wbxml.ResolveRecipientsMaxAmbiguousRecipients, "0")))
			checkTree(t, "MaxAmbiguousRecipients 0", got, rrResp(
				rrResponse("smi", "3", "2"),
				rrResponse("alice@example.com", "1", "1", rrAlice())))
		})
	}
}

func TestResolveRecipientsCertificatesAndAvailability(t *testing.T) {
	ts := newGALServer(t)
	certs := func(mode string) *wbxml.Node { return wbxml.T(wbxml.ResolveRecipientsCertificateRetrieval, mode) }
	avail := wbxml.E(wbxml.ResolveRecipientsAvailability,
		wbxml.T(wbxml.ResolveRecipientsStartTime, "2026-11-25T08:00:00.000Z"),
		wbxml.T(wbxml.ResolveRecipientsEndTime, "2026-11-26T08:00:00.000Z"))
	noCert := wbxml.E(wbxml.ResolveRecipientsCertificates,
		wbxml.T(wbxml.ResolveRecipientsStatus, "7"), wbxml.T(wbxml.ResolveRecipientsCertificateCount, "0"))
	noFreeBusy := rrStatusOnly(wbxml.ResolveRecipientsAvailability, "163")

	// Full or mini certificates: none (7) for a resolved recipient; an
	// ambiguous one carries no Certificates (MS-ASCMD 2.2.3.177.12).
	for _, mode := range []string{"2", "3"} {
		for _, v := range []string{"12.1", "14.1"} {
			got := ts.resolve(v, rrTo("alice@example.com"), rrTo("smi"), rrTo("zz"), rrOptions(certs(mode)))
			checkTree(t, "certificates "+mode+" at "+v, got, rrResp(
				rrResponse("alice@example.com", "1", "1", rrAlice(noCert)),
				rrResponse("smi", "2", "2", rrAlice(), rrCarol()),
				rrResponse("zz", "4", "")))
		}
	}
	// CertificateRetrieval 1: do not retrieve.
	checkTree(t, "certificates 1", ts.resolve("14.1", rrTo("bob"), rrOptions(certs("1"),
		wbxml.T(wbxml.ResolveRecipientsMaxCertificates, "10"))), rrResp(rrResponse("bob", "1", "1", rrBob())))

	// Availability (14.0+): free/busy is not available (163), for
	// resolved recipients only; with certificates, in schema order.
	got := ts.resolve("14.1", rrTo("bob@example.com"), rrTo("smi"), rrOptions(avail, certs("2")))
	checkTree(t, "availability", got, rrResp(
		rrResponse("bob@example.com", "1", "1", rrBob(noFreeBusy, noCert)),
		rrResponse("smi", "2", "2", rrAlice(), rrCarol())))
	// At 12.1 Availability does not exist: ignored.
	checkTree(t, "availability at 12.1", ts.resolve("12.1", rrTo("bob"), rrOptions(avail)),
		rrResp(rrResponse("bob", "1", "1", rrBob())))
	// Without EndTime (optional in the schema) it is answered the same.
	checkTree(t, "no EndTime", ts.resolve("14.0", rrTo("bob"), rrOptions(wbxml.E(wbxml.ResolveRecipientsAvailability,
		wbxml.T(wbxml.ResolveRecipientsStartTime, "2026-11-25T08:00:00.000Z")))),
		rrResp(rrResponse("bob", "1", "1", rrBob(noFreeBusy))))

	// More than 100 addresses with Availability: 160.
	var many []*wbxml.Node
	for range 100 {
		many = append(many, rrTo("nobody@example.org"))
	}
	got = ts.resolve("14.1", append(many, rrTo("bob@example.com"), rrOptions(avail))...)
	last := got.Children[len(got.Children)-1]
	checkTree(t, "101 addresses", last, rrResponse("bob@example.com", "1", "1", rrBob(rrStatusOnly(wbxml.ResolveRecipientsAvailability, "160"))))
}

func TestResolveRecipientsPictures(t *testing.T) {
	ts := newGALServer(t)
	pic := func(children ...*wbxml.Node) *wbxml.Node {
		return rrOptions(wbxml.E(wbxml.ResolveRecipientsPicture, children...))
	}
	got := ts.resolve("14.1", rrTo("alice@example.com"), rrTo("bob"), rrTo("smi"), pic())
	checkTree(t, "no limits", got, rrResp(
		rrResponse("alice@example.com", "1", "1", rrAlice(rrPic("1", aliceJPEG))),
		rrResponse("bob", "1", "1", rrBob(rrPic("173", nil))),
		rrResponse("smi", "2", "2", rrAlice(rrPic("1", aliceJPEG)), rrCarol(rrPic("1", carolJPEG)))))

	// MaxPictures counts per To (MS-ASCMD 2.2.3.104.2); MaxSize in bytes.
	got = ts.resolve("14.1", rrTo("alice"), rrTo("smi"), pic(wbxml.T(wbxml.ResolveRecipientsMaxPictures, "1")))
	checkTree(t, "MaxPictures 1", got, rrResp(
		rrResponse("alice", "1", "1", rrAlice(rrPic("1", aliceJPEG))),
		rrResponse("smi", "2", "2", rrAlice(rrPic("1", aliceJPEG)), rrCarol(rrPic("175", nil)))))
	got = ts.resolve("14.1", rrTo("smi"), pic(wbxml.T(wbxml.ResolveRecipientsMaxSize, "1000")))
	checkTree(t, "MaxSize 1000", got, rrResp(
		rrResponse("smi", "2", "2", rrAlice(rrPic("1", aliceJPEG)), rrCarol(rrPic("174", nil)))))

	// Before 14.1: no pictures.
	for _, v := range []string{"12.1", "14.0"} {
		checkTree(t, "pictures at "+v, ts.resolve(v, rrTo("alice"), pic()), rrResp(rrResponse("alice", "1", "1", rrAlice())))
	}
}

func TestResolveRecipientsInvalid(t *testing.T) {
	ts := newGALServer(t)
	var tooMany []*wbxml.Node
	for range resolveMaxTo + 1 {
		tooMany = append(tooMany, rrTo("bob"))
	}
	for _, tc := range []struct {
		name     string
		version  string
		children []*wbxml.Node
	}{
		{"no To", "14.1", nil},
		{"only Options", "14.1", []*wbxml.Node{rrOptions()}},
		{"empty To", "14.1", []*wbxml.Node{rrTo(" ")}},
		{"To over 256", "12.1", []*wbxml.Node{rrTo(strings.Repeat("a", 257))}},
		{"too many To", "14.1", tooMany},
		{"CertificateRetrieval 4", "14.1", []*wbxml.Node{rrTo("bob"), rrOptions(wbxml.T(wbxml.ResolveRecipientsCertificateRetrieval, "4"))}},
		{"MaxCertificates 10000", "12.1", []*wbxml.Node{rrTo("bob"), rrOptions(wbxml.T(wbxml.ResolveRecipientsMaxCertificates, "10000"))}},
		{"MaxAmbiguousRecipients -1", "14.1", []*wbxml.Node{rrTo("bob"), rrOptions(wbxml.T(wbxml.ResolveRecipientsMaxAmbiguousRecipients, "-1"))}},
		{"Availability without StartTime", "14.1", []*wbxml.Node{rrTo("bob"), rrOptions(wbxml.E(wbxml.ResolveRecipientsAvailability))}},
		{"EndTime before StartTime", "14.1", []*wbxml.Node{rrTo("bob"), rrOptions(wbxml.E(wbxml.ResolveRecipientsAvailability,
			wbxml.T(wbxml.ResolveRecipientsStartTime, "2026-11-26T08:00:00.000Z"),
			wbxml.T(wbxml.ResolveRecipientsEndTime, "2026-11-25T08:00:00.000Z")))}},
		{"MaxSize garbage", "14.1", []*wbxml.Node{rrTo("bob"), rrOptions(wbxml.E(wbxml.ResolveRecipientsPicture,
			wbxml.T(wbxml.ResolveRecipientsMaxSize, "big")))}},
	} {
		checkTree(t, tc.name, ts.resolve(tc.version, tc.children...),
			rrStatusOnly(wbxml.ResolveRecipientsResolveRecipients, "5"))
	}
	// An empty body too (status 5 in the body, also at 12.1: the command
	// has its own Status).
	for _, v := range []string{"12.1", "14.1"} {
		k := ts.provision(call{version: v})
		r := ts.do(call{cmd: "ResolveRecipients", version: v, policyKey: &k})
		checkTree(t, "empty body "+v, r.body, rrStatusOnly(wbxml.ResolveRecipientsResolveRecipients, "5"))
	}
}
