package imapbridge

// This file holds the message operations of Backend: Scan, Fetch,
// SetFlags and Delete.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easd/easd/eas"
)

// flagForwarded is the keyword that marks a forwarded message (RFC 5788).
const flagForwarded imap.Flag = "$Forwarded"

// technicalKeywords are keywords that mail clients set for their own
// bookkeeping: they are not categories, so MailMeta.Keywords omits them
// and replacing the keywords leaves them alone. Lower case.
var technicalKeywords = []string{
	"$forwarded", "$mdnsent", "$junk", "$notjunk", "junk", "nonjunk",
	"$phishing", "$submitpending", "$submitted", "$recent",
}

// responseCodeExpungeIssued is RFC 5530's EXPUNGEISSUED: some of the
// messages of a command were expunged meanwhile; the others were done.
const responseCodeExpungeIssued imap.ResponseCode = "EXPUNGEISSUED"

// Scan lists folder for Sync. It sends EXAMINE folder (CONDSTORE), whose
// answer gives the Status; then, unless the folder is empty, UID SEARCH
// (RETURN (ALL) with ESEARCH) SINCE q.Since, or ALL, for the UIDs; then,
// unless none matched, one UID FETCH lo:hi (UID FLAGS INTERNALDATE
// RFC822.SIZE) over the range of those UIDs, with (CHANGEDSINCE
// q.ChangedSince) when q.ChangedSince is not 0 and the server has
// CONDSTORE, keeping the messages within the window. So three round trips
// at most, whatever the number of messages.
func (b *Backend) Scan(ctx context.Context, a eas.MailAccount, folder string, q eas.ScanQuery) (eas.MailScan, error) {
	var out eas.MailScan
	err := b.run(ctx, a, "Scan", folder, func(s *session) error {
		out = eas.MailScan{}
		sel, err := s.selectFolder(folder, true)
		if err != nil {
			return err
		}
		out.Status = eas.MailStatus{
			UIDValidity:   sel.UIDValidity,
			UIDNext:       uint32(sel.UIDNext),
			Messages:      sel.NumMessages,
			HighestModSeq: sel.HighestModSeq,
		}
		if sel.NumMessages == 0 {
			return nil
		}
		var opts *imap.SearchOptions
		if s.has(imap.CapESearch) || s.has(imap.CapIMAP4rev2) {
			opts = &imap.SearchOptions{ReturnAll: true}
		}
		data, err := s.c.UIDSearch(&imap.SearchCriteria{Since: q.Since}, opts).Wait()
		if err != nil && !isNo(err, responseCodeExpungeIssued) {
			return fmt.Errorf("UID SEARCH: %w", err)
		}
		for _, uid := range searchUIDs(data, sel.NumMessages) {
			out.UIDs = append(out.UIDs, uint32(uid))
		}
		slices.Sort(out.UIDs)
		out.UIDs = slices.Compact(out.UIDs)
		if len(out.UIDs) == 0 {
			return nil
		}
		fopts := &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true}
		if q.ChangedSince > 0 && s.has(imap.CapCondStore) && sel.HighestModSeq > 0 {
			fopts.ChangedSince = q.ChangedSince
		}
		var set imap.UIDSet
		set.AddRange(imap.UID(out.UIDs[0]), imap.UID(out.UIDs[len(out.UIDs)-1]))
		cmd := s.c.Fetch(set, fopts)
		defer cmd.Close()
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			m, _, err := readMeta(msg, nil)
			if err != nil {
				return err
			}
			if _, in := slices.BinarySearch(out.UIDs, m.UID); in {
				out.Changed = append(out.Changed, m)
			}
		}
		if err := cmd.Close(); err != nil && !isNo(err, responseCodeExpungeIssued) {
			return fmt.Errorf("UID FETCH: %w", err)
		}
		return nil
	})
	if err != nil {
		return eas.MailScan{}, err
	}
	return out, nil
}

// metaItems tells which of MailMeta's items a FETCH response gave.
type metaItems uint8

const (
	haveUID metaItems = 1 << iota
	haveFlags
	haveDate
	haveSize
	haveAll = haveUID | haveFlags | haveDate | haveSize
)

// readMeta reads the items of msg into a MailMeta. When it meets a body
// section, it calls body with the meta read so far, and what it has.
func readMeta(msg *imapclient.FetchMessageData, body func(m eas.MailMeta, have metaItems, item imapclient.FetchItemDataBodySection) error) (eas.MailMeta, metaItems, error) {
	var m eas.MailMeta
	var have metaItems
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			m.UID = uint32(item.UID)
			have |= haveUID
		case imapclient.FetchItemDataFlags:
			m.Flags, m.Keywords = mailFlags(item.Flags)
			have |= haveFlags
		case imapclient.FetchItemDataInternalDate:
			m.Date = item.Time
			have |= haveDate
		case imapclient.FetchItemDataRFC822Size:
			m.Size = item.Size
			have |= haveSize
		case imapclient.FetchItemDataBodySection:
			if body != nil {
				if err := body(m, have, item); err != nil {
					return m, have, err
				}
			}
		}
	}
	return m, have, nil
}

// mailFlags splits IMAP flags into eas flags and keywords (sorted).
func mailFlags(flags []imap.Flag) (eas.MailFlags, []string) {
	var f eas.MailFlags
	var kw []string
	for _, fl := range flags {
		switch {
		case strings.EqualFold(string(fl), string(imap.FlagSeen)):
			f |= eas.FlagSeen
		case strings.EqualFold(string(fl), string(imap.FlagFlagged)):
			f |= eas.FlagFlagged
		case strings.EqualFold(string(fl), string(imap.FlagAnswered)):
			f |= eas.FlagAnswered
		case strings.EqualFold(string(fl), string(imap.FlagDeleted)):
			f |= eas.FlagDeleted
		case strings.EqualFold(string(fl), string(flagForwarded)):
			f |= eas.FlagForwarded
		case isKeyword(string(fl)):
			kw = append(kw, string(fl))
		}
	}
	slices.Sort(kw)
	return f, kw
}

// isKeyword reports whether flag is a keyword that is a category: not a
// system flag (\...) nor one of technicalKeywords.
func isKeyword(flag string) bool {
	return flag != "" && flag[0] != '\\' && !slices.Contains(technicalKeywords, strings.ToLower(flag))
}

// validKeyword reports whether kw can be sent as an IMAP flag keyword:
// printable ASCII without atom-specials.
func validKeyword(kw string) bool {
	if kw == "" {
		return false
	}
	for i := 0; i < len(kw); i++ {
		ch := kw[i]
		if ch <= ' ' || ch >= 0x7f || strings.IndexByte(`(){%*"\]`, ch) >= 0 {
			return false
		}
	}
	return true
}

// bodyReader is a message body given to Fetch's callback: a literal of
// the FETCH response being read. It reports a literal cut short as
// io.ErrUnexpectedEOF (the IMAP library reports plain io.EOF), and after
// a failed read, it closes the connection and waits until the library's
// reader goroutine has stopped: the library would otherwise read on from
// the connection while the literal is read again (to skip it), which is
// a data race. Its errors are sticky.
type bodyReader struct {
	s      *session
	r      io.Reader
	size   int64
	n      int64
	err    error // io.EOF once read to the end
	failed bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	switch {
	case err == nil:
	case err == io.EOF && r.n == r.size:
		r.err = io.EOF
	default:
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.err, r.failed = err, true
		r.s.abort()
		<-r.s.c.Closed()
	}
	return n, r.err
}

// Fetch streams the messages uids of folder to fn. It sends EXAMINE
// folder, then per FetchBatch UIDs (ascending) one UID FETCH set (UID
// FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]), whose body literals are
// read from the connection as fn reads them: no message is held in
// memory. Messages that no longer exist are skipped.
//
// Should a server send a body before the other items of its message
// (Dovecot does not), that body is skipped and fetched again afterwards
// with UID FETCH uid (UID BODY.PEEK[]). If fn returns an error, the
// connection is closed rather than drained, and the error is returned as
// is; if fn's error comes from a failed read of the body, an error
// wrapping ErrUnavailable is returned instead.
//
// A server that refuses a FETCH over one message is narrowed down to the
// culprit (fetchRefused): the messages not given to fn yet are fetched
// again, the suspect alone, the others in halves, and a message that is
// refused when fetched alone is left out; once the others are given to fn,
// Fetch returns an *eas.MailItemError naming the messages left out. A
// connection that fails without such an answer (a cut, a timeout) is no
// message's fault: Fetch returns that error, as before. (Whether a server
// that refuses every message is failing rather than the messages is for
// the caller to tell: it knows a message that was readable before.)
func (b *Backend) Fetch(ctx context.Context, a eas.MailAccount, folder string, uids []uint32, fn func(m eas.MailMeta, body io.Reader) error) error {
	uids = slices.Compact(slices.Sorted(slices.Values(uids)))
	if len(uids) > 0 && uids[0] == 0 {
		uids = uids[1:] // not a UID
	}
	if len(uids) == 0 {
		return nil
	}
	failed := map[uint32]error{}
	work := [][]uint32{uids}
	for len(work) > 0 {
		g := work[0]
		work = work[1:]
		p := fetchProgress{done: map[uint32]bool{}}
		err := b.run(ctx, a, "Fetch", folder, func(s *session) error {
			if _, err := s.selectFolder(folder, true); err != nil {
				return err
			}
			for batch := range slices.Chunk(g, s.b.batch) {
				if err := s.fetchBatch(batch, fn, &p); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			continue
		}
		if p.refusal == nil || ctx.Err() != nil {
			return err
		}
		rest := slices.DeleteFunc(slices.Clone(g), func(u uint32) bool { return p.done[u] })
		switch {
		case len(rest) == 0:
		case len(g) == 1:
			// Refused alone: this message's own failure.
			failed[g[0]] = p.refusal
			b.log.Warn("imap backend: message refused", "user", a.Login, "folder", folder, "uid", g[0], "err", p.refusal)
		case p.suspect != 0 && slices.Contains(rest, p.suspect):
			work = append(work, []uint32{p.suspect})
			if others := slices.DeleteFunc(rest, func(u uint32) bool { return u == p.suspect }); len(others) > 0 {
				work = append(work, others)
			}
		case len(rest) == 1:
			work = append(work, rest)
		default:
			work = append(work, rest[:len(rest)/2], rest[len(rest)/2:])
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &eas.MailItemError{Failed: failed}
}

// fetchProgress is what one Fetch attempt achieved: the messages given to
// fn, and whether the server refused the command (refusal) rather than
// the connection failing, with the message it choked on (suspect), when
// it said.
type fetchProgress struct {
	done    map[uint32]bool
	refusal error
	suspect uint32
}

// fetchRefused decides whether a failed UID FETCH is the server refusing
// it: a NO or BAD answer other than one about the server's state, or,
// whatever the
// error, a last message answered without the body asked for. Dovecot does
// the latter with a message file it cannot read ("* n FETCH (UID u FLAGS
// ...)" without BODY[], then "* BYE FETCH failed" and the connection
// closed); that message is the suspect. A cut connection leaves no such
// trace: a literal cut short fails in bodyReader, and no answer at all is
// no message's fault.
func fetchRefused(err error, lastUID uint32, lastBodiless bool, p *fetchProgress) {
	var ierr *imap.Error
	answered := errors.As(err, &ierr) && (ierr.Type == imap.StatusResponseTypeNo || ierr.Type == imap.StatusResponseTypeBad)
	if answered {
		switch ierr.Code {
		case imap.ResponseCodeUnavailable, imap.ResponseCodeLimit, imap.ResponseCodeInUse:
			// The server's state, not the messages' (RFC 5530).
			answered = false
		}
	}
	switch {
	case lastBodiless && lastUID != 0:
		p.suspect = lastUID
		p.refusal = fmt.Errorf("UID FETCH %d: answered without the message, then: %w", lastUID, err)
	case answered:
		p.refusal = fmt.Errorf("UID FETCH: %w", err)
	}
}

// fetchBatch fetches the messages uids, as Fetch does.
func (s *session) fetchBatch(uids []uint32, fn func(m eas.MailMeta, body io.Reader) error, p *fetchProgress) error {
	late := make(map[uint32]eas.MailMeta) // bodies that came too early
	var lateUIDs []uint32
	err := s.fetchBodies(uidSet(uids), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true}, late, &lateUIDs, fn, p)
	if err != nil || len(lateUIDs) == 0 {
		return err
	}
	for _, uid := range lateUIDs {
		if err := s.fetchBodies(uidSet([]uint32{uid}), &imap.FetchOptions{UID: true}, late, nil, fn, p); err != nil {
			return err
		}
	}
	return nil
}

// fetchBodies sends UID FETCH set with the items of opts and BODY.PEEK[],
// and calls fn for each body. On the first try (lateUIDs not nil), a body
// that comes before the other items of its message is skipped, and the
// message's UID added to lateUIDs and its meta to late; on the second
// (lateUIDs nil), the meta comes from late. The messages given to fn are
// recorded in p, and so is a refusal of the command (fetchRefused).
func (s *session) fetchBodies(set imap.UIDSet, opts *imap.FetchOptions, late map[uint32]eas.MailMeta, lateUIDs *[]uint32, fn func(m eas.MailMeta, body io.Reader) error, p *fetchProgress) error {
	opts.BodySection = []*imap.FetchItemBodySection{{Peek: true}}
	cmd := s.c.Fetch(set, opts)
	complete := false
	defer func() {
		if !complete {
			// fn failed or panicked: close the connection rather than
			// read the rest of the batch.
			s.abort()
		}
		cmd.Close()
	}()
	var lastUID uint32
	lastBodiless := false
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		skipped, gotBody := false, false
		m, have, err := readMeta(msg, func(m eas.MailMeta, have metaItems, item imapclient.FetchItemDataBodySection) error {
			if item.Section != nil && (len(item.Section.Part) > 0 || item.Section.Specifier != imap.PartSpecifierNone) {
				return nil // not ours
			}
			gotBody = true
			if lateUIDs == nil {
				if lm, ok := late[m.UID]; ok && have&haveUID != 0 {
					m = lm
					have = haveAll
				}
			}
			if have != haveAll {
				skipped = true
				return nil
			}
			br := &bodyReader{s: s, r: strings.NewReader("")}
			if item.Literal != nil {
				br.r, br.size = item.Literal, item.Literal.Size()
			}
			if err := fn(m, br); err != nil {
				s.abort()
				if br.failed {
					return fmt.Errorf("UID FETCH: reading message %d: %w", m.UID, br.err)
				}
				return callbackError{err}
			}
			// Drain what fn left, here to see the error.
			if _, err := io.Copy(io.Discard, br); err != nil {
				return fmt.Errorf("UID FETCH: reading message %d: %w", m.UID, br.err)
			}
			p.done[m.UID] = true
			return nil
		})
		if err != nil {
			return err
		}
		if have&haveUID != 0 {
			lastUID, lastBodiless = m.UID, !gotBody
		}
		if skipped && lateUIDs != nil && have&haveUID != 0 {
			late[m.UID] = m
			*lateUIDs = append(*lateUIDs, m.UID)
		}
	}
	complete = true
	if err := cmd.Close(); err != nil && !isNo(err, responseCodeExpungeIssued) {
		fetchRefused(err, lastUID, lastBodiless, p)
		return fmt.Errorf("UID FETCH: %w", err)
	}
	return nil
}

// uidSet returns the set of uids.
func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, uid := range uids {
		set.AddNum(imap.UID(uid))
	}
	return set
}

// SetFlags changes the flags of message uid of folder. It sends SELECT
// folder; with ch.Keywords, UID FETCH uid (FLAGS) for the current
// keywords; then UID STORE uid +FLAGS.SILENT (...) with the flags and
// keywords to add and UID STORE uid -FLAGS.SILENT (...) with those to
// remove, pipelined, each only if not empty. So two to four round trips,
// none if ch changes nothing. Keywords that IMAP cannot carry (with
// spaces, brackets, non-ASCII letters and the like) are ignored, and so
// are keywords that are not categories ($Forwarded, $MDNSent, $Junk and
// other technicalKeywords): replacing the keywords keeps those.
func (b *Backend) SetFlags(ctx context.Context, a eas.MailAccount, folder string, uid uint32, ch eas.FlagChange) error {
	var add, del []imap.Flag
	for _, f := range []struct {
		set  *bool
		flag imap.Flag
	}{
		{ch.Seen, imap.FlagSeen},
		{ch.Flagged, imap.FlagFlagged},
		{ch.Answered, imap.FlagAnswered},
		{ch.Forwarded, flagForwarded},
	} {
		switch {
		case f.set == nil:
		case *f.set:
			add = append(add, f.flag)
		default:
			del = append(del, f.flag)
		}
	}
	if (len(add) == 0 && len(del) == 0 && ch.Keywords == nil) || uid == 0 {
		return nil
	}
	return b.run(ctx, a, "SetFlags", folder, func(s *session) error {
		if _, err := s.selectFolder(folder, false); err != nil {
			return err
		}
		set := imap.UIDSetNum(imap.UID(uid))
		if ch.Keywords != nil {
			cmd := s.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true})
			var current []string
			found := false
			for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
				m, _, err := readMeta(msg, nil)
				if err != nil {
					cmd.Close()
					return err
				}
				if m.UID == uid {
					current, found = m.Keywords, true
				}
			}
			if err := cmd.Close(); err != nil && !isNo(err, responseCodeExpungeIssued) {
				return fmt.Errorf("UID FETCH: %w", err)
			}
			if !found {
				return nil // gone
			}
			want := make(map[string]string) // lower case -> as given
			for _, kw := range *ch.Keywords {
				if validKeyword(kw) && isKeyword(kw) {
					want[strings.ToLower(kw)] = kw
				}
			}
			for _, kw := range current {
				if _, keep := want[strings.ToLower(kw)]; keep {
					delete(want, strings.ToLower(kw))
				} else if validKeyword(kw) && eas.IsCategoryKeyword(kw) {
					// Only categories are replaced: other clients' tags
					// ($label1, $MailFlagBit0 ...) stay.
					del = append(del, imap.Flag(kw))
				}
			}
			for _, kw := range want {
				add = append(add, imap.Flag(kw))
			}
		}
		var cmds []*imapclient.FetchCommand
		if len(add) > 0 {
			cmds = append(cmds, s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: add}, nil))
		}
		if len(del) > 0 {
			cmds = append(cmds, s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: del}, nil))
		}
		var errs []error
		for _, cmd := range cmds {
			if err := cmd.Close(); err != nil && !isNo(err, responseCodeExpungeIssued) {
				errs = append(errs, fmt.Errorf("UID STORE: %w", err))
			}
		}
		return errors.Join(errs...)
	})
}

// Delete removes the messages uids of folder. It sends SELECT folder,
// then per 1000 UIDs:
//
//   - to a trash folder: UID MOVE set trash if the server has MOVE; else
//     UID COPY set trash, UID STORE set +FLAGS.SILENT (\Deleted) and UID
//     EXPUNGE set (see below without UIDPLUS). If the trash does not
//     exist (NO [TRYCREATE]), it is created (CREATE) and the MOVE or COPY
//     tried again.
//   - otherwise: UID STORE set +FLAGS.SILENT (\Deleted), UID EXPUNGE set.
//
// Without UIDPLUS, which UID EXPUNGE needs, other messages flagged
// \Deleted must not be expunged with these: it sends UID SEARCH DELETED
// NOT UID set, takes \Deleted off those found (UID STORE -FLAGS.SILENT),
// EXPUNGE, and puts it back (UID STORE +FLAGS.SILENT). Another client may
// flag a message \Deleted meanwhile, and see it expunged: servers without
// UIDPLUS are rare.
func (b *Backend) Delete(ctx context.Context, a eas.MailAccount, folder string, uids []uint32, trash string) error {
	uids = slices.Compact(slices.Sorted(slices.Values(uids)))
	if len(uids) > 0 && uids[0] == 0 {
		uids = uids[1:]
	}
	if len(uids) == 0 {
		return nil
	}
	if trash == folder {
		trash = ""
	}
	return b.run(ctx, a, "Delete", folder, func(s *session) error {
		if _, err := s.selectFolder(folder, false); err != nil {
			return err
		}
		for batch := range slices.Chunk(uids, storeBatch) {
			set := uidSet(batch)
			if trash != "" && s.has(imap.CapMove) {
				err := s.toTrash(trash, func() error {
					_, err := s.c.Move(set, trash).Wait()
					return err
				})
				if err != nil && !isNo(err, responseCodeExpungeIssued) {
					return fmt.Errorf("UID MOVE to %q: %w", trash, err)
				}
				continue
			}
			if trash != "" {
				err := s.toTrash(trash, func() error {
					_, err := s.c.Copy(set, trash).Wait()
					return err
				})
				if err != nil && !isNo(err, responseCodeExpungeIssued) {
					return fmt.Errorf("UID COPY to %q: %w", trash, err)
				}
			}
			if err := s.store(set, imap.StoreFlagsAdd, imap.FlagDeleted); err != nil {
				return err
			}
			if err := s.expunge(set); err != nil {
				return err
			}
		}
		return nil
	})
}

// toTrash runs cmd, a MOVE or COPY to trash; if trash does not exist, it
// creates it and runs cmd again.
func (s *session) toTrash(trash string, cmd func() error) error {
	err := cmd()
	var ierr *imap.Error
	if !errors.As(err, &ierr) || ierr.Type != imap.StatusResponseTypeNo || ierr.Code != imap.ResponseCodeTryCreate {
		return err
	}
	if err := s.c.Create(trash, nil).Wait(); err != nil && !isNo(err, imap.ResponseCodeAlreadyExists) {
		return fmt.Errorf("CREATE %q: %w", trash, err)
	}
	return cmd()
}

// store sends UID STORE set +FLAGS.SILENT or -FLAGS.SILENT (flag).
func (s *session) store(set imap.UIDSet, op imap.StoreFlagsOp, flag imap.Flag) error {
	err := s.c.Store(set, &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{flag}}, nil).Close()
	if err != nil && !isNo(err, responseCodeExpungeIssued) {
		return fmt.Errorf("UID STORE: %w", err)
	}
	return nil
}

// expunge expunges the messages set, flagged \Deleted, and no others.
func (s *session) expunge(set imap.UIDSet) error {
	if s.has(imap.CapUIDPlus) || s.has(imap.CapIMAP4rev2) {
		if err := s.c.UIDExpunge(set).Close(); err != nil {
			return fmt.Errorf("UID EXPUNGE: %w", err)
		}
		return nil
	}
	data, err := s.c.UIDSearch(&imap.SearchCriteria{
		Flag: []imap.Flag{imap.FlagDeleted},
		Not:  []imap.SearchCriteria{{UID: []imap.UIDSet{set}}},
	}, nil).Wait()
	if err != nil {
		return fmt.Errorf("UID SEARCH: %w", err)
	}
	var others imap.UIDSet
	if all := searchUIDs(data, math.MaxUint32); len(all) > 0 {
		others.AddNum(all...)
		if err := s.store(others, imap.StoreFlagsDel, imap.FlagDeleted); err != nil {
			return err
		}
	}
	err = s.c.Expunge().Close()
	if len(others) > 0 {
		if rerr := s.store(others, imap.StoreFlagsAdd, imap.FlagDeleted); rerr != nil && err == nil {
			return rerr
		}
	}
	if err != nil {
		return fmt.Errorf("EXPUNGE: %w", err)
	}
	return nil
}

// searchUIDs lists the UIDs of a UID SEARCH answer, at most max (the
// folder's message count: a server cannot have more). go-imap's
// AllUIDs trusts the server: it panics on "*", loops for ever on a range
// ending at 4294967295 and allocates a slice the size of any range
// claimed (FuzzIMAPResponses). UID 0 does not exist and is skipped.
func searchUIDs(data *imap.SearchData, max uint32) []imap.UID {
	if data == nil {
		return nil
	}
	set, ok := data.All.(imap.UIDSet)
	if !ok {
		return nil
	}
	var out []imap.UID
	for _, r := range set {
		start, stop := uint64(r.Start), uint64(r.Stop)
		if start == 0 || stop == 0 { // "*" or 0: not a UID
			continue
		}
		if start > stop {
			start, stop = stop, start
		}
		for u := start; u <= stop && uint32(len(out)) < max; u++ {
			out = append(out, imap.UID(u))
		}
	}
	return out
}
