package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

func TestSearchGAL(t *testing.T) {
	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		store := []*wbxml.Node{
			wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, "1"),
				wbxml.E(wbxml.SearchResult, wbxml.E(wbxml.SearchProperties,
					wbxml.T(wbxml.GALDisplayName, "Alice Smith"), wbxml.T(wbxml.GALPhone, "+1 555 0100"),
					wbxml.T(wbxml.GALOffice, "B12"), wbxml.T(wbxml.GALTitle, "Engineer"),
					wbxml.T(wbxml.GALCompany, "Example Corp"), wbxml.T(wbxml.GALAlias, "asmith"),
					wbxml.T(wbxml.GALFirstName, "Alice"), wbxml.T(wbxml.GALLastName, "Smith"),
					wbxml.T(wbxml.GALHomePhone, "+1 555 0101"), wbxml.T(wbxml.GALMobilePhone, "+1 555 0102"),
					wbxml.T(wbxml.GALEmailAddress, "alice@example.com"),
					wbxml.E(wbxml.GALPicture, wbxml.T(wbxml.GALStatus, "1"), wbxml.O(wbxml.GALData, jpeg)))),
				wbxml.E(wbxml.SearchResult, wbxml.E(wbxml.SearchProperties,
					wbxml.T(wbxml.GALDisplayName, "bob"), wbxml.T(wbxml.GALEmailAddress, "bob@example.com"),
					wbxml.E(wbxml.GALPicture, wbxml.T(wbxml.GALStatus, "173")))),
				wbxml.T(wbxml.SearchRange, "0-1"), wbxml.T(wbxml.SearchTotal, "7")),
			wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, "1"), wbxml.E(wbxml.SearchResult), wbxml.T(wbxml.SearchTotal, "0")),
			wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, "2")),
		}[n]
		writeWBXML(t, w, wbxml.E(wbxml.SearchSearch, wbxml.T(wbxml.SearchStatus, "1"), wbxml.E(wbxml.SearchResponse, store)))
	})
	ctx := context.Background()
	res, err := c.SearchGAL(ctx, client.GALQuery{Query: "a", Range: "0-1", Picture: &client.PictureOptions{MaxSize: 4096, MaxPictures: 3}})
	if err != nil {
		t.Fatal(err)
	}
	want := []client.GALEntry{
		{DisplayName: "Alice Smith", Phone: "+1 555 0100", Office: "B12", Title: "Engineer", Company: "Example Corp",
			Alias: "asmith", FirstName: "Alice", LastName: "Smith", HomePhone: "+1 555 0101", MobilePhone: "+1 555 0102",
			EmailAddress: "alice@example.com", Picture: &client.Picture{Status: 1, Data: jpeg}},
		{DisplayName: "bob", EmailAddress: "bob@example.com", Picture: &client.Picture{Status: 173}},
	}
	if diff := cmp.Diff(want, res.Entries); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if res.Status != 1 || res.Range != "0-1" || res.Total != 7 || res.Raw == nil {
		t.Errorf("result %+v", res)
	}
	res, err = c.SearchGAL(ctx, client.GALQuery{Query: "zz"})
	if err != nil || len(res.Entries) != 0 || res.Total != 0 {
		t.Errorf("no matches: %+v, %v", res, err)
	}
	var se *client.StatusError
	res, err = c.SearchGAL(ctx, client.GALQuery{Query: ""})
	if !errors.As(err, &se) || se.Status != 2 || se.Element != "Store" || res == nil || res.Status != 2 {
		t.Errorf("store status 2: %+v, %v", res, err)
	}

	reqs := cs.requests()
	wantReqs := []string{
		xmlOf(wbxml.E(wbxml.SearchSearch, wbxml.E(wbxml.SearchStore,
			wbxml.T(wbxml.SearchName, "GAL"), wbxml.T(wbxml.SearchQuery, "a"),
			wbxml.E(wbxml.SearchOptions, wbxml.T(wbxml.SearchRange, "0-1"),
				wbxml.E(wbxml.SearchPicture, wbxml.T(wbxml.SearchMaxSize, "4096"), wbxml.T(wbxml.SearchMaxPictures, "3")))))),
		xmlOf(wbxml.E(wbxml.SearchSearch, wbxml.E(wbxml.SearchStore,
			wbxml.T(wbxml.SearchName, "GAL"), wbxml.T(wbxml.SearchQuery, "zz")))),
	}
	if diff := cmp.Diff(wantReqs, []string{reqs[0].Body, reqs[1].Body}); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestResolveRecipientsClient(t *testing.T) {
	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 9}
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		if n == 1 {
			writeWBXML(t, w, wbxml.E(wbxml.ResolveRecipientsResolveRecipients, wbxml.T(wbxml.ResolveRecipientsStatus, "5")))
			return
		}
		writeWBXML(t, w, wbxml.E(wbxml.ResolveRecipientsResolveRecipients,
			wbxml.T(wbxml.ResolveRecipientsStatus, "1"),
			wbxml.E(wbxml.ResolveRecipientsResponse,
				wbxml.T(wbxml.ResolveRecipientsTo, "alice@example.com"),
				wbxml.T(wbxml.ResolveRecipientsStatus, "1"),
				wbxml.T(wbxml.ResolveRecipientsRecipientCount, "1"),
				wbxml.E(wbxml.ResolveRecipientsRecipient,
					wbxml.T(wbxml.ResolveRecipientsType, "1"),
					wbxml.T(wbxml.ResolveRecipientsDisplayName, "Alice Smith"),
					wbxml.T(wbxml.ResolveRecipientsEmailAddress, "alice@example.com"),
					wbxml.E(wbxml.ResolveRecipientsAvailability, wbxml.T(wbxml.ResolveRecipientsStatus, "163")),
					wbxml.E(wbxml.ResolveRecipientsCertificates, wbxml.T(wbxml.ResolveRecipientsStatus, "7"),
						wbxml.T(wbxml.ResolveRecipientsCertificateCount, "0")),
					wbxml.E(wbxml.ResolveRecipientsPicture, wbxml.T(wbxml.ResolveRecipientsStatus, "1"),
						wbxml.O(wbxml.ResolveRecipientsData, jpeg)))),
			wbxml.E(wbxml.ResolveRecipientsResponse,
				wbxml.T(wbxml.ResolveRecipientsTo, "nobody"),
				wbxml.T(wbxml.ResolveRecipientsStatus, "4"))))
	})
	ctx := context.Background()
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	res, err := c.ResolveRecipients(ctx, []string{"alice@example.com", "nobody"}, client.ResolveOptions{
		CertificateRetrieval: 2, MaxCertificates: 5, MaxAmbiguousRecipients: 10,
		AvailabilityStart: start, AvailabilityEnd: start.Add(24 * time.Hour),
		Picture: &client.PictureOptions{MaxPictures: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []client.Resolution{
		{To: "alice@example.com", Status: 1, RecipientCount: 1, Recipients: []client.Recipient{{
			Type: 1, DisplayName: "Alice Smith", EmailAddress: "alice@example.com",
			AvailabilityStatus: 163, CertificatesStatus: 7, Picture: &client.Picture{Status: 1, Data: jpeg},
		}}},
		{To: "nobody", Status: 4, RecipientCount: -1},
	}
	if diff := cmp.Diff(want, res.Responses); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
	if res.Status != 1 || res.Raw == nil {
		t.Errorf("result %+v", res)
	}

	var se *client.StatusError
	res, err = c.ResolveRecipients(ctx, nil, client.ResolveOptions{})
	if !errors.As(err, &se) || se.Status != 5 || res == nil || res.Status != 5 {
		t.Errorf("status 5: %+v, %v", res, err)
	}

	reqs := cs.requests()
	wantReqs := []string{
		xmlOf(wbxml.E(wbxml.ResolveRecipientsResolveRecipients,
			wbxml.T(wbxml.ResolveRecipientsTo, "alice@example.com"),
			wbxml.T(wbxml.ResolveRecipientsTo, "nobody"),
			wbxml.E(wbxml.ResolveRecipientsOptions,
				wbxml.T(wbxml.ResolveRecipientsCertificateRetrieval, "2"),
				wbxml.T(wbxml.ResolveRecipientsMaxCertificates, "5"),
				wbxml.T(wbxml.ResolveRecipientsMaxAmbiguousRecipients, "10"),
				wbxml.E(wbxml.ResolveRecipientsAvailability,
					wbxml.T(wbxml.ResolveRecipientsStartTime, "2026-11-25T08:00:00.000Z"),
					wbxml.T(wbxml.ResolveRecipientsEndTime, "2026-11-26T08:00:00.000Z")),
				wbxml.E(wbxml.ResolveRecipientsPicture, wbxml.T(wbxml.ResolveRecipientsMaxPictures, "1"))))),
		xmlOf(wbxml.E(wbxml.ResolveRecipientsResolveRecipients)),
	}
	if diff := cmp.Diff(wantReqs, []string{reqs[0].Body, reqs[1].Body}); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
