package eas

import (
	"cmp"
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// mailSync is one email collection of one Sync request.
type mailSync struct {
	ctx context.Context // of the request, for work done while encoding
	h   *Handler
	s   *Session
	hr  *hierarchy
	f   *folderView
	c   *collReq
	st  *mailState

	responses []*wbxml.Node // Responses > Change/Fetch
	dirty     bool          // client commands changed st
	// guard holds the collection's failed messages (quarantine.go);
	// failedAdds are the messages of this response that failed.
	guard      *itemGuard
	failedAdds []uint32
	// clearMoves, when set, clears the pending moves applied to st; it
	// runs after the new state is saved.
	clearMoves func(context.Context) error
}

// flagMask are the flags a device is told about.
const flagMask = FlagSeen | FlagFlagged | FlagAnswered | FlagForwarded

// serverID is the ServerId of a message: folder id and UID. A UIDVALIDITY
// change makes the collection start over (status 3), so an id never
// names two messages.
func serverID(folderID string, uid uint32) string {
	return folderID + ":" + strconv.FormatUint(uint64(uid), 10)
}

// parseServerID splits a ServerId made by serverID.
func parseServerID(id string) (folderID string, uid uint32, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 32)
	if err != nil || n == 0 {
		return "", 0, false
	}
	return id[:i], uint32(n), true
}

func (m *mailSync) run(ctx context.Context) (*wbxml.Node, error) {
	h, s, c := m.h, m.s, m.c
	// A retry: the state after this key exists and was made from it.
	next, err := h.loadMailState(ctx, s, c.id, m.st.nextKey())
	if err != nil {
		return nil, err
	}
	retry := next != nil && next.Parent == c.key
	if c.commands != nil && len(c.commands.Children) > 0 && m.st.UIDValidity != 0 {
		// The device's ServerIds name UIDs of one UIDVALIDITY: never
		// apply its changes to a folder recreated since.
		stat, err := h.deps.Mail.Status(ctx, s.Account, m.f.name)
		if err != nil {
			return nil, m.folderErr(err)
		}
		if stat.UIDValidity != m.st.UIDValidity {
			return m.restart(ctx, stat.UIDValidity)
		}
	}
	if err := m.clientCommands(ctx); err != nil {
		return nil, err
	}
	if retry {
		s.Log.Info("Sync retried: same answer again", "collection", c.id, "synckey", c.key)
		return m.replay(ctx, next)
	}
	if _, err := m.applyMoves(ctx); err != nil {
		return nil, err
	}
	n, err := m.respond(ctx)
	if err == nil && m.clearMoves != nil {
		// Registered after the state's own save: runs after it.
		s.BeforeSend(m.clearMoves)
	}
	return n, err
}

// respond answers a request that is not a retry.
func (m *mailSync) respond(ctx context.Context) (*wbxml.Node, error) {
	h, s, c := m.h, m.s, m.c
	if !c.getChanges {
		if !m.dirty {
			return h.collResponse(c, c.key, syncOK, m.fillResponses), nil
		}
		nst := m.successor()
		if err := h.putMailState(ctx, s, c.id, nst); err != nil {
			return nil, err
		}
		return h.collResponse(c, nst.key(), syncOK, m.fillResponses), nil
	}
	return m.changes(ctx)
}

// restart answers status 3 when the folder was recreated upstream: its
// UIDs name other messages now. The client starts the collection over
// (no duplicates: it drops what it has).
func (m *mailSync) restart(ctx context.Context, uidValidity uint32) (*wbxml.Node, error) {
	m.s.Log.Warn("UIDVALIDITY changed: collection starts over", "folder", m.f.name, "old", m.st.UIDValidity, "new", uidValidity)
	if err := m.h.deps.Store.DeleteSyncStates(ctx, m.s.Device.ID, m.c.id); err != nil {
		return nil, err
	}
	// The UIDs of its failed messages name other messages now.
	if err := m.h.forgetCollection(ctx, m.s, m.c.id); err != nil {
		return nil, err
	}
	return collStatus(m.c, syncInvalidKey), nil
}

// successor is the next state, before server changes are added.
func (m *mailSync) successor() *mailState {
	nst := *m.st
	nst.N++
	nst.Parent = m.c.key
	nst.Sent = sentItems{}
	nst.Prefs, nst.MIMESupport = m.c.opts.BodyPrefs, m.c.opts.MIMESupport
	return &nst
}

// changes computes, sends and records the server's changes.
func (m *mailSync) changes(ctx context.Context) (*wbxml.Node, error) {
	h, s, c, st := m.h, m.s, m.c, m.st
	now := h.deps.Now()
	since := filterSince(now, c.filter)
	sameFilter := st.Filter == c.filter
	g, err := h.guard(ctx, s, c.id, m.f.name)
	if err != nil {
		return nil, err
	}
	m.guard = g
	// Fast path: the folder's counters are what they were and CONDSTORE
	// vouches for flags, nothing aged out, nothing left over (messages
	// that failed and are to be tried again count as left over): no
	// changes.
	if sameFilter && !st.Sent.More && st.Last.HighestModSeq != 0 && !agedOut(st, c.filter, since) && len(g.retrying()) == 0 {
		stat, err := h.deps.Mail.Status(ctx, s.Account, m.f.name)
		if err != nil {
			return nil, m.folderErr(err)
		}
		if stat == st.Last {
			return m.unchanged(ctx)
		}
	}
	q := ScanQuery{Since: since}
	if sameFilter {
		q.ChangedSince = st.ModSeq
	}
	scan, err := h.deps.Mail.Scan(ctx, s.Account, m.f.name, q)
	if err != nil {
		return nil, m.folderErr(err)
	}
	if st.UIDValidity != 0 && scan.Status.UIDValidity != st.UIDValidity {
		return m.restart(ctx, scan.Status.UIDValidity)
	}
	inWin := make(map[uint32]bool, len(scan.UIDs))
	for _, u := range scan.UIDs {
		inWin[u] = true
	}
	meta := make(map[uint32]MailMeta, len(scan.Changed))
	for _, mm := range scan.Changed {
		meta[mm.UID] = mm
	}
	var sent sentItems
	sinceUnix := since.Unix()
	var gone []uint32
	for uid := range st.Items {
		if !inWin[uid] {
			gone = append(gone, uid)
		}
	}
	slices.Sort(gone)
	for _, uid := range gone {
		// Out of the window by age: SoftDelete (MS-ASCMD 2.2.3.161);
		// expunged: Delete.
		if !since.IsZero() && st.Items[uid].Date < sinceUnix {
			sent.SoftDeletes = append(sent.SoftDeletes, uid)
		} else {
			sent.Deletes = append(sent.Deletes, uid)
		}
	}
	var changed []uint32
	for _, mm := range scan.Changed {
		it, ok := st.Items[mm.UID]
		if ok && inWin[mm.UID] && (it.Flags != mm.Flags&flagMask || it.Kw != kwHash(categoriesOf(mm.Keywords))) {
			changed = append(changed, mm.UID)
		}
	}
	slices.Sort(changed)
	var adds []uint32
	for i := len(scan.UIDs) - 1; i >= 0; i-- { // newest first
		// Quarantined messages are neither sent nor counted as left over.
		if _, ok := st.Items[scan.UIDs[i]]; !ok && !g.quarantined(serverID(c.id, scan.UIDs[i])) {
			adds = append(adds, scan.UIDs[i])
		}
	}
	for id := range g.strikes {
		// Failed messages gone from the window (or held since) are
		// forgotten.
		_, uid, ok := parseServerID(id)
		if _, held := st.Items[uid]; !ok || !inWin[uid] || held {
			g.ok(id)
		}
	}
	// The window counts every command (MS-ASCMD 2.2.3.199).
	room := c.window
	take := func(l []uint32) []uint32 {
		n := min(len(l), room)
		room -= n
		return l[:n]
	}
	allDeletes := len(sent.Deletes) + len(sent.SoftDeletes)
	sent.Deletes = take(sent.Deletes)
	sent.SoftDeletes = take(sent.SoftDeletes)
	sentChanges := take(changed)
	sentAdds := take(adds)
	// The byte budget cuts adds further.
	budget := int64(syncBudget)
	for i, uid := range sentAdds {
		size := meta[uid].Size
		if i > 0 && budget-size < 0 {
			sentAdds = sentAdds[:i]
			break
		}
		budget -= size
	}
	sent.Changes = sentChanges
	sent.More = len(sent.Deletes)+len(sent.SoftDeletes) < allDeletes || len(sentChanges) < len(changed) || len(sentAdds) < len(adds)

	nst := m.successor()
	nst.Filter = c.filter
	nst.UIDValidity = scan.Status.UIDValidity
	nst.Last = scan.Status
	if len(sentChanges) == len(changed) {
		nst.ModSeq = scan.Status.HighestModSeq
	}
	nst.Items = make(map[uint32]itemState, len(st.Items)+len(sentAdds))
	for k, v := range st.Items {
		nst.Items[k] = v
	}
	for _, uid := range sent.Deletes {
		delete(nst.Items, uid)
	}
	for _, uid := range sent.SoftDeletes {
		delete(nst.Items, uid)
	}
	var cmds []*wbxml.Node
	for _, uid := range sent.Deletes {
		cmds = append(cmds, wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, serverID(c.id, uid))))
	}
	for _, uid := range sent.SoftDeletes {
		cmds = append(cmds, wbxml.E(wbxml.AirSyncSoftDelete, wbxml.T(wbxml.AirSyncServerId, serverID(c.id, uid))))
	}
	for _, uid := range sentChanges {
		mm := meta[uid]
		it := nst.Items[uid]
		it.Flags, it.Kw = mm.Flags&flagMask, kwHash(categoriesOf(mm.Keywords))
		nst.Items[uid] = it
		n, err := m.changeNode(ctx, mm)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, n)
	}
	if len(cmds) == 0 && len(sentAdds) == 0 && !m.dirty && !sent.More {
		s.BeforeSend(g.commit)
		return m.unchangedWith(ctx, nst)
	}
	// Adds are fetched and encoded one by one while the response is
	// encoded; the state, which records the ones that really went out, is
	// saved before the response is sent.
	gen := m.commands(cmds, sentAdds, &sent, func(mm MailMeta) {
		nst.Items[mm.UID] = itemState{Flags: mm.Flags & flagMask, Date: mm.Date.Unix(), Kw: kwHash(categoriesOf(mm.Keywords))}
	})
	s.BeforeSend(func(ctx context.Context) error {
		nst.Sent = sent
		if err := h.putMailState(ctx, s, c.id, nst); err != nil {
			return err
		}
		return g.commit(ctx)
	})
	return h.collResponse(c, nst.key(), syncOK, func(n *wbxml.Node) {
		m.fillResponses(n)
		n.Append(gen, moreAvailable(&sent.More))
	}), nil
}

// moreAvailable is a fragment writing MoreAvailable (after Commands, as
// in MS-ASCMD 4.5.8) if *more is set once the commands were generated.
func moreAvailable(more *bool) *wbxml.Node {
	return &wbxml.Node{Gen: func(e *wbxml.Encoder) error {
		if *more {
			return e.EmptyElement(wbxml.AirSyncMoreAvailable)
		}
		return nil
	}}
}

// unchanged answers with the same key when nothing changed on either side.
func (m *mailSync) unchanged(ctx context.Context) (*wbxml.Node, error) {
	if m.dirty {
		nst := m.successor()
		if err := m.h.putMailState(ctx, m.s, m.c.id, nst); err != nil {
			return nil, err
		}
		return m.h.collResponse(m.c, nst.key(), syncOK, m.fillResponses), nil
	}
	return m.h.collResponse(m.c, m.c.key, syncOK, m.fillResponses), nil
}

// unchangedWith keeps the key when there is nothing to send, but stores
// the fresh counters under it so the next request takes the fast path.
// The key is the newest (a retry was ruled out), so replacing its data
// is safe: it describes the same items.
func (m *mailSync) unchangedWith(ctx context.Context, nst *mailState) (*wbxml.Node, error) {
	if nst.Last != m.st.Last || nst.ModSeq != m.st.ModSeq || nst.Filter != m.st.Filter || nst.UIDValidity != m.st.UIDValidity {
		keep := *m.st
		keep.Last, keep.ModSeq, keep.Filter, keep.UIDValidity = nst.Last, nst.ModSeq, nst.Filter, nst.UIDValidity
		if err := m.h.putMailState(ctx, m.s, m.c.id, &keep); err != nil {
			return nil, err
		}
	}
	return m.h.collResponse(m.c, m.c.key, syncOK, m.fillResponses), nil
}

// replay answers a retried request with what the first answer carried:
// the same items under the same ServerIds and the same next key.
func (m *mailSync) replay(ctx context.Context, next *mailState) (*wbxml.Node, error) {
	c := m.c
	var cmds []*wbxml.Node
	for _, uid := range next.Sent.Deletes {
		cmds = append(cmds, wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, serverID(c.id, uid))))
	}
	for _, uid := range next.Sent.SoftDeletes {
		cmds = append(cmds, wbxml.E(wbxml.AirSyncSoftDelete, wbxml.T(wbxml.AirSyncServerId, serverID(c.id, uid))))
	}
	if len(next.Sent.Changes) > 0 {
		// The flags as they are now (categories are kept only as a hash).
		scan, err := m.h.deps.Mail.Scan(ctx, m.s.Account, m.f.name, ScanQuery{Since: filterSince(m.h.deps.Now(), next.Filter)})
		if err != nil {
			return nil, m.folderErr(err)
		}
		meta := make(map[uint32]MailMeta, len(scan.Changed))
		for _, mm := range scan.Changed {
			meta[mm.UID] = mm
		}
		for _, uid := range next.Sent.Changes {
			mm, ok := meta[uid]
			if !ok {
				mm = MailMeta{UID: uid, Flags: next.Items[uid].Flags}
			}
			n, err := m.changeNode(ctx, mm)
			if err != nil {
				return nil, err
			}
			cmds = append(cmds, n)
		}
	}
	g, err := m.h.guard(ctx, m.s, c.id, m.f.name)
	if err != nil {
		return nil, err
	}
	m.guard = g
	sent := sentItems{More: next.Sent.More}
	gen := m.commands(cmds, next.Sent.Adds, &sent, func(MailMeta) {})
	more := next.Sent.More
	m.s.BeforeSend(func(ctx context.Context) error {
		if len(m.failedAdds) > 0 {
			// Messages that went out the first time and fail now: the
			// device does not get them this time, so the state must not
			// say it holds them (the next Sync tries them again).
			for _, uid := range m.failedAdds {
				delete(next.Items, uid)
			}
			next.Sent.Adds = slices.DeleteFunc(next.Sent.Adds, func(u uint32) bool { return slices.Contains(m.failedAdds, u) })
			if err := m.h.putMailState(ctx, m.s, c.id, next); err != nil {
				return err
			}
		}
		return g.commit(ctx)
	})
	return m.h.collResponse(c, next.key(), syncOK, func(n *wbxml.Node) {
		m.fillResponses(n)
		n.Append(gen, moreAvailable(&more))
	}), nil
}

// fetchChunk is how many messages one UID FETCH asks for in a Sync.
const fetchChunk = 128

// commands is a fragment writing Commands: the prebuilt cmds, then an
// Add for each of adds fetched from the mailbox, converted and encoded one
// at a time (a message's spooled body is released as soon as it is
// written). Messages that vanished are left out; once the messages
// written exceed the byte budget the rest are left for the next response
// (sent.More). sent.Adds records what was written, added is told about
// each. No Commands element is written when it would be empty.
func (m *mailSync) commands(cmds []*wbxml.Node, adds []uint32, sent *sentItems, added func(MailMeta)) *wbxml.Node {
	return &wbxml.Node{Gen: func(e *wbxml.Encoder) error {
		open := false
		start := func() error {
			if open {
				return nil
			}
			open = true
			return e.StartElement(wbxml.AirSyncCommands)
		}
		for _, n := range cmds {
			if err := start(); err != nil {
				return err
			}
			if err := e.EncodeElement(n); err != nil {
				return err
			}
		}
		opts := m.c.opts
		opts.SpoolMemory = syncSpoolMemory
		var bytes int64
		// Newest first, in chunks, so that the byte budget stops the
		// fetching itself, not only the sending.
		for len(adds) > 0 {
			if len(sent.Adds) > 0 && bytes >= syncBudget {
				sent.More = true
				break
			}
			chunk := adds[:min(len(adds), fetchChunk)]
			adds = adds[len(chunk):]
			given := false // a message of the chunk came: the upstream works
			err := m.h.deps.Mail.Fetch(m.ctx, m.s.Account, m.f.name, chunk, func(mm MailMeta, body io.Reader) error {
				given = true
				if len(sent.Adds) > 0 && bytes+mm.Size > syncBudget {
					sent.More = true
					return nil
				}
				bytes += mm.Size
				id := serverID(m.c.id, mm.UID)
				fl, err := m.h.flagOf(m.ctx, m.s, m.f, mm)
				if err != nil {
					return err
				}
				it, failure, err := m.convertGuarded(mm, fl, body, opts)
				if err != nil {
					return err
				}
				if failure != nil {
					// Left out, not recorded as sent: tried again later.
					m.itemFailed(mm.UID, failure)
					return nil
				}
				defer it.Close()
				if err := start(); err != nil {
					return err
				}
				if err := e.EncodeElement(wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, id), it.Node)); err != nil {
					return err
				}
				sent.Adds = append(sent.Adds, mm.UID)
				m.guard.ok(id)
				added(mm)
				return nil
			})
			var ie *MailItemError
			if errors.As(err, &ie) && !given {
				// Every message refused: the upstream may be failing,
				// not the messages. Ask it for one it gave before.
				if cerr := m.controlFetch(); cerr != nil {
					err = fmt.Errorf("%w; a message it gave before fails too: %w", err, cerr)
					ie = nil
				}
			}
			if ie != nil {
				// The upstream refused these messages (and gave the
				// others): left out, tried again later.
				for _, uid := range slices.Sorted(maps.Keys(ie.Failed)) {
					m.itemFailed(uid, ie.Failed[uid])
				}
				err = nil
			}
			if err != nil {
				return mailError(err)
			}
		}
		if open {
			return e.EndElement()
		}
		return nil
	}}
}

// controlFetch fetches the newest message the device holds (the
// upstream gave it before) and discards it: an error says the upstream
// fails whatever it is asked, so messages it refused are not to blame.
// Without such a message there is no telling: nil.
func (m *mailSync) controlFetch() error {
	var uid uint32
	for u := range m.st.Items {
		uid = max(uid, u)
	}
	if uid == 0 {
		return nil
	}
	return m.h.deps.Mail.Fetch(m.ctx, m.s.Account, m.f.name, []uint32{uid}, func(_ MailMeta, body io.Reader) error {
		_, err := io.Copy(io.Discard, body)
		return err
	})
}

// itemFailed records a message of this response that failed.
func (m *mailSync) itemFailed(uid uint32, err error) {
	m.failedAdds = append(m.failedAdds, uid)
	m.guard.fail(serverID(m.c.id, uid), err)
}

// convertGuarded is convertFlagged for Sync: a conversion that fails or
// panics is the message's failure (failure), to be left out, unless the
// read of the message or a spool write failed (err: the response fails,
// the client retries).
func (m *mailSync) convertGuarded(mm MailMeta, fl *email.Flag, body io.Reader, opts email.Options) (it *email.Item, failure, err error) {
	wr := &watchedReader{r: body}
	defer func() {
		if r := recover(); r != nil {
			it, err = nil, nil
			failure = recovered(m.s, "converting message "+serverID(m.c.id, mm.UID), r)
		}
	}()
	it, err = m.h.convertFlagged(m.ctx, m.s, m.f, mm, fl, wr, opts)
	if err == nil || wr.err != nil || environmentFailure(m.ctx, err) {
		return it, nil, err
	}
	return nil, err, nil
}

// convert renders one message as ApplicationData (it.Node); the caller
// closes the item once its Node is encoded.
func (h *Handler) convert(ctx context.Context, s *Session, f *folderView, mm MailMeta, body io.Reader, opts email.Options) (*email.Item, error) {
	fl, err := h.flagOf(ctx, s, f, mm)
	if err != nil {
		return nil, err
	}
	return h.convertFlagged(ctx, s, f, mm, fl, body, opts)
}

// convertFlagged is convert with the message's follow-up flag known.
func (h *Handler) convertFlagged(ctx context.Context, s *Session, f *folderView, mm MailMeta, fl *email.Flag, body io.Reader, opts email.Options) (*email.Item, error) {
	id := serverID(f.ID, mm.UID)
	opts.FileRef = func(part string) string { return id + ":" + part }
	meta := email.Meta{
		Read:       mm.Flags&FlagSeen != 0,
		Categories: categoriesOf(mm.Keywords),
		Received:   mm.Date,
		Size:       mm.Size,
		Answered:   mm.Flags&FlagAnswered != 0,
		Forwarded:  mm.Flags&FlagForwarded != 0,
		Flag:       fl,
	}
	it, err := email.Convert(body, meta, opts)
	if err != nil {
		return nil, fmt.Errorf("converting message %s: %w", id, err)
	}
	h.meetingMail(ctx, s, it.Meeting()) // meeting.go: the calendar side of meeting messages
	return it, nil
}

// convertNode is convert for a response built as a tree: the item is
// closed after the response is written.
func (h *Handler) convertNode(ctx context.Context, s *Session, f *folderView, mm MailMeta, body io.Reader, opts email.Options) (*wbxml.Node, error) {
	it, err := h.convert(ctx, s, f, mm, body, opts)
	if err != nil {
		return nil, err
	}
	s.OnDone(func() { it.Close() })
	return it.Node, nil
}

// changeNode is a Change of a message's flags and categories.
func (m *mailSync) changeNode(ctx context.Context, mm MailMeta) (*wbxml.Node, error) {
	app := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, boolText(mm.Flags&FlagSeen != 0)))
	fl, err := m.h.flagOf(ctx, m.s, m.f, mm)
	if err != nil {
		return nil, err
	}
	app.Append(email.FlagNode(fl))
	if versionAtLeast(m.c.opts.Version, "14.0") {
		cats := wbxml.E(wbxml.EmailCategories)
		for _, k := range categoriesOf(mm.Keywords) {
			cats.Append(wbxml.T(wbxml.EmailCategory, k))
		}
		app.Append(cats)
	}
	return wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, serverID(m.c.id, mm.UID)), app), nil
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// fillResponses appends the Responses element, if any.
func (m *mailSync) fillResponses(n *wbxml.Node) {
	if len(m.responses) > 0 {
		n.Append(wbxml.E(wbxml.AirSyncResponses, m.responses...))
	}
}

// folderErr maps a backend error on this collection's folder.
func (m *mailSync) folderErr(err error) error {
	if errors.Is(err, ErrMailFolderGone) {
		// The folder vanished upstream: syncCollection answers this
		// collection with status 12 (FolderSync needed).
		return err
	}
	return mailError(err)
}

// flagKey is the per-user setting holding a message's follow-up flag
// details (dates, completion), which IMAP flags cannot carry.
func flagKey(f *folderView, uid uint32) string {
	return "mailflag/" + f.name + "/" + strconv.FormatUint(uint64(uid), 10)
}

// flagOf returns the follow-up flag of a message: \Flagged is an active
// flag, with the dates the device set if we stored them; a flag marked
// complete is kept in the store only.
func (h *Handler) flagOf(ctx context.Context, s *Session, f *folderView, mm MailMeta) (*email.Flag, error) {
	raw, err := h.deps.Store.UserSetting(ctx, s.User.ID, flagKey(f, mm.UID))
	var stored *email.Flag
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		stored = new(email.Flag)
		if json.Unmarshal(raw, stored) != nil || stored.Status == 0 {
			stored = nil
		}
	}
	if mm.Flags&FlagFlagged != 0 {
		if stored != nil && stored.Status == 2 {
			return stored, nil
		}
		return &email.Flag{Status: 2, Type: "Flag for follow up"}, nil
	}
	if stored != nil && stored.Status == 1 {
		return stored, nil
	}
	return nil, nil
}

// Categories are IMAP keywords (RFC 9051 2.3.2). A category that is not a
// valid atom (spaces, non-ASCII) is stored as "$cat_" + base32 of its
// UTF-8; other keywords starting with '$' are the server's or other
// clients' (e.g. $Forwarded, $Junk) and are not categories.
const catPrefix = "$cat_"

var catEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

func categoriesOf(kw []string) []string {
	var out []string
	for _, k := range kw {
		switch {
		case strings.HasPrefix(k, catPrefix):
			b, err := catEnc.DecodeString(strings.ToUpper(k[len(catPrefix):]))
			if err == nil {
				out = append(out, string(b))
			}
		case strings.HasPrefix(k, "$"), strings.HasPrefix(k, "\\"):
		default:
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return out
}

func keywordOf(cat string) string {
	atom := cat != ""
	for _, r := range cat {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"\]$`, r) {
			atom = false
			break
		}
	}
	if atom {
		return cat
	}
	return catPrefix + catEnc.EncodeToString([]byte(cat))
}
