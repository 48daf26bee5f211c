package imapbridge

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/easd/easd/internal/testenv"
)

// ld is a LIST answer for classifyFolders.
func ld(name string, delim rune, attrs ...imap.MailboxAttr) *imap.ListData {
	return &imap.ListData{Mailbox: name, Delim: delim, Attrs: attrs}
}

func TestClassifyFolders(t *testing.T) {
	const (
		inbox   = FolderTypeInbox
		drafts  = FolderTypeDrafts
		deleted = FolderTypeDeleted
		sent    = FolderTypeSent
		mail    = FolderTypeUserMail
	)
	// f is a selectable folder with delimiter '/'.
	f := func(name, parent, display string, typ int) Folder {
		return Folder{Name: name, Delimiter: '/', Parent: parent, DisplayName: display, Type: typ}
	}
	noSelect := func(name, parent, display string) Folder {
		return Folder{Name: name, Delimiter: '/', Parent: parent, DisplayName: display, Type: mail, NoSelect: true}
	}
	tests := []struct {
		name string
		list []*imap.ListData
		want []Folder
	}{
		{
			name: "special-use attributes win over names; shortest name of several",
			list: []*imap.ListData{
				ld("Sent Messages", '/', imap.MailboxAttrSent),
				ld("Drafts", '/'),
				ld("Entwürfe", '/', imap.MailboxAttrDrafts),
				ld("Sent", '/', imap.MailboxAttrSent),
				ld("Deleted Messages", '/', imap.MailboxAttrTrash),
				ld("Trash", '/', imap.MailboxAttrHasNoChildren),
				ld("Junk", '/', imap.MailboxAttrJunk),
				ld("INBOX", '/'),
			},
			want: []Folder{
				f("INBOX", "", "INBOX", inbox),
				f("Deleted Messages", "", "Deleted Messages", deleted),
				f("Drafts", "", "Drafts", mail),
				f("Entwürfe", "", "Entwürfe", drafts),
				f("Junk", "", "Junk", mail),
				f("Sent", "", "Sent", sent),
				f("Sent Messages", "", "Sent Messages", mail),
				f("Trash", "", "Trash", mail),
			},
		},
		{
			name: "German names without attributes; nested well-known names are not special",
			list: []*imap.ListData{
				ld("Inbox", '/'),
				ld("Projekte/Entwürfe", '/'),
				ld("Projekte", '/', imap.MailboxAttrHasChildren),
				ld("Gesendete Objekte", '/'),
				ld("ENTWÜRFE", '/'),
				ld("Papierkorb", '/'),
				ld("Spam", '/'),
			},
			want: []Folder{
				f("Inbox", "", "Inbox", inbox),
				f("ENTWÜRFE", "", "ENTWÜRFE", drafts),
				f("Gesendete Objekte", "", "Gesendete Objekte", sent),
				f("Papierkorb", "", "Papierkorb", deleted),
				f("Projekte", "", "Projekte", mail),
				f("Projekte/Entwürfe", "Projekte", "Entwürfe", mail),
				f("Spam", "", "Spam", mail),
			},
		},
		{
			name: "French, Outlook and Apple names; the shortest wins",
			list: []*imap.ListData{
				ld("inbox", '/'),
				ld("Deleted Items", '/'),
				ld("Corbeille", '/'),
				ld("Sent Items", '/'),
				ld("Sent Messages", '/'),
				ld("Brouillons", '/'),
			},
			want: []Folder{
				f("inbox", "", "inbox", inbox),
				f("Brouillons", "", "Brouillons", drafts),
				f("Corbeille", "", "Corbeille", deleted),
				f("Deleted Items", "", "Deleted Items", mail),
				f("Sent Items", "", "Sent Items", sent),
				f("Sent Messages", "", "Sent Messages", mail),
			},
		},
		{
			name: "Courier-style folders below INBOX",
			list: []*imap.ListData{
				ld("INBOX", '.', imap.MailboxAttrHasChildren),
				ld("INBOX.Trash", '.'),
				ld("INBOX.Sent", '.'),
				ld("INBOX.Drafts", '.'),
				ld("INBOX.Work.Sent", '.'),
			},
			want: []Folder{
				{Name: "INBOX", Delimiter: '.', DisplayName: "INBOX", Type: inbox},
				{Name: "INBOX.Drafts", Delimiter: '.', Parent: "INBOX", DisplayName: "Drafts", Type: drafts},
				{Name: "INBOX.Sent", Delimiter: '.', Parent: "INBOX", DisplayName: "Sent", Type: sent},
				{Name: "INBOX.Trash", Delimiter: '.', Parent: "INBOX", DisplayName: "Trash", Type: deleted},
				{Name: "INBOX.Work", Delimiter: '.', Parent: "INBOX", DisplayName: "Work", Type: mail, NoSelect: true},
				{Name: "INBOX.Work.Sent", Delimiter: '.', Parent: "INBOX.Work", DisplayName: "Sent", Type: mail},
			},
		},
		{
			name: "parents: \\Noselect kept, \\NonExistent and unlisted ones made NoSelect",
			list: []*imap.ListData{
				ld("Projects/2026/Q1", '/'),
				ld("Projects/2026", '/', imap.MailboxAttrNonExistent, imap.MailboxAttrHasChildren),
				ld("Gone", '/', imap.MailboxAttrNonExistent),
				ld("a/b/c", '/'),
				ld("Old", '/', imap.MailboxAttrNoSelect, imap.MailboxAttrHasChildren),
				ld("Old/2019", '/'),
				ld("Trash", '/', imap.MailboxAttrNoSelect, imap.MailboxAttrTrash),
				ld("Trash/x", '/'),
				ld("INBOX", '/'),
				ld("INBOX", '/'), // repeated
			},
			want: []Folder{
				f("INBOX", "", "INBOX", inbox),
				noSelect("a", "", "a"),
				noSelect("a/b", "a", "b"),
				f("a/b/c", "a/b", "c", mail),
				noSelect("Old", "", "Old"),
				f("Old/2019", "Old", "2019", mail),
				noSelect("Projects", "", "Projects"),
				noSelect("Projects/2026", "Projects", "2026"),
				f("Projects/2026/Q1", "Projects/2026", "Q1", mail),
				noSelect("Trash", "", "Trash"),
				f("Trash/x", "Trash", "x", mail),
			},
		},
		{
			name: "flat namespace, odd names",
			list: []*imap.ListData{
				ld("INBOX", 0),
				ld("Sent/2026", 0),
				ld("/lead", '/'),
				ld("trail/", '/'),
			},
			want: []Folder{
				{Name: "INBOX", DisplayName: "INBOX", Type: inbox},
				{Name: "/lead", Delimiter: '/', DisplayName: "/lead", Type: mail},
				{Name: "Sent/2026", DisplayName: "Sent/2026", Type: mail},
				{Name: "trail/", Delimiter: '/', DisplayName: "trail/", Type: mail},
			},
		},
		{
			name: "status gives UIDValidity",
			list: []*imap.ListData{
				{Mailbox: "INBOX", Delim: '/', Status: &imap.StatusData{Mailbox: "INBOX", UIDValidity: 7}},
			},
			want: []Folder{{Name: "INBOX", Delimiter: '/', DisplayName: "INBOX", Type: inbox, UIDValidity: 7}},
		},
		{name: "empty", list: nil, want: []Folder{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classifyFolders(tt.list)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("classifyFolders: -want +got:\n%s", diff)
			}
		})
	}
}

func TestListFoldersDovecot(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	p := newTestPool(t, d.Addr, PoolOptions{})
	conn := acquire(t, p, "alice", "pw")
	defer conn.Release()
	c := conn.Client()
	for _, cp := range []imap.Cap{imap.CapListExtended, imap.CapSpecialUse, imap.CapListStatus} {
		if !c.Caps().Has(cp) {
			t.Errorf("Dovecot does not advertise %s", cp)
		}
	}
	// Dovecot's Maildir++ delimiter is ".".
	for _, name := range []string{"Projects.2026.Q1", "Entwürfe-alt", "Sent Items", "Archive.Drafts"} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %q: %v", name, err)
		}
	}
	list := func() []Folder {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		folders, err := ListFolders(ctx, c)
		if err != nil {
			t.Fatalf("ListFolders: %v", err)
		}
		return folders
	}
	folder := func(name, parent, display string, typ int) Folder {
		return Folder{Name: name, Delimiter: '.', Parent: parent, DisplayName: display, Type: typ}
	}
	want := []Folder{
		folder("INBOX", "", "INBOX", FolderTypeInbox),
		folder("Archive", "", "Archive", FolderTypeUserMail),
		folder("Archive.Drafts", "Archive", "Drafts", FolderTypeUserMail),
		folder("Drafts", "", "Drafts", FolderTypeDrafts),
		folder("Entwürfe-alt", "", "Entwürfe-alt", FolderTypeUserMail),
		folder("Junk", "", "Junk", FolderTypeUserMail),
		folder("Projects", "", "Projects", FolderTypeUserMail),
		folder("Projects.2026", "Projects", "2026", FolderTypeUserMail),
		folder("Projects.2026.Q1", "Projects.2026", "Q1", FolderTypeUserMail),
		folder("Sent", "", "Sent", FolderTypeSent),
		folder("Sent Items", "", "Sent Items", FolderTypeUserMail),
		folder("Trash", "", "Trash", FolderTypeDeleted),
	}
	// Maildir++ has no directory for the parents of Projects.2026.Q1,
	// nor for Archive (Dovecot lists them \NonExistent).
	for _, i := range []int{1, 6, 7} {
		want[i].NoSelect = true
	}
	got := list()
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Folder{}, "UIDValidity")); diff != "" {
		t.Fatalf("ListFolders: -want +got:\n%s", diff)
	}
	uidValidity := make(map[string]uint32)
	for _, f := range got {
		if (f.UIDValidity != 0) == f.NoSelect {
			t.Errorf("%q: UIDValidity %d, NoSelect %v; want a UIDValidity for selectable folders only", f.Name, f.UIDValidity, f.NoSelect)
		}
		if f.MailboxID != "" {
			t.Errorf("%q: MailboxID %q; go-imap beta.8 cannot give one", f.Name, f.MailboxID)
		}
		uidValidity[f.Name] = f.UIDValidity
	}

	// A renamed folder keeps its UIDVALIDITY, by which the FolderSync
	// layer keeps its ServerId; a new folder by the old name gets another.
	for _, r := range [][2]string{{"Entwürfe-alt", "Projects.Entwürfe"}, {"Projects.2026.Q1", "Projects.2026.Q2"}} {
		if err := c.Rename(r[0], r[1], nil).Wait(); err != nil {
			t.Fatalf("RENAME %q %q: %v", r[0], r[1], err)
		}
	}
	if err := c.Create("Entwürfe-alt", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	after := make(map[string]Folder)
	for _, f := range list() {
		after[f.Name] = f
	}
	for _, tt := range []struct{ old, new string }{
		{"Entwürfe-alt", "Projects.Entwürfe"},
		{"Projects.2026.Q1", "Projects.2026.Q2"},
	} {
		f, ok := after[tt.new]
		if !ok {
			t.Errorf("%q (renamed from %q) not listed", tt.new, tt.old)
			continue
		}
		if f.UIDValidity != uidValidity[tt.old] {
			t.Errorf("%q renamed to %q: UIDValidity %d, was %d", tt.old, tt.new, f.UIDValidity, uidValidity[tt.old])
		}
		if f.Type != FolderTypeUserMail || f.Parent == "" {
			t.Errorf("%q: %+v", tt.new, f)
		}
	}
	if f := after["Entwürfe-alt"]; f.UIDValidity == 0 || f.UIDValidity == uidValidity["Entwürfe-alt"] {
		t.Errorf("new Entwürfe-alt: UIDValidity %d, the old one had %d; want another", f.UIDValidity, uidValidity["Entwürfe-alt"])
	}
}

// scriptedIMAP serves one IMAP connection over a pipe: it greets with
// caps, then answers each command with answer(command) (untagged lines,
// then the tagged status without tag), or not at all if answer returns
// "". It returns the client.
func scriptedIMAP(t *testing.T, caps string, answer func(cmd string) (untagged []string, status string)) *imapclient.Client {
	t.Helper()
	server, client := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		w := bufio.NewWriter(server)
		w.WriteString("* OK [CAPABILITY " + caps + "] scripted\r\n")
		w.Flush()
		r := bufio.NewReader(server)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			untagged, status := answer(cmd)
			if status == "" {
				continue
			}
			for _, u := range untagged {
				w.WriteString("* " + u + "\r\n")
			}
			w.WriteString(tag + " " + status + "\r\n")
			if w.Flush() != nil {
				return
			}
		}
	}()
	c := imapclient.New(client, nil)
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c
}

func TestListFoldersPlainList(t *testing.T) {
	t.Parallel()
	var cmds []string
	c := scriptedIMAP(t, "IMAP4rev1", func(cmd string) ([]string, string) {
		cmds = append(cmds, cmd)
		return []string{
			`LIST (\HasNoChildren) "/" INBOX`,
			`LIST (\HasNoChildren) "/" "Entw&APw-rfe"`, // modified UTF-7
			`LIST (\HasNoChildren) "/" "Gesendet"`,
			`LIST (\Noselect \HasChildren) "/" "Archiv"`,
			`LIST (\HasNoChildren) "/" "Archiv/Papierkorb"`,
		}, "OK done"
	})
	got, err := ListFolders(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`LIST "" "*"`}; !cmp.Equal(cmds, want) {
		t.Errorf("commands %q; want %q", cmds, want)
	}
	want := []Folder{
		{Name: "INBOX", Delimiter: '/', DisplayName: "INBOX", Type: FolderTypeInbox},
		{Name: "Archiv", Delimiter: '/', DisplayName: "Archiv", Type: FolderTypeUserMail, NoSelect: true},
		{Name: "Archiv/Papierkorb", Delimiter: '/', Parent: "Archiv", DisplayName: "Papierkorb", Type: FolderTypeUserMail},
		{Name: "Entwürfe", Delimiter: '/', DisplayName: "Entwürfe", Type: FolderTypeDrafts},
		{Name: "Gesendet", Delimiter: '/', DisplayName: "Gesendet", Type: FolderTypeSent},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListFolders: -want +got:\n%s", diff)
	}
}

func TestListFoldersFallsBackWhenExtendedListIsRefused(t *testing.T) {
	t.Parallel()
	var cmds []string
	c := scriptedIMAP(t, "IMAP4rev1 LIST-EXTENDED SPECIAL-USE LIST-STATUS", func(cmd string) ([]string, string) {
		cmds = append(cmds, cmd)
		if strings.Contains(cmd, "RETURN") {
			return nil, "BAD not today"
		}
		return []string{`LIST (\Sent) "." "Sent"`, `LIST () "." INBOX`}, "OK done"
	})
	got, err := ListFolders(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 2 || !strings.Contains(cmds[0], "SPECIAL-USE") || !strings.Contains(cmds[0], "STATUS (UIDVALIDITY)") || cmds[1] != `LIST "" "*"` {
		t.Errorf("commands %q; want an extended LIST then a plain one", cmds)
	}
	want := []Folder{
		{Name: "INBOX", Delimiter: '.', DisplayName: "INBOX", Type: FolderTypeInbox},
		{Name: "Sent", Delimiter: '.', DisplayName: "Sent", Type: FolderTypeSent},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListFolders: -want +got:\n%s", diff)
	}
}

func TestListFoldersError(t *testing.T) {
	t.Parallel()
	c := scriptedIMAP(t, "IMAP4rev1", func(string) ([]string, string) { return nil, "NO [UNAVAILABLE] later" })
	_, err := ListFolders(t.Context(), c)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("ListFolders: %v; want ErrUnavailable", err)
	}
}

func TestListFoldersContext(t *testing.T) {
	t.Parallel()
	listed := make(chan struct{}, 1)
	c := scriptedIMAP(t, "IMAP4rev1", func(cmd string) ([]string, string) {
		listed <- struct{}{}
		return nil, "" // never answers
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-listed
		cancel()
	}()
	_, err := ListFolders(ctx, c)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ListFolders: %v; want context.Canceled", err)
	}
	// The cleanup closes the client, ending ListFolders' goroutine.

	if _, err := ListFolders(ctx, c); err != context.Canceled {
		t.Errorf("ListFolders with an ended context: %v; want context.Canceled", err)
	}
}
