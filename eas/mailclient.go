package eas

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/wbxml"
)

// clientCommands applies a Sync request's Commands (MS-ASCMD 2.2.3.32):
// Change (Read, Flag, Categories), Delete and Fetch. Applying them twice,
// as a retried request does, has the same effect as once. The state
// records the device's own changes so they are not sent back to it.
func (m *mailSync) clientCommands(ctx context.Context) error {
	if m.c.commands == nil {
		return nil
	}
	var deletes []uint32
	var deleteIDs []string
	for _, cmd := range m.c.commands.Children {
		switch cmd.Tag {
		case wbxml.AirSyncChange:
			if err := m.clientChange(ctx, cmd); err != nil {
				return err
			}
		case wbxml.AirSyncDelete:
			id := cmd.ChildText(wbxml.AirSyncServerId)
			fid, uid, ok := parseServerID(id)
			if _, known := m.st.Items[uid]; !ok || fid != m.c.id || !known {
				// Deleting what the device does not have (any more) is no
				// error, and never touches a message it was not sent.
				continue
			}
			deletes = append(deletes, uid)
			deleteIDs = append(deleteIDs, id)
		case wbxml.AirSyncFetch:
			if err := m.clientFetch(ctx, cmd.ChildText(wbxml.AirSyncServerId)); err != nil {
				return err
			}
		case wbxml.AirSyncAdd:
			// Email Adds are drafts (16.0+), not offered here.
			m.responses = append(m.responses, wbxml.E(wbxml.AirSyncAdd,
				wbxml.T(wbxml.AirSyncClientId, cmd.ChildText(wbxml.AirSyncClientId)),
				wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncConversionError))))
		}
	}
	if len(deletes) > 0 {
		trash := ""
		if m.c.deletesAsMoves {
			if t := m.hr.ofType(folderDeleted); t != nil && t.name != m.f.name {
				trash = t.name
			}
		}
		if err := m.h.deps.Mail.Delete(ctx, m.s.Account, m.f.name, deletes, trash); err != nil {
			return m.folderErr(err)
		}
		for _, uid := range deletes {
			if _, ok := m.st.Items[uid]; ok {
				delete(m.st.Items, uid)
				m.dirty = true
			}
		}
		m.s.Log.Debug("deleted by device", "ids", deleteIDs, "trash", trash)
	}
	return nil
}

// clientChange applies one Change: only Read, Flag and Categories of an
// email can change (MS-ASEMAIL 2.2.2.52, 2.2.2.27, 2.2.2.12).
func (m *mailSync) clientChange(ctx context.Context, cmd *wbxml.Node) error {
	id := cmd.ChildText(wbxml.AirSyncServerId)
	fid, uid, ok := parseServerID(id)
	it, known := m.st.Items[uid]
	if !ok || fid != m.c.id || !known {
		m.responses = append(m.responses, wbxml.E(wbxml.AirSyncChange,
			wbxml.T(wbxml.AirSyncServerId, id), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncObjectNotFound))))
		return nil
	}
	app := cmd.Child(wbxml.AirSyncApplicationData)
	var ch FlagChange
	if r := app.Child(wbxml.EmailRead); r != nil {
		v := r.Text() == "1"
		ch.Seen = &v
		it.Flags = setFlag(it.Flags, FlagSeen, v)
	}
	if fn := app.Child(wbxml.EmailFlag); fn != nil {
		fl, err := email.ParseFlag(fn)
		if err != nil {
			m.responses = append(m.responses, wbxml.E(wbxml.AirSyncChange,
				wbxml.T(wbxml.AirSyncServerId, id), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncConversionError))))
			return nil
		}
		v := fl != nil && fl.Status == 2
		ch.Flagged = &v
		it.Flags = setFlag(it.Flags, FlagFlagged, v)
		if err := m.storeFlag(ctx, uid, fl); err != nil {
			return err
		}
	}
	if cn := app.Child(wbxml.EmailCategories); cn != nil {
		kws := []string{}
		for c := range cn.Each(wbxml.EmailCategory) {
			kws = append(kws, keywordOf(c.Text()))
		}
		ch.Keywords = &kws
		it.Kw = kwHash(categoriesOf(kws))
	}
	if ch.Seen == nil && ch.Flagged == nil && ch.Keywords == nil {
		return nil
	}
	if err := m.h.deps.Mail.SetFlags(ctx, m.s.Account, m.f.name, uid, ch); err != nil {
		return m.folderErr(err)
	}
	m.st.Items[uid] = it
	m.dirty = true
	return nil
}

func setFlag(f, bit MailFlags, on bool) MailFlags {
	if on {
		return f | bit
	}
	return f &^ bit
}

// storeFlag keeps the flag's details (dates, completion) that IMAP's
// \Flagged cannot hold.
func (m *mailSync) storeFlag(ctx context.Context, uid uint32, fl *email.Flag) error {
	if fl == nil {
		fl = &email.Flag{}
	}
	b, err := json.Marshal(fl)
	if err != nil {
		return err
	}
	return m.h.deps.Store.PutUserSetting(ctx, m.s.User.ID, flagKey(m.f, uid), b)
}

// clientFetch answers a Sync Fetch (MS-ASCMD 2.2.3.68.1) in Responses.
func (m *mailSync) clientFetch(ctx context.Context, id string) error {
	fid, uid, ok := parseServerID(id)
	notFound := wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, id), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncObjectNotFound)))
	if !ok || fid != m.c.id {
		m.responses = append(m.responses, notFound)
		return nil
	}
	var node *wbxml.Node
	err := m.h.deps.Mail.Fetch(ctx, m.s.Account, m.f.name, []uint32{uid}, func(mm MailMeta, body io.Reader) error {
		n, err := m.h.convertNode(ctx, m.s, m.f, mm, body, m.c.opts)
		node = n
		return err
	})
	var ie *MailItemError
	switch {
	case errors.Is(err, ErrMailFolderGone):
		m.responses = append(m.responses, notFound)
		return nil
	case errors.As(err, &ie):
		// The upstream refuses this one message: status 6 for it
		// (MS-ASCMD 2.2.3.177.17, error in client/server conversion)
		// instead of failing the whole Sync, which the phone would
		// retry for ever.
		m.s.Log.Warn("fetch refused by the upstream", "item", id, "err", err)
		m.responses = append(m.responses, wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, id), wbxml.T(wbxml.AirSyncStatus, "6")))
		return nil
	case err != nil:
		return mailError(err)
	case node == nil:
		m.responses = append(m.responses, notFound)
		return nil
	}
	m.responses = append(m.responses, wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, id),
		wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncOK)), node))
	return nil
}
