package eas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/wbxml"
)

// Search status values, MS-ASCMD 2.2.3.177.13: the top-level Status
// (Search > Status) is 1 or 3; the rest are Store > Status.
const (
	searchOK            = 1
	searchInvalid       = 2  // one or more of the search parameters is invalid
	searchServerError   = 3  // server error
	searchTooComplex    = 8  // the query is too complex (or uses what is not supported)
	searchTimedOut      = 10 // the search timed out
	searchFolderSyncReq = 11 // the folder hierarchy is out of date: FolderSync
)

// Search bounds.
const (
	// searchMaxRange is the most results one response carries: Range
	// "a-b" with b-a < 100 (MS-ASCMD 2.2.3.143.3); a wider range is cut.
	searchMaxRange = 100
	// searchMaxMatches bounds the matches a search considers (and so
	// Total): folders are searched in turn until this many matched.
	searchMaxMatches = 1000
	// searchMaxFolders bounds the folders one search visits.
	searchMaxFolders = 200
	// searchTimeout bounds the IMAP searches of one request; past it the
	// store answers status 10.
	searchTimeout = 60 * time.Second
)

// mailboxQuery is a parsed Search of the Mailbox store.
type mailboxQuery struct {
	colls      []string // airsync:CollectionId; none: every folder
	deep       bool     // DeepTraversal: subfolders too
	q          SearchQuery
	noMatch    bool // a Class other than Email: nothing can match
	start, end int  // Range, inclusive
	opts       email.Options
}

// search runs Search, MS-ASCMD 2.2.1.16. The Mailbox store is searched
// over IMAP (MailSearcher); the GAL store is the users of this server
// (searchGAL, gal.go); a
// DocumentLibrary search or an unknown store is status 2 (invalid
// request): neither is served.
//
// A result's LongId is the message's ServerId ("folderId:uid", as Sync
// gives it), which ItemOperations Fetch accepts as search:LongId.
func (h *Handler) search(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	st := body.Child(wbxml.SearchStore)
	if st == nil {
		return nil, Errorf(StatusInvalidContent, "Search without Store")
	}
	var store *wbxml.Node
	switch name := strings.TrimSpace(st.ChildText(wbxml.SearchName)); {
	case strings.EqualFold(name, "Mailbox"):
		var err error
		if store, err = h.searchMailbox(ctx, s, st); err != nil {
			return nil, err
		}
	case strings.EqualFold(name, "GAL"):
		// The users of this server (gal.go).
		var err error
		if store, err = h.searchGAL(ctx, s, st); err != nil {
			return nil, err
		}
	default:
		store = storeStatus(searchInvalid)
	}
	top := searchOK
	if store.ChildText(wbxml.SearchStatus) == strconv.Itoa(searchServerError) {
		top = searchServerError
	}
	return wbxml.E(wbxml.SearchSearch, wbxml.T(wbxml.SearchStatus, strconv.Itoa(top)),
		wbxml.E(wbxml.SearchResponse, store)), nil
}

// storeStatus is a Response > Store with its Status.
func storeStatus(status int) *wbxml.Node {
	return wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, strconv.Itoa(status)))
}

// searchMailbox answers a Store of name Mailbox.
func (h *Handler) searchMailbox(ctx context.Context, s *Session, st *wbxml.Node) (*wbxml.Node, error) {
	mq, status := parseMailboxQuery(st, s.Req.Version)
	if status != searchOK {
		s.Log.Info("Search refused", "status", status)
		return storeStatus(status), nil
	}
	searcher, ok := h.deps.Mail.(MailSearcher)
	if !ok {
		return storeStatus(searchServerError), nil
	}
	hr, err := h.knownHierarchy(ctx, s, mq.colls...)
	if err != nil {
		return nil, err
	}
	var targets []*folderView
	explicit := map[string]bool{} // folders the query names
	if len(mq.colls) == 0 {
		for i := range hr.views {
			targets = append(targets, &hr.views[i])
		}
	} else {
		seen := map[string]bool{}
		for _, id := range mq.colls {
			explicit[id] = true
			f := hr.byID[id]
			if f == nil {
				return storeStatus(searchFolderSyncReq), nil
			}
			if !seen[id] {
				seen[id] = true
				targets = append(targets, f)
			}
			if mq.deep {
				for _, sub := range subfolders(hr, f) {
					if !seen[sub.ID] {
						seen[sub.ID] = true
						targets = append(targets, sub)
					}
				}
			}
		}
	}
	type match struct {
		f   *folderView
		uid uint32
	}
	var matches []match
	sctx, cancel := context.WithTimeout(ctx, searchTimeout)
	defer cancel()
	visited := 0
	for _, f := range targets {
		if mq.noMatch || len(matches) >= searchMaxMatches || visited >= searchMaxFolders {
			break
		}
		if f.name == "" || f.noSelect {
			continue
		}
		visited++
		uids, err := searcher.Search(sctx, s.Account, f.name, mq.q)
		if err != nil {
			switch {
			case errors.Is(err, ErrMailFolderGone):
				if explicit[f.ID] {
					return storeStatus(searchFolderSyncReq), nil
				}
				continue // vanished since the last FolderSync: skip it
			case ctx.Err() == nil && sctx.Err() != nil:
				s.Log.Warn("Search timed out", "folders", visited, "err", err)
				return storeStatus(searchTimedOut), nil
			case errors.Is(err, ErrBadCredentials), ctx.Err() != nil:
				return nil, mailError(err)
			}
			s.Log.Warn("Search failed upstream", "folder", f.name, "err", err)
			return storeStatus(searchServerError), nil
		}
		for _, u := range uids {
			if len(matches) == searchMaxMatches {
				break
			}
			matches = append(matches, match{f, u})
		}
	}
	total := len(matches)
	resp := storeStatus(searchOK)
	if mq.start >= total {
		return resp.Append(wbxml.E(wbxml.SearchResult), wbxml.T(wbxml.SearchTotal, strconv.Itoa(total))), nil
	}
	page := matches[mq.start:min(mq.end+1, total)]
	// Fetch the page, folder by folder, and keep the order of page.
	type key struct {
		f   string
		uid uint32
	}
	props := make(map[key]*wbxml.Node, len(page))
	byFolder := map[*folderView][]uint32{}
	var order []*folderView
	for _, m := range page {
		if byFolder[m.f] == nil {
			order = append(order, m.f)
		}
		byFolder[m.f] = append(byFolder[m.f], m.uid)
	}
	for _, f := range order {
		err := h.deps.Mail.Fetch(ctx, s.Account, f.name, byFolder[f], func(mm MailMeta, body io.Reader) error {
			app, err := h.convertNode(ctx, s, f, mm, body, mq.opts)
			if err != nil {
				return err
			}
			props[key{f.ID, mm.UID}] = app
			return nil
		})
		if err != nil {
			switch {
			case errors.Is(err, ErrMailFolderGone):
				continue // its matches are gone
			case errors.Is(err, ErrBadCredentials), ctx.Err() != nil:
				return nil, mailError(err)
			}
			s.Log.Warn("Search fetch failed", "folder", f.name, "err", err)
			return storeStatus(searchServerError), nil
		}
	}
	n := 0
	for _, m := range page {
		app := props[key{m.f.ID, m.uid}]
		if app == nil {
			continue // expunged since the search
		}
		resp.Append(wbxml.E(wbxml.SearchResult,
			wbxml.T(wbxml.AirSyncClass, "Email"),
			wbxml.T(wbxml.SearchLongId, serverID(m.f.ID, m.uid)),
			wbxml.T(wbxml.AirSyncCollectionId, m.f.ID),
			wbxml.E(wbxml.SearchProperties, app.Children...)))
		n++
	}
	if n == 0 {
		resp.Append(wbxml.E(wbxml.SearchResult))
	} else {
		resp.Append(wbxml.T(wbxml.SearchRange, fmt.Sprintf("%d-%d", mq.start, mq.start+n-1)))
	}
	return resp.Append(wbxml.T(wbxml.SearchTotal, strconv.Itoa(total))), nil
}

// subfolders returns the folders below f, at any depth, in hierarchy
// order.
func subfolders(hr *hierarchy, f *folderView) []*folderView {
	below := map[string]bool{f.ID: true}
	var out []*folderView
	// Parents come before children in the listing, so one pass finds
	// every descendant.
	for i := range hr.views {
		v := &hr.views[i]
		if v.ID != f.ID && below[v.ParentID] {
			below[v.ID] = true
			out = append(out, v)
		}
	}
	return out
}

// parseMailboxQuery reads Store > Query and Options of a Mailbox search
// (MS-ASCMD 2.2.3.139.2, 2.2.3.125.3): Query > And (or the Query itself)
// with airsync:Class, airsync:CollectionId, FreeText, GreaterThan and
// LessThan of email:DateReceived; Options with Range, DeepTraversal,
// RebuildResults (every search is fresh), BodyPreference and MIMESupport.
// The status is searchOK, searchInvalid for a missing or malformed part,
// or searchTooComplex for what easd does not search (Or, EqualTo,
// ConversationId, other properties).
func parseMailboxQuery(st *wbxml.Node, version string) (*mailboxQuery, int) {
	mq := &mailboxQuery{end: searchMaxRange - 1, opts: email.Options{Version: version}}
	query := st.Child(wbxml.SearchQuery)
	if query == nil || len(query.Children) == 0 {
		return nil, searchInvalid
	}
	terms := query.Children
	if len(terms) == 1 && terms[0].Tag == wbxml.SearchAnd {
		terms = terms[0].Children
	}
	var text []string
	for _, t := range terms {
		switch t.Tag {
		case wbxml.AirSyncClass:
			if !strings.EqualFold(strings.TrimSpace(t.Text()), "Email") {
				mq.noMatch = true
			}
		case wbxml.AirSyncCollectionId:
			id := strings.TrimSpace(t.Text())
			if id == "" {
				return nil, searchInvalid
			}
			mq.colls = append(mq.colls, id)
		case wbxml.SearchFreeText:
			if v := strings.TrimSpace(t.Text()); v != "" {
				text = append(text, v)
			}
		case wbxml.SearchGreaterThan, wbxml.SearchLessThan:
			if t.Child(wbxml.EmailDateReceived) == nil {
				return nil, searchTooComplex
			}
			v, ok := parseSearchDate(t.ChildText(wbxml.SearchValue))
			if !ok {
				return nil, searchInvalid
			}
			if t.Tag == wbxml.SearchGreaterThan {
				// Strictly after v; internal dates have whole seconds.
				since := v.Truncate(time.Second).Add(time.Second)
				if since.After(mq.q.Since) {
					mq.q.Since = since
				}
			} else if mq.q.Before.IsZero() || v.Before(mq.q.Before) {
				mq.q.Before = v
			}
		default:
			return nil, searchTooComplex
		}
	}
	mq.q.Text = strings.Join(text, " ")
	if !mq.q.Since.IsZero() && !mq.q.Before.IsZero() && !mq.q.Since.Before(mq.q.Before) {
		mq.noMatch = true
	}
	if o := st.Child(wbxml.SearchOptions); o != nil {
		mq.deep = o.Child(wbxml.SearchDeepTraversal) != nil
		if r := o.Child(wbxml.SearchRange); r != nil {
			start, end, ok := parseSearchRange(r.Text())
			if !ok {
				return nil, searchInvalid
			}
			mq.start, mq.end = start, min(end, start+searchMaxRange-1)
		}
		parseBodyOptions(o, &mq.opts)
	}
	if len(mq.colls) == 0 {
		mq.deep = true
	}
	return mq, searchOK
}

// parseSearchRange parses a Range "a-b" (MS-ASCMD 2.2.3.143.3): zero-based,
// inclusive, a <= b.
func parseSearchRange(s string) (start, end int, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), "-")
	start, err1 := strconv.Atoi(a)
	end, err2 := strconv.Atoi(b)
	if !found || err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// parseSearchDate reads a Search Value date (MS-ASDTYPE 2.3 dateTime,
// "2025-03-01T00:00:00.000Z", or its compact form).
func parseSearchDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z", "20060102T150405Z", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
