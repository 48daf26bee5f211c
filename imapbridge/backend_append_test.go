package imapbridge

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/easd/easd/eas"
)

func TestBackendAppend(t *testing.T) {
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	ctx := ctx10s(t)
	raw := rawMessage(1)
	uid, err := e.b.Append(ctx, e.acct, "Sent", eas.FlagSeen|eas.FlagForwarded, bytes.NewReader(raw), int64(len(raw)))
	if err != nil || uid == 0 {
		t.Fatalf("Append = %d, %v", uid, err)
	}
	got := e.fetchAll(t, "Sent", []uint32{uid})
	if len(got) != 1 || got[0].Body != string(raw) || got[0].Meta.Flags != eas.FlagSeen|eas.FlagForwarded {
		t.Fatalf("fetched %+v", got)
	}
	if s := e.scan(t, "Sent", eas.ScanQuery{}); !slices.Equal(s.UIDs, []uint32{uid}) {
		t.Errorf("Sent holds %v", s.UIDs)
	}
	// Only size bytes are read.
	uid2, err := e.b.Append(ctx, e.acct, "Drafts", 0, strings.NewReader(string(raw)+"trailing"), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.fetchAll(t, "Drafts", []uint32{uid2}); len(got) != 1 || got[0].Body != string(raw) || got[0].Meta.Flags != 0 {
		t.Errorf("fetched %+v", got)
	}
	// A missing folder, and a short reader.
	if _, err := e.b.Append(ctx, e.acct, "Nope", 0, bytes.NewReader(raw), int64(len(raw))); !errors.Is(err, eas.ErrMailFolderGone) {
		t.Errorf("Append to a missing folder: %v", err)
	}
	if _, err := e.b.Append(ctx, e.acct, "Sent", 0, bytes.NewReader(raw[:10]), int64(len(raw))); err == nil {
		t.Errorf("Append of a short message succeeded")
	}
	// The pool still works.
	if _, err := e.b.Append(ctx, e.acct, "Sent", 0, bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Errorf("Append after a failure: %v", err)
	}
}
