package client

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/wbxml"
)

// MailboxQuery is a Search of the mailbox store (MS-ASCMD 2.2.1.16, Store
// Name "Mailbox"): Query > And > (airsync:Class, airsync:CollectionId,
// FreeText, GreaterThan/LessThan > email:DateReceived + Value), then
// Options.
type MailboxQuery struct {
	// FreeText is the text searched for; "" leaves it out.
	FreeText string
	// CollectionID restricts the search to a folder; "" searches the
	// whole mailbox.
	CollectionID string
	// Class is the airsync:Class searched ("Email"); "" leaves it out.
	Class string
	// After and Before bound email:DateReceived (GreaterThan and
	// LessThan); zero leaves a bound out.
	After, Before time.Time
	// Range is the zero-based inclusive range of results wanted, "0-9";
	// "" leaves it to the server (0-99).
	Range string
	// DeepTraversal searches the subfolders of CollectionID too.
	DeepTraversal bool
	// RebuildResults asks the server not to use cached results.
	RebuildResults bool
	// BodyPreferences and MIMESupport are as in SyncOptions.
	BodyPreferences []BodyPreference
	MIMESupport     int
}

// SearchResult is the Store of a Search response.
type SearchResult struct {
	// Status is the Store's status: 1 success, 2 invalid request, 3
	// server error, 8 query too complex, 10 timed out, 11 FolderSync
	// required … (MS-ASCMD 2.2.3.177.13).
	Status int
	// Results are the matches returned, in the server's order.
	Results []SearchHit
	// Range is the range of the results returned ("" when none).
	Range string
	// Total is the number of matches (-1 if the server sent none).
	Total int
	// Raw is the Search element of the response.
	Raw *wbxml.Node
}

// SearchHit is one Result of a Search.
type SearchHit struct {
	// Class is airsync:Class ("Email").
	Class string
	// LongID is search:LongId, which ItemOperations Fetch takes to fetch
	// the item.
	LongID string
	// CollectionID is the folder holding the item.
	CollectionID string
	// Properties holds the item's fields (email:Subject, airsyncbase:Body
	// …).
	Properties *wbxml.Node
}

// searchDate formats a Search Value date (MS-ASDTYPE dateTime).
func searchDate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// SearchMailbox runs a Search of the mailbox. A failing top-level Status
// is a *StatusError; a Store status other than 1 is a *StatusError
// (Element "Store") returned with the result.
func (c *Client) SearchMailbox(ctx context.Context, q MailboxQuery) (*SearchResult, error) {
	and := wbxml.E(wbxml.SearchAnd)
	if q.Class != "" {
		and.Append(wbxml.T(wbxml.AirSyncClass, q.Class))
	}
	if q.CollectionID != "" {
		and.Append(wbxml.T(wbxml.AirSyncCollectionId, q.CollectionID))
	}
	if q.FreeText != "" {
		and.Append(wbxml.T(wbxml.SearchFreeText, q.FreeText))
	}
	if !q.After.IsZero() {
		and.Append(wbxml.E(wbxml.SearchGreaterThan, wbxml.E(wbxml.EmailDateReceived), wbxml.T(wbxml.SearchValue, searchDate(q.After))))
	}
	if !q.Before.IsZero() {
		and.Append(wbxml.E(wbxml.SearchLessThan, wbxml.E(wbxml.EmailDateReceived), wbxml.T(wbxml.SearchValue, searchDate(q.Before))))
	}
	store := wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchName, "Mailbox"), wbxml.E(wbxml.SearchQuery, and))
	opts := wbxml.E(wbxml.SearchOptions)
	if q.Range != "" {
		opts.Append(wbxml.T(wbxml.SearchRange, q.Range))
	}
	if q.DeepTraversal {
		opts.Append(wbxml.E(wbxml.SearchDeepTraversal))
	}
	if q.RebuildResults {
		opts.Append(wbxml.E(wbxml.SearchRebuildResults))
	}
	for _, p := range q.BodyPreferences {
		opts.Append(p.node())
	}
	if q.MIMESupport > 0 {
		opts.Append(wbxml.T(wbxml.AirSyncMIMESupport, strconv.Itoa(q.MIMESupport)))
	}
	if len(opts.Children) > 0 {
		store.Append(opts)
	}
	resp, err := c.Do(ctx, "Search", wbxml.E(wbxml.SearchSearch, store))
	if err != nil {
		return nil, err
	}
	if resp.Body == nil {
		return nil, errors.New("client: Search: empty response")
	}
	return searchResult(resp.Body)
}

// searchResult parses Response > Store of a Search response.
func searchResult(body *wbxml.Node) (*SearchResult, error) {
	st := body.Path(wbxml.SearchResponse, wbxml.SearchStore)
	if st == nil {
		return nil, errors.New("client: Search: no Store in the response")
	}
	r := &SearchResult{Status: atoi(strings.TrimSpace(st.ChildText(wbxml.SearchStatus))), Total: -1,
		Range: st.ChildText(wbxml.SearchRange), Raw: body}
	if t := st.Child(wbxml.SearchTotal); t != nil {
		if v, err := strconv.Atoi(strings.TrimSpace(t.Text())); err == nil {
			r.Total = v
		}
	}
	for n := range st.Each(wbxml.SearchResult) {
		if len(n.Children) == 0 {
			continue // the empty Result of no matches
		}
		r.Results = append(r.Results, SearchHit{
			Class:        n.ChildText(wbxml.AirSyncClass),
			LongID:       n.ChildText(wbxml.SearchLongId),
			CollectionID: n.ChildText(wbxml.AirSyncCollectionId),
			Properties:   n.Child(wbxml.SearchProperties),
		})
	}
	if r.Status != 1 {
		return r, &StatusError{Command: "Search", Element: "Store", Status: r.Status}
	}
	return r, nil
}
