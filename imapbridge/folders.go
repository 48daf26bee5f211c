package imapbridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// EAS FolderHierarchy types (MS-ASCMD 2.2.3.186.3) of the folders that
// ListFolders returns. There is no Outbox (6) in IMAP: the FolderSync
// layer synthesises one, which ListFolders does not do. EAS has no type
// for junk mail: a \Junk folder is FolderTypeUserMail.
const (
	FolderTypeInbox      = 2
	FolderTypeDrafts     = 3
	FolderTypeDeleted    = 4
	FolderTypeSent       = 5
	FolderTypeOutbox     = 6
	FolderTypeUserMail   = 12
	folderTypeUnassigned = 0
)

// Folder is an IMAP mailbox as an EAS folder.
//
// A NoSelect folder exists only as the parent of others (an IMAP
// \Noselect or \NonExistent mailbox, or one missing from the listing
// whose children are there): EAS needs a complete parent chain. Present
// it to the device as an ordinary mail folder (FolderTypeUserMail) that
// is always empty: Sync and ItemOperations on it should answer with no
// items rather than fail, and it cannot receive messages (a MoveItems
// into it fails with SELECT).
type Folder struct {
	// Name is the full IMAP name, decoded from modified UTF-7 to UTF-8
	// (as go-imap does): pass it as is to SELECT, RENAME and the like.
	Name string
	// Delimiter is the hierarchy delimiter of the mailbox, 0 if the
	// server has none (a flat namespace).
	Delimiter rune
	// Parent is the IMAP name of the parent folder, "" at the top level.
	// The parent is always among the folders listed.
	Parent string
	// DisplayName is the last component of Name.
	DisplayName string
	// Type is the EAS folder type: FolderTypeInbox, FolderTypeDrafts,
	// FolderTypeDeleted or FolderTypeSent for exactly one folder each
	// (if the server has such a folder), FolderTypeUserMail otherwise.
	Type int
	// MailboxID is the RFC 8474 OBJECTID MAILBOXID, which survives
	// RENAME, when the server and the IMAP library provide it, else "".
	// With go-imap v2.0.0-beta.8 it is always "": the library can
	// neither request nor parse the MAILBOXID status item (and Dovecot
	// 2.3 does not implement OBJECTID). Use UIDValidity meanwhile.
	MailboxID string
	// UIDValidity is the UIDVALIDITY of the mailbox when the server has
	// LIST-STATUS (RFC 5819), else 0; always 0 for a NoSelect folder.
	// Dovecot keeps it across RENAME and gives a new mailbox a new one,
	// so the FolderSync layer can match a name that vanished with one
	// that appeared to keep a renamed folder's ServerId. It is not
	// guaranteed unique across mailboxes: match only among those
	// changed.
	UIDValidity uint32
	// NoSelect reports a folder that cannot be selected: see Folder.
	NoSelect bool
}

// ListFolders lists the folders of the user of c, parents before
// children, each level in a stable order (INBOX first, then by display
// name, ignoring case). It sends LIST "" "*"; if the server advertises
// LIST-EXTENDED (or IMAP4rev2), it asks for SPECIAL-USE attributes and
// STATUS (UIDVALIDITY) as far as SPECIAL-USE and LIST-STATUS are
// advertised, and falls back to the plain LIST if the server rejects
// that. INBOX, and one folder each of Drafts, Deleted Items and Sent
// Items are typed as classifyFolders explains: by SPECIAL-USE attributes,
// else by well-known names in several languages.
//
// The IMAP client does not watch ctx: if ctx ends before the server
// answers, ListFolders returns ctx.Err() at once, leaving the LIST in
// progress. The caller must then close the connection (Conn.Discard for
// a pooled one), which also ends the goroutine still waiting for the
// answer; it must not Release it. Other errors wrap ErrUnavailable; after
// them too, Discard the connection.
func ListFolders(ctx context.Context, c *imapclient.Client) ([]Folder, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type result struct {
		data []*imap.ListData
		err  error
	}
	done := make(chan result, 1) // never blocks: the goroutine may outlive us
	go func() {
		opts := listOptions(c.Caps()) // may send CAPABILITY, hence here
		data, err := c.List("", "*", opts).Collect()
		var imapErr *imap.Error
		if opts != nil && errors.As(err, &imapErr) {
			// Advertised but refused (BAD, NO): try the plain LIST.
			data, err = c.List("", "*", nil).Collect()
		}
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("%w: LIST: %w", ErrUnavailable, r.err)
		}
		return classifyFolders(r.data), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// listOptions returns the LIST options that caps allow, or nil for a
// plain LIST.
func listOptions(caps imap.CapSet) *imap.ListOptions {
	if !caps.Has(imap.CapListExtended) {
		return nil // not even RETURN: IMAP4rev2 implies LIST-EXTENDED
	}
	var opts imap.ListOptions
	if caps.Has(imap.CapSpecialUse) {
		opts.ReturnSpecialUse = true
	}
	if caps.Has(imap.CapListStatus) {
		opts.ReturnStatus = &imap.StatusOptions{UIDValidity: true}
	}
	if opts == (imap.ListOptions{}) {
		return nil
	}
	return &opts
}

// specialFolder describes how one special EAS folder type is found.
type specialFolder struct {
	typ  int
	attr imap.MailboxAttr
	// names are well-known names, compared to display names without
	// regard to case, for servers without SPECIAL-USE attributes.
	names []string
}

// specialFolders are in order of precedence, should a folder qualify for
// several.
var specialFolders = []specialFolder{
	{FolderTypeDrafts, imap.MailboxAttrDrafts, []string{
		"Drafts", "Draft", "Entwürfe", "Brouillons", "Borradores", "Bozze",
		"Concepten", "Concepts", "Rascunhos", "Utkast", "Kladder", "Luonnokset",
		"Szkice", "Koncepty", "Черновики",
	}},
	{FolderTypeSent, imap.MailboxAttrSent, []string{
		"Sent", "Sent Items", "Sent Messages", "Sent Mail", "Gesendet",
		"Gesendete Objekte", "Gesendete Elemente", "Envoyés", "Éléments envoyés",
		"Messages envoyés", "Enviados", "Elementos enviados", "Itens enviados",
		"Posta inviata", "Inviati", "Verzonden", "Verzonden items", "Skickat",
		"Skickade objekt", "Sendt", "Sendte elementer", "Lähetetyt",
		"Wysłane", "Odeslané", "Отправленные",
	}},
	{FolderTypeDeleted, imap.MailboxAttrTrash, []string{
		"Trash", "Deleted Items", "Deleted Messages", "Deleted", "Bin",
		"Papierkorb", "Gelöschte Objekte", "Gelöschte Elemente", "Corbeille",
		"Éléments supprimés", "Papelera", "Elementos eliminados", "Lixeira",
		"Lixo", "Itens excluídos", "Cestino", "Posta eliminata", "Prullenbak",
		"Verwijderde items", "Papperskorgen", "Borttagna objekt", "Papirkurv",
		"Slettede elementer", "Roskakori", "Kosz", "Kopie usunięte", "Koš",
		"Корзина", "Удаленные",
	}},
}

// classifyFolders turns the answer to LIST "" "*" into folders, parents
// before children, each level with INBOX first then by display name
// (ignoring case, then not).
//
// Entries that are \NonExistent are dropped; a parent missing from the
// list (dropped, or never listed) is added as a NoSelect folder, and
// \Noselect entries are kept as NoSelect folders, so that every Parent
// is listed.
//
// INBOX (in any case, at the top level) is FolderTypeInbox. Of the
// selectable folders bearing \Drafts, \Sent or \Trash, the one with the
// shortest name is the folder of that type; if none bears the attribute,
// the one with the shortest name among those whose display name is a
// well-known name in one of several languages (Drafts, Entwürfe,
// Brouillons; Sent, Sent Items, Gesendet; Trash, Deleted Items,
// Papierkorb, Corbeille; ...), compared without regard to case, and
// either at the top level or just below INBOX. Ties go to the smaller
// name. Everything else, \Junk included, is FolderTypeUserMail.
func classifyFolders(list []*imap.ListData) []Folder {
	byName := make(map[string]*Folder, len(list))
	var folders []*Folder
	add := func(f *Folder) {
		byName[f.Name] = f
		folders = append(folders, f)
	}
	attrs := make(map[*Folder][]imap.MailboxAttr)
	for _, l := range list {
		if l == nil || l.Mailbox == "" || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		if _, dup := byName[l.Mailbox]; dup {
			continue
		}
		f := &Folder{Name: l.Mailbox, Delimiter: l.Delim, NoSelect: slices.Contains(l.Attrs, imap.MailboxAttrNoSelect)}
		f.Parent, f.DisplayName = splitMailboxName(l.Mailbox, l.Delim)
		if l.Status != nil && !f.NoSelect {
			f.UIDValidity = l.Status.UIDValidity
		}
		add(f)
		attrs[f] = l.Attrs
	}
	// Add missing parents, and their missing parents.
	for i := 0; i < len(folders); i++ {
		f := folders[i]
		if f.Parent == "" || byName[f.Parent] != nil {
			continue
		}
		p := &Folder{Name: f.Parent, Delimiter: f.Delimiter, NoSelect: true}
		p.Parent, p.DisplayName = splitMailboxName(p.Name, p.Delimiter)
		add(p)
	}

	inbox := ""
	for _, f := range folders {
		if f.Parent == "" && strings.EqualFold(f.Name, "INBOX") {
			f.Type = FolderTypeInbox
			inbox = f.Name
			break
		}
	}
	shorter := func(a, b *Folder) int {
		return cmp.Or(cmp.Compare(utf8.RuneCountInString(a.Name), utf8.RuneCountInString(b.Name)), strings.Compare(a.Name, b.Name))
	}
	for _, sf := range specialFolders {
		var byAttr, byWellKnownName []*Folder
		for _, f := range folders {
			if f.Type != folderTypeUnassigned || f.NoSelect {
				continue
			}
			if slices.Contains(attrs[f], sf.attr) {
				byAttr = append(byAttr, f)
			}
			if (f.Parent == "" || f.Parent == inbox) && slices.ContainsFunc(sf.names, func(n string) bool { return strings.EqualFold(n, f.DisplayName) }) {
				byWellKnownName = append(byWellKnownName, f)
			}
		}
		if len(byAttr) == 0 {
			byAttr = byWellKnownName
		}
		if len(byAttr) > 0 {
			slices.MinFunc(byAttr, shorter).Type = sf.typ
		}
	}

	children := make(map[string][]*Folder)
	for _, f := range folders {
		if f.Type == folderTypeUnassigned {
			f.Type = FolderTypeUserMail
		}
		children[f.Parent] = append(children[f.Parent], f)
	}
	out := make([]Folder, 0, len(folders))
	var walk func(parent string)
	walk = func(parent string) {
		kids := children[parent]
		slices.SortFunc(kids, func(a, b *Folder) int {
			return cmp.Or(
				-cmp.Compare(boolInt(a.Type == FolderTypeInbox), boolInt(b.Type == FolderTypeInbox)),
				strings.Compare(strings.ToLower(a.DisplayName), strings.ToLower(b.DisplayName)),
				strings.Compare(a.DisplayName, b.DisplayName),
				strings.Compare(a.Name, b.Name),
			)
		})
		for _, f := range kids {
			out = append(out, *f)
			walk(f.Name)
		}
	}
	walk("")
	return out
}

// splitMailboxName returns the parent and last component of the mailbox
// name, whose hierarchy delimiter is delim (0 for none). A name that
// starts or ends with the delimiter is taken as a whole, at the top level.
func splitMailboxName(name string, delim rune) (parent, last string) {
	if delim == 0 {
		return "", name
	}
	i := strings.LastIndex(name, string(delim))
	if i <= 0 || i+utf8.RuneLen(delim) == len(name) {
		return "", name
	}
	return name[:i], name[i+utf8.RuneLen(delim):]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
