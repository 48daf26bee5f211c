package imapbridge

// This file holds Backend.Search, the eas.MailSearcher over IMAP (the
// Search command of the Mailbox store).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas"
)

// maxSearchWords bounds the TEXT keys of one UID SEARCH: the free text is
// split into words, each of which a message must contain.
const maxSearchWords = 16

var _ eas.MailSearcher = (*Backend)(nil)

// Search returns the UIDs of the messages of folder that match q, newest
// (highest UID) first. It EXAMINEs the folder and sends one UID SEARCH:
// a TEXT key for each word of q.Text (all must match, in headers or body;
// go-imap adds CHARSET UTF-8 when a word is not ASCII and the server
// needs it), and SINCE/BEFORE for the internal-date bounds. IMAP dates
// have no time of day and the server's time zone, so the dates sent are a
// day wider on each side and the matches are then narrowed to exactly
// [q.Since, q.Before) by their INTERNALDATE.
func (b *Backend) Search(ctx context.Context, a eas.MailAccount, folder string, q eas.SearchQuery) ([]uint32, error) {
	var out []uint32
	err := b.run(ctx, a, "Search", folder, func(s *session) error {
		out = nil
		sel, err := s.selectFolder(folder, true)
		if err != nil {
			return err
		}
		if sel.NumMessages == 0 {
			return nil
		}
		var opts *imap.SearchOptions
		if s.has(imap.CapESearch) || s.has(imap.CapIMAP4rev2) {
			opts = &imap.SearchOptions{ReturnAll: true}
		}
		data, err := s.c.UIDSearch(searchCriteria(q), opts).Wait()
		if err != nil && !isNo(err, responseCodeExpungeIssued) {
			return fmt.Errorf("UID SEARCH: %w", err)
		}
		for _, uid := range searchUIDs(data, sel.NumMessages) {
			out = append(out, uint32(uid))
		}
		slices.Sort(out)
		out = slices.Compact(out)
		if len(out) > 0 && (!q.Since.IsZero() || !q.Before.IsZero()) {
			if out, err = s.withinDates(out, q.Since, q.Before); err != nil {
				return err
			}
		}
		if len(out) == 0 {
			out = nil
		}
		slices.Reverse(out)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// searchCriteria is the UID SEARCH of q, dates widened by a day.
func searchCriteria(q eas.SearchQuery) *imap.SearchCriteria {
	c := &imap.SearchCriteria{Text: searchWords(q.Text)}
	day := func(t time.Time) time.Time {
		t = t.UTC()
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	if !q.Since.IsZero() {
		c.Since = day(q.Since).AddDate(0, 0, -1)
	}
	if !q.Before.IsZero() {
		c.Before = day(q.Before).AddDate(0, 0, 2)
	}
	return c
}

// searchWords splits free text into the words of TEXT keys, without
// control characters (which an IMAP string cannot carry), at most
// maxSearchWords of them.
func searchWords(text string) []string {
	clean := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, text)
	words := strings.Fields(clean)
	if len(words) > maxSearchWords {
		words = words[:maxSearchWords]
	}
	return words
}

// withinDates keeps the uids (ascending) whose internal date is in
// [since, before); a zero bound is open.
func (s *session) withinDates(uids []uint32, since, before time.Time) ([]uint32, error) {
	keep := make(map[uint32]bool, len(uids))
	// Only the matches, in chunks (a sparse set of many UIDs must not
	// make one over-long command line, nor a fetch of every UID between).
	for chunk := range slices.Chunk(uids, 1000) {
		cmd := s.c.Fetch(uidSet(chunk), &imap.FetchOptions{UID: true, InternalDate: true})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			m, _, err := readMeta(msg, nil)
			if err != nil {
				cmd.Close()
				return nil, err
			}
			if (since.IsZero() || !m.Date.Before(since)) && (before.IsZero() || m.Date.Before(before)) {
				keep[m.UID] = true
			}
		}
		if err := cmd.Close(); err != nil && !isNo(err, responseCodeExpungeIssued) {
			return nil, fmt.Errorf("UID FETCH: %w", err)
		}
	}
	return slices.DeleteFunc(uids, func(u uint32) bool { return !keep[u] }), nil
}
