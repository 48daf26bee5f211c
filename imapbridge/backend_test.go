package imapbridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/testenv"
)

// backendEnv is a Dovecot with user alice, a Backend over a pool to it,
// and a client of its own, for changes by "another device".
type backendEnv struct {
	d    *testenv.DovecotServer
	pool *Pool
	b    *Backend
	acct eas.MailAccount
	// other is a connection of alice outside the pool.
	other *imapclient.Client
}

func newBackendEnv(t *testing.T, popts PoolOptions, bopts BackendOptions) *backendEnv {
	t.Helper()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	return newBackendEnvAt(t, d, d.Addr, popts, bopts)
}

// newBackendEnvAt is newBackendEnv with the pool connecting to addr (a
// proxy of d).
func newBackendEnvAt(t *testing.T, d *testenv.DovecotServer, addr string, popts PoolOptions, bopts BackendOptions) *backendEnv {
	t.Helper()
	p := newTestPool(t, addr, popts)
	return &backendEnv{
		d:     d,
		pool:  p,
		b:     NewBackend(p, bopts),
		acct:  eas.MailAccount{Login: "alice", Password: "pw"},
		other: loggedIn(t, d.Addr, "alice", "pw"),
	}
}

// loggedIn returns a client logged in at addr, closed when t ends.
func loggedIn(t *testing.T, addr, user, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	return c
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawMessage returns a small message, different for each n.
func rawMessage(n int) []byte {
	return fmt.Appendf(nil, "From: a@example.org\r\nTo: alice@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody of message %d\r\n", n, n, n)
}

// appendMessage APPENDs raw to folder with date and flags, and returns
// its UID.
func appendMessage(t *testing.T, c *imapclient.Client, folder string, raw []byte, date time.Time, flags ...imap.Flag) uint32 {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: date})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %q: %v", folder, err)
	}
	return uint32(data.UID)
}

// store changes flags of uid in folder through c.
func store(t *testing.T, c *imapclient.Client, folder string, uid uint32, op imap.StoreFlagsOp, flags ...imap.Flag) {
	t.Helper()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
		t.Fatal(err)
	}
}

func (e *backendEnv) scan(t *testing.T, folder string, q eas.ScanQuery) eas.MailScan {
	t.Helper()
	s, err := e.b.Scan(ctx10s(t), e.acct, folder, q)
	if err != nil {
		t.Fatalf("Scan(%q, %+v): %v", folder, q, err)
	}
	return s
}

// fetched is what Fetch gave for one message.
type fetched struct {
	Meta eas.MailMeta
	Body string
}

func (e *backendEnv) fetchAll(t *testing.T, folder string, uids []uint32) []fetched {
	t.Helper()
	var got []fetched
	err := e.b.Fetch(ctx10s(t), e.acct, folder, uids, func(m eas.MailMeta, body io.Reader) error {
		b, err := io.ReadAll(body)
		got = append(got, fetched{m, string(b)})
		return err
	})
	if err != nil {
		t.Fatalf("Fetch(%q, %v): %v", folder, uids, err)
	}
	return got
}

// ignoreDates compares metas without their dates, checked apart.
var ignoreDates = cmpopts.IgnoreFields(eas.MailMeta{}, "Date")

func sortedMetas(ms []eas.MailMeta) []eas.MailMeta {
	return slices.SortedFunc(slices.Values(ms), func(a, b eas.MailMeta) int { return int(a.UID) - int(b.UID) })
}

func TestBackendFoldersStatusScan(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	var raws [][]byte
	for i := range 3 {
		raws = append(raws, rawMessage(i))
		e.d.Deliver(t, "alice", "INBOX", raws[i])
	}
	e.d.Deliver(t, "alice", "Work.Reports", rawMessage(9))

	folders, err := e.b.Folders(ctx10s(t), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]eas.MailFolder)
	var names []string
	for _, f := range folders {
		byName[f.Name] = f
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"INBOX", "Drafts", "Junk", "Sent", "Trash", "Work", "Work.Reports"}, names); diff != "" {
		t.Errorf("folder names (-want +got):\n%s", diff)
	}
	wantTypes := map[string]int{"INBOX": 2, "Drafts": 3, "Sent": 5, "Trash": 4, "Junk": 12, "Work.Reports": 12}
	for name, typ := range wantTypes {
		if f := byName[name]; f.Type != typ || f.UIDValidity == 0 || f.Delimiter != '.' {
			t.Errorf("folder %q: %+v; want type %d, a UIDValidity, delimiter '.'", name, f, typ)
		}
	}
	if f := byName["Work.Reports"]; f.Parent != "Work" || f.DisplayName != "Reports" || !byName["Work"].NoSelect {
		t.Errorf("Work.Reports: %+v, Work: %+v", f, byName["Work"])
	}

	st, err := e.b.Status(ctx10s(t), e.acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 3 || st.UIDNext != 4 || st.UIDValidity != byName["INBOX"].UIDValidity || st.HighestModSeq == 0 {
		t.Errorf("Status(INBOX) = %+v; want 3 messages, UIDNext 4, UIDValidity %d, a HighestModSeq", st, byName["INBOX"].UIDValidity)
	}

	s := e.scan(t, "INBOX", eas.ScanQuery{})
	if diff := cmp.Diff(st, s.Status); diff != "" {
		t.Errorf("Scan status differs from Status (-Status +Scan):\n%s", diff)
	}
	if diff := cmp.Diff([]uint32{1, 2, 3}, s.UIDs); diff != "" {
		t.Errorf("UIDs (-want +got):\n%s", diff)
	}
	var want []eas.MailMeta
	for i, raw := range raws {
		want = append(want, eas.MailMeta{UID: uint32(i + 1), Size: int64(len(raw))})
	}
	if diff := cmp.Diff(want, sortedMetas(s.Changed), ignoreDates, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Changed (-want +got):\n%s", diff)
	}
	for _, m := range s.Changed {
		if time.Since(m.Date) > time.Hour || time.Until(m.Date) > time.Minute {
			t.Errorf("message %d: internal date %v, want about now", m.UID, m.Date)
		}
	}

	// An empty folder.
	s = e.scan(t, "Sent", eas.ScanQuery{ChangedSince: 1})
	if s.Status.Messages != 0 || s.Status.UIDValidity == 0 || len(s.UIDs) != 0 || len(s.Changed) != 0 {
		t.Errorf("Scan(Sent) = %+v; want an empty folder", s)
	}
}

func TestBackendScanSince(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	dates := []time.Time{
		time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC),
		time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC),
		time.Date(2019, 3, 1, 12, 0, 0, 0, time.UTC), // appended late, dated early
		time.Date(2025, 2, 1, 12, 0, 0, 0, time.UTC),
	}
	for i, d := range dates {
		appendMessage(t, e.other, "INBOX", rawMessage(i), d)
	}
	s := e.scan(t, "INBOX", eas.ScanQuery{Since: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	if diff := cmp.Diff([]uint32{2, 4}, s.UIDs); diff != "" {
		t.Errorf("UIDs since 2024 (-want +got):\n%s", diff)
	}
	var got []uint32
	for _, m := range sortedMetas(s.Changed) {
		got = append(got, m.UID)
		if !m.Date.Equal(dates[m.UID-1]) {
			t.Errorf("message %d: date %v, want %v", m.UID, m.Date, dates[m.UID-1])
		}
	}
	if diff := cmp.Diff([]uint32{2, 4}, got); diff != "" {
		t.Errorf("Changed since 2024 (-want +got):\n%s", diff)
	}
	if s.Status.Messages != 4 {
		t.Errorf("Status.Messages = %d, want 4 (the whole folder)", s.Status.Messages)
	}
	s = e.scan(t, "INBOX", eas.ScanQuery{Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if len(s.UIDs) != 0 || len(s.Changed) != 0 {
		t.Errorf("Scan since 2026: %+v; want no messages", s)
	}
}

func TestBackendScanChangedSinceAndExpunged(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	for i := range 4 {
		appendMessage(t, e.other, "INBOX", rawMessage(i), time.Time{})
	}
	s0 := e.scan(t, "INBOX", eas.ScanQuery{})
	if len(s0.Changed) != 4 || s0.Status.HighestModSeq == 0 {
		t.Fatalf("first scan: %+v", s0)
	}
	store(t, e.other, "INBOX", 2, imap.StoreFlagsAdd, imap.FlagFlagged, "Work")
	store(t, e.other, "INBOX", 4, imap.StoreFlagsAdd, imap.FlagSeen, flagForwarded, "$MDNSent")
	s1 := e.scan(t, "INBOX", eas.ScanQuery{ChangedSince: s0.Status.HighestModSeq})
	want := []eas.MailMeta{
		{UID: 2, Flags: eas.FlagFlagged, Keywords: []string{"Work"}, Size: int64(len(rawMessage(1)))},
		{UID: 4, Flags: eas.FlagSeen | eas.FlagForwarded, Size: int64(len(rawMessage(3)))},
	}
	if diff := cmp.Diff(want, sortedMetas(s1.Changed), ignoreDates, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Changed since %d (-want +got):\n%s", s0.Status.HighestModSeq, diff)
	}
	if s1.Status.HighestModSeq <= s0.Status.HighestModSeq {
		t.Errorf("HighestModSeq %d after changes, was %d", s1.Status.HighestModSeq, s0.Status.HighestModSeq)
	}
	// Nothing changed since.
	if s := e.scan(t, "INBOX", eas.ScanQuery{ChangedSince: s1.Status.HighestModSeq}); len(s.Changed) != 0 || len(s.UIDs) != 4 {
		t.Errorf("scan with nothing changed: %+v", s)
	}

	// Expunged by another device: gone from the UIDs.
	store(t, e.other, "INBOX", 1, imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := e.other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	s2 := e.scan(t, "INBOX", eas.ScanQuery{ChangedSince: s1.Status.HighestModSeq})
	if diff := cmp.Diff([]uint32{2, 3, 4}, s2.UIDs); diff != "" {
		t.Errorf("UIDs after expunge (-want +got):\n%s", diff)
	}
	if s2.Status.Messages != 3 {
		t.Errorf("Messages = %d after expunge, want 3", s2.Status.Messages)
	}
}

func TestBackendScanWithoutCondStore(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	e.b.without = []imap.Cap{imap.CapCondStore, imap.CapESearch}
	for i := range 3 {
		appendMessage(t, e.other, "INBOX", rawMessage(i), time.Time{})
	}
	s := e.scan(t, "INBOX", eas.ScanQuery{ChangedSince: 1 << 40})
	if s.Status.HighestModSeq != 0 {
		t.Errorf("HighestModSeq = %d without CONDSTORE, want 0", s.Status.HighestModSeq)
	}
	if len(s.Changed) != 3 || !slices.Equal(s.UIDs, []uint32{1, 2, 3}) {
		t.Errorf("Scan without CONDSTORE = %+v; want every message in Changed", s)
	}
	st, err := e.b.Status(ctx10s(t), e.acct, "INBOX")
	if err != nil || st.HighestModSeq != 0 || st.Messages != 3 {
		t.Errorf("Status without CONDSTORE = %+v, %v", st, err)
	}
}

func TestBackendFetch(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{MaxPerUser: 1}, BackendOptions{FetchBatch: 2})
	date := time.Date(2025, 5, 4, 3, 2, 1, 0, time.UTC)
	var raws [][]byte
	for i := range 5 {
		raws = append(raws, rawMessage(i))
		appendMessage(t, e.other, "INBOX", raws[i], date, imap.FlagSeen)
	}
	got := e.fetchAll(t, "INBOX", []uint32{5, 3, 1, 99, 3, 4})
	var want []fetched
	for _, uid := range []uint32{1, 3, 4, 5} {
		raw := raws[uid-1]
		want = append(want, fetched{eas.MailMeta{UID: uid, Flags: eas.FlagSeen, Date: date, Size: int64(len(raw))}, string(raw)})
	}
	sortFetched := func(f []fetched) []fetched {
		return slices.SortedFunc(slices.Values(f), func(a, b fetched) int { return int(a.Meta.UID) - int(b.Meta.UID) })
	}
	if diff := cmp.Diff(want, sortFetched(got), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Fetch (-want +got):\n%s", diff)
	}

	// A callback that reads a few bytes only: the rest is skipped.
	var uids []uint32
	err := e.b.Fetch(ctx10s(t), e.acct, "INBOX", []uint32{1, 2, 3, 4, 5}, func(m eas.MailMeta, body io.Reader) error {
		buf := make([]byte, 6)
		if _, err := io.ReadFull(body, buf); err != nil {
			return err
		}
		if string(buf) != "From: " {
			t.Errorf("message %d starts with %q", m.UID, buf)
		}
		uids = append(uids, m.UID)
		return nil
	})
	if err != nil || !slices.Equal(uids, []uint32{1, 2, 3, 4, 5}) {
		t.Errorf("Fetch reading 6 bytes each: %v, %v", uids, err)
	}
	checkStats(t, e.pool, "alice", PoolStats{Open: 1, Idle: 1})

	// The callback's error stops Fetch, as is; the connection, in the
	// middle of a FETCH, is closed.
	errStop := errors.New("stop")
	calls := 0
	err = e.b.Fetch(ctx10s(t), e.acct, "INBOX", []uint32{1, 2, 3, 4, 5}, func(m eas.MailMeta, body io.Reader) error {
		calls++
		return errStop
	})
	if err != errStop || calls != 1 {
		t.Errorf("Fetch with failing callback: %v after %d calls; want %v after 1", err, calls, errStop)
	}
	checkStats(t, e.pool, "alice", PoolStats{})
	if got := e.fetchAll(t, "INBOX", []uint32{2}); len(got) != 1 || got[0].Body != string(raws[1]) {
		t.Errorf("Fetch after a failed one: %+v", got)
	}

	// A callback that panics: the panic goes through, the connection is
	// closed, not leaked.
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		_ = e.b.Fetch(ctx10s(t), e.acct, "INBOX", []uint32{1, 2, 3}, func(eas.MailMeta, io.Reader) error { panic("boom") })
	}()
	waitFor(t, "the connection discarded after a panic", func() bool { return e.pool.UserStats("alice") == PoolStats{} })
	if got := e.fetchAll(t, "INBOX", []uint32{3}); len(got) != 1 || got[0].Body != string(raws[2]) {
		t.Errorf("Fetch after a panic: %+v", got)
	}

	// Nothing to fetch: no connection needed.
	if err := e.b.Fetch(ctx10s(t), eas.MailAccount{Login: "alice", Password: "wrong"}, "INBOX", nil, nil); err != nil {
		t.Errorf("Fetch of no UIDs: %v", err)
	}
}

func TestBackendSetFlags(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	uid := appendMessage(t, e.other, "INBOX", rawMessage(1), time.Time{}, "$MDNSent", "Old")
	appendMessage(t, e.other, "INBOX", rawMessage(2), time.Time{})
	yes, no := true, false
	kw := func(k ...string) *[]string { return &k }
	meta := func() eas.MailMeta {
		t.Helper()
		for _, m := range e.scan(t, "INBOX", eas.ScanQuery{}).Changed {
			if m.UID == uid {
				return m
			}
		}
		t.Fatalf("message %d not found", uid)
		return eas.MailMeta{}
	}
	for _, tt := range []struct {
		ch        eas.FlagChange
		flags     eas.MailFlags
		keywords  []string
		wantFlags []imap.Flag // all IMAP flags, as another client sees them
	}{
		{eas.FlagChange{Seen: &yes, Flagged: &yes}, eas.FlagSeen | eas.FlagFlagged, []string{"Old"}, nil},
		{eas.FlagChange{Flagged: &no, Answered: &yes, Forwarded: &yes}, eas.FlagSeen | eas.FlagAnswered | eas.FlagForwarded, []string{"Old"}, nil},
		{eas.FlagChange{Keywords: kw("Work", "Red", "has space", "Ünicode")}, eas.FlagSeen | eas.FlagAnswered | eas.FlagForwarded, []string{"Red", "Work"}, nil},
		{eas.FlagChange{Seen: &no, Keywords: kw("work")}, eas.FlagAnswered | eas.FlagForwarded, []string{"Work"},
			[]imap.Flag{imap.FlagAnswered, "$Forwarded", "$MDNSent", "Work"}},
		{eas.FlagChange{Answered: &no, Forwarded: &no, Keywords: kw()}, 0, nil, []imap.Flag{"$MDNSent"}},
		{eas.FlagChange{}, 0, nil, nil},
	} {
		if err := e.b.SetFlags(ctx10s(t), e.acct, "INBOX", uid, tt.ch); err != nil {
			t.Fatalf("SetFlags(%+v): %v", tt.ch, err)
		}
		m := meta()
		if m.Flags != tt.flags || !slices.Equal(m.Keywords, tt.keywords) {
			t.Errorf("after SetFlags(%+v): flags %b keywords %q; want %b %q", tt.ch, m.Flags, m.Keywords, tt.flags, tt.keywords)
		}
		if tt.wantFlags != nil {
			if _, err := e.other.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			bufs, err := e.other.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{Flags: true}).Collect()
			if err != nil || len(bufs) != 1 {
				t.Fatalf("FETCH FLAGS: %v", err)
			}
			got := slices.Sorted(slices.Values(bufs[0].Flags))
			if diff := cmp.Diff(slices.Sorted(slices.Values(tt.wantFlags)), got); diff != "" {
				t.Errorf("after SetFlags(%+v), IMAP flags (-want +got):\n%s", tt.ch, diff)
			}
		}
	}
	// The other message is untouched.
	for _, m := range e.scan(t, "INBOX", eas.ScanQuery{}).Changed {
		if m.UID != uid && (m.Flags != 0 || len(m.Keywords) != 0) {
			t.Errorf("other message changed: %+v", m)
		}
	}
	// A message that is gone is no error.
	if err := e.b.SetFlags(ctx10s(t), e.acct, "INBOX", 999, eas.FlagChange{Seen: &yes, Keywords: kw("X")}); err != nil {
		t.Errorf("SetFlags of a missing message: %v", err)
	}
}

func TestBackendDelete(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		without []imap.Cap
	}{
		{"move", nil},
		{"copy", []imap.Cap{imap.CapMove}},
		{"no-uidplus", []imap.Cap{imap.CapMove, imap.CapUIDPlus}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
			e.b.without = tt.without
			for i := range 6 {
				appendMessage(t, e.other, "INBOX", rawMessage(i), time.Time{})
			}
			// Another client flagged message 6 \Deleted: it must survive.
			store(t, e.other, "INBOX", 6, imap.StoreFlagsAdd, imap.FlagDeleted)

			if err := e.b.Delete(ctx10s(t), e.acct, "INBOX", []uint32{2, 4, 77}, "Trash"); err != nil {
				t.Fatalf("Delete to Trash: %v", err)
			}
			if s := e.scan(t, "INBOX", eas.ScanQuery{}); !slices.Equal(s.UIDs, []uint32{1, 3, 5, 6}) {
				t.Errorf("INBOX after Delete to Trash: %v; want 1 3 5 6", s.UIDs)
			}
			trash := e.fetchAll(t, "Trash", []uint32{1, 2, 3})
			var bodies []string
			for _, f := range trash {
				bodies = append(bodies, f.Body)
				if f.Meta.Flags&eas.FlagDeleted != 0 {
					t.Errorf("message in Trash is \\Deleted: %+v", f.Meta)
				}
			}
			if diff := cmp.Diff([]string{string(rawMessage(1)), string(rawMessage(3))}, bodies); diff != "" {
				t.Errorf("Trash (-want +got):\n%s", diff)
			}

			// Expunged outright: no trash, or the folder is the trash.
			if err := e.b.Delete(ctx10s(t), e.acct, "INBOX", []uint32{1}, ""); err != nil {
				t.Fatal(err)
			}
			if err := e.b.Delete(ctx10s(t), e.acct, "Trash", []uint32{1}, "Trash"); err != nil {
				t.Fatal(err)
			}
			if s := e.scan(t, "INBOX", eas.ScanQuery{}); !slices.Equal(s.UIDs, []uint32{3, 5, 6}) {
				t.Errorf("INBOX after expunge: %v; want 3 5 6", s.UIDs)
			}
			if s := e.scan(t, "Trash", eas.ScanQuery{}); !slices.Equal(s.UIDs, []uint32{2}) {
				t.Errorf("Trash after expunge: %v; want 2", s.UIDs)
			}
			for _, m := range e.scan(t, "INBOX", eas.ScanQuery{}).Changed {
				if (m.UID == 6) != (m.Flags&eas.FlagDeleted != 0) {
					t.Errorf("message %d flags %b; only 6 should be \\Deleted", m.UID, m.Flags)
				}
			}

			// A trash folder that does not exist is created.
			if err := e.b.Delete(ctx10s(t), e.acct, "INBOX", []uint32{3}, "Deleted Items"); err != nil {
				t.Fatalf("Delete to a missing trash: %v", err)
			}
			if s := e.scan(t, "Deleted Items", eas.ScanQuery{}); len(s.UIDs) != 1 {
				t.Errorf("Deleted Items: %v; want one message", s.UIDs)
			}
		})
	}
}

func TestBackendFolderOperations(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	ctx := ctx10s(t)
	uidValidity := func() map[string]uint32 {
		t.Helper()
		folders, err := e.b.Folders(ctx, e.acct)
		if err != nil {
			t.Fatal(err)
		}
		m := make(map[string]uint32)
		for _, f := range folders {
			m[f.Name] = f.UIDValidity
		}
		return m
	}
	for _, name := range []string{"Projects", "Projects.2026", "Projects.2026.Q1", "Ärchiv"} {
		if err := e.b.CreateFolder(ctx, e.acct, name); err != nil {
			t.Fatalf("CreateFolder(%q): %v", name, err)
		}
	}
	if err := e.b.CreateFolder(ctx, e.acct, "Projects"); !errors.Is(err, ErrFolderExists) {
		t.Errorf("CreateFolder of an existing folder: %v; want ErrFolderExists", err)
	}
	appendMessage(t, e.other, "Projects.2026", rawMessage(1), time.Time{})
	before := uidValidity()
	if before["Ärchiv"] == 0 {
		t.Fatalf("created folder not listed: %v", before)
	}
	subs, err := e.other.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || !slices.ContainsFunc(subs, func(l *imap.ListData) bool { return l.Mailbox == "Ärchiv" }) {
		t.Errorf("created folder not subscribed: %v", err)
	}

	if err := e.b.RenameFolder(ctx, e.acct, "Projects.2026", "Archive 2026"); err != nil {
		t.Fatal(err)
	}
	after := uidValidity()
	if after["Archive 2026"] != before["Projects.2026"] || after["Archive 2026.Q1"] != before["Projects.2026.Q1"] {
		t.Errorf("UIDValidity not kept by rename: before %v, after %v", before, after)
	}
	if _, ok := after["Projects.2026"]; ok {
		t.Errorf("old name still listed: %v", after)
	}
	if s := e.scan(t, "Archive 2026", eas.ScanQuery{}); len(s.UIDs) != 1 {
		t.Errorf("renamed folder lost its message: %+v", s)
	}
	if err := e.b.RenameFolder(ctx, e.acct, "Ärchiv", "Projects"); !errors.Is(err, ErrFolderExists) {
		t.Errorf("RenameFolder onto an existing folder: %v; want ErrFolderExists", err)
	}
	if err := e.b.RenameFolder(ctx, e.acct, "Nope", "Nope2"); !errors.Is(err, eas.ErrMailFolderGone) {
		t.Errorf("RenameFolder of a missing folder: %v; want eas.ErrMailFolderGone", err)
	}

	// Deleting a folder deletes its children.
	if err := e.b.DeleteFolder(ctx, e.acct, "Archive 2026"); err != nil {
		t.Fatal(err)
	}
	final := uidValidity()
	for _, gone := range []string{"Archive 2026", "Archive 2026.Q1"} {
		if _, ok := final[gone]; ok {
			t.Errorf("%q still listed after DeleteFolder", gone)
		}
	}
	if _, ok := final["Projects"]; !ok {
		t.Errorf("Projects deleted too: %v", final)
	}
	if err := e.b.DeleteFolder(ctx, e.acct, "Archive 2026"); !errors.Is(err, eas.ErrMailFolderGone) {
		t.Errorf("DeleteFolder of a missing folder: %v; want eas.ErrMailFolderGone", err)
	}
}

func TestBackendErrors(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{MaxPerUser: 1}, BackendOptions{})
	ctx := ctx10s(t)
	bad := eas.MailAccount{Login: "alice", Password: "wrong"}
	if _, err := e.b.Folders(ctx, bad); !errors.Is(err, eas.ErrBadCredentials) || !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Folders with a wrong password: %v; want eas.ErrBadCredentials", err)
	}
	if _, err := e.b.Scan(ctx, bad, "INBOX", eas.ScanQuery{}); !errors.Is(err, eas.ErrBadCredentials) {
		t.Errorf("Scan with a wrong password: %v; want eas.ErrBadCredentials", err)
	}

	yes := true
	const missing = "No Such Folder"
	calls := map[string]func() error{
		"Status": func() error { _, err := e.b.Status(ctx, e.acct, missing); return err },
		"Scan":   func() error { _, err := e.b.Scan(ctx, e.acct, missing, eas.ScanQuery{}); return err },
		"Fetch": func() error {
			return e.b.Fetch(ctx, e.acct, missing, []uint32{1}, func(eas.MailMeta, io.Reader) error { return nil })
		},
		"SetFlags":     func() error { return e.b.SetFlags(ctx, e.acct, missing, 1, eas.FlagChange{Seen: &yes}) },
		"Delete":       func() error { return e.b.Delete(ctx, e.acct, missing, []uint32{1}, "Trash") },
		"DeleteFolder": func() error { return e.b.DeleteFolder(ctx, e.acct, missing) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, eas.ErrMailFolderGone) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s of a missing folder: %v; want eas.ErrMailFolderGone only", name, err)
		}
	}
	// A NO leaves the connection usable: it went back to the pool.
	checkStats(t, e.pool, "alice", PoolStats{Open: 1, Idle: 1})

	// An ended context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.b.Status(cctx, e.acct, "INBOX"); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Status with a cancelled context: %v", err)
	}
}

func TestBackendFetchContextCancelled(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{MaxPerUser: 1}, BackendOptions{})
	big := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 1<<14) // 1 MiB
	raw := append([]byte("Subject: big\r\n\r\n"), big...)
	appendMessage(t, e.other, "INBOX", raw, time.Time{})
	appendMessage(t, e.other, "INBOX", raw, time.Time{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := e.b.Fetch(ctx, e.acct, "INBOX", []uint32{1, 2}, func(m eas.MailMeta, body io.Reader) error {
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(body, buf); err != nil {
			return err
		}
		cancel()
		// Reading on fails, soon: the connection is closed.
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Fetch cancelled in the callback: %v; want context.Canceled and ErrUnavailable", err)
	}
	checkStats(t, e.pool, "alice", PoolStats{})
	if got := e.fetchAll(t, "INBOX", []uint32{2}); len(got) != 1 || got[0].Body != string(raw) {
		t.Errorf("Fetch after a cancelled one: %d messages", len(got))
	}
}

func TestBackendPoolBound(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	x := newProxy(t, d.Addr)
	e := newBackendEnvAt(t, d, x.addr(), PoolOptions{MaxPerUser: 2}, BackendOptions{FetchBatch: 3})
	var raws []string
	for i := range 10 {
		raws = append(raws, string(rawMessage(i)))
		appendMessage(t, e.other, "INBOX", rawMessage(i), time.Time{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := range 12 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s, err := e.b.Scan(t.Context(), e.acct, "INBOX", eas.ScanQuery{})
			if err == nil && len(s.UIDs) != 10 {
				err = fmt.Errorf("scan %d: %d UIDs", i, len(s.UIDs))
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			n := 0
			err := e.b.Fetch(t.Context(), e.acct, "INBOX", []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, func(m eas.MailMeta, body io.Reader) error {
				b, err := io.ReadAll(body)
				if err == nil && string(b) != raws[m.UID-1] {
					err = fmt.Errorf("message %d: wrong body", m.UID)
				}
				n++
				return err
			})
			if err == nil && n != 10 {
				err = fmt.Errorf("fetch %d: %d messages", i, n)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if c := x.counts(); c.Peak > 2 || c.Total > 2 {
		t.Errorf("connections through the proxy: %+v; want at most 2 at once, and reused", c)
	}
	if s := e.pool.UserStats("alice"); s.Open > 2 || s.InUse != 0 {
		t.Errorf("pool stats after the calls: %+v", s)
	}
}
