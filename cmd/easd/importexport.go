package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/internal/pimfile"
	"github.com/easd/easd/store"
)

const importSynopsis = `easd import [flags] USER FILE...

Import calendars, tasks and notes (.ics) and address books (.vcf) into a
user's folders, for moving in from another system. Events go to the
default Calendar, tasks to Tasks, journals to Notes and cards to
Contacts, unless --folder names another folder of the user (created
with --create). An item whose UID is already in the folder replaces it,
so importing the same file twice changes nothing. A malformed item is
reported with its file and line and skipped; the rest is imported.
Phones receive the items at their next Sync.`

const exportSynopsis = `easd export [flags] USER FOLDER

Write a user's folder (Calendar, Contacts, Tasks, Notes, or the name of
one they created) as one .ics or .vcf file on standard output, or to
--out.`

// classOfKind maps an import entry to the class that holds it.
var classOfKind = map[string]string{
	"VEVENT": store.ClassCalendar, "VTODO": store.ClassTasks, "VJOURNAL": store.ClassNotes, "VCARD": store.ClassContacts,
}

func runImport(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd import", importSynopsis, e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	folder := fs.String("folder", "", "", "import into this folder of the user instead of the default one of each item's class")
	create := fs.Bool("create", "", false, "create --folder if the user has none of that name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return usageError("import takes USER FILE...")
	}
	s, _, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := findUser(ctx, s, fs.Arg(0))
	if err != nil {
		return err
	}
	codecs := eas.DefaultCodecs()
	var imported, replaced, skipped int
	for _, name := range fs.Args()[1:] {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		var entries []pimfile.Entry
		var problems []pimfile.Problem
		switch strings.ToLower(filepath.Ext(name)) {
		case ".vcf", ".vcard":
			entries, problems, err = pimfile.SplitVCF(f)
		default:
			entries, problems, err = pimfile.SplitICS(f)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "%s:%d: skipped: %v\n", name, p.Line, p.Err)
			skipped++
		}
		for _, en := range entries {
			class := classOfKind[en.Kind]
			codec := codecs[class]
			if codec == nil {
				fmt.Fprintf(e.stderr, "%s:%d: skipped: %s items are not served\n", name, en.Line, en.Kind)
				skipped++
				continue
			}
			idx, err := codec.Index(en.Data)
			if err != nil {
				fmt.Fprintf(e.stderr, "%s:%d: skipped: %v\n", name, en.Line, err)
				skipped++
				continue
			}
			coll, err := pickCollection(ctx, s, u.ID, class, *folder, *create)
			if err != nil {
				return err
			}
			// The codec's UID, as Sync keeps items under it (pimfile's is
			// the raw text, which differs for escaped or padded UIDs).
			uid := idx.UID
			if uid == "" {
				uid = en.UID
			}
			it := store.Item{CollectionID: coll.ID, UID: uid, Data: en.Data, Start: idx.Start, End: idx.End, Summary: idx.Summary}
			if old, err := s.ItemByUID(ctx, coll.ID, uid); err == nil {
				if bytes.Equal(old.Data, en.Data) {
					continue
				}
				it.ID = old.ID
				replaced++
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			} else {
				imported++
			}
			if _, err := s.PutItem(ctx, it); err != nil {
				return fmt.Errorf("%s:%d: %w", name, en.Line, err)
			}
		}
	}
	fmt.Fprintf(e.stdout, "imported %d, replaced %d, skipped %d\n", imported, replaced, skipped)
	return nil
}

// pickCollection finds the user's collection for an item of class: the
// named one (of that class), or the default one, created if missing.
func pickCollection(ctx context.Context, s store.Store, user int64, class, name string, create bool) (store.Collection, error) {
	cs, err := s.Collections(ctx, user)
	if err != nil {
		return store.Collection{}, err
	}
	for _, c := range cs {
		if c.Class == class && ((name == "" && c.Default) || (name != "" && strings.EqualFold(c.Name, name))) {
			return c, nil
		}
	}
	switch {
	case name == "":
		return s.CreateCollection(ctx, store.Collection{UserID: user, Class: class, Name: class, Default: true})
	case create:
		return s.CreateCollection(ctx, store.Collection{UserID: user, Class: class, Name: name})
	}
	return store.Collection{}, fmt.Errorf("user has no %s folder %q (add --create to make it)", class, name)
}

func runExport(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd export", exportSynopsis, e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	out := fs.String("out", "", "", "write to this file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError("export takes USER FOLDER")
	}
	s, _, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := findUser(ctx, s, fs.Arg(0))
	if err != nil {
		return err
	}
	cs, err := s.Collections(ctx, u.ID)
	if err != nil {
		return err
	}
	var coll *store.Collection
	for i, c := range cs {
		if strings.EqualFold(c.Name, fs.Arg(1)) {
			coll = &cs[i]
			break
		}
	}
	if coll == nil {
		return fmt.Errorf("user %s has no folder %q", u.Name, fs.Arg(1))
	}
	chs, err := s.ItemChanges(ctx, coll.ID, 0, 0)
	if err != nil {
		return err
	}
	var items [][]byte
	for _, it := range chs {
		if !it.Deleted {
			items = append(items, it.Data)
		}
	}
	var w io.Writer = e.stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if coll.Class == store.ClassContacts {
		err = pimfile.WriteVCF(w, items)
	} else {
		err = pimfile.WriteICS(w, items)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "exported %d items of %s\n", len(items), coll.Name)
	return nil
}
