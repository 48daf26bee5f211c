package imapbridge

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas"
)

// searchMessage is a message with subject and body, in UTF-8.
func searchMessage(n int, subject, body string) []byte {
	return fmt.Appendf(nil, "From: a@example.org\r\nTo: alice@example.org\r\nSubject: %s\r\nMessage-ID: <s%d@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", subject, n, body)
}

func TestBackendSearch(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	day := func(d, h int) time.Time { return time.Date(2025, 3, d, h, 0, 0, 0, time.UTC) }
	msgs := []struct {
		subject, body string
		date          time.Time
	}{
		{"Quarterly report", "numbers inside", day(1, 9)},     // 1
		{"lunch", "the quarterly report is late", day(2, 23)}, // 2
		{"Café meeting", "see you at the café", day(3, 0)},    // 3
		{"unrelated", "nothing to see", day(4, 12)},           // 4
		{"QUARTERLY numbers", "final", day(5, 12)},            // 5
	}
	for i, m := range msgs {
		appendMessage(t, e.other, "INBOX", searchMessage(i+1, m.subject, m.body), m.date)
	}
	if err := e.other.Create("Empty", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	search := func(folder string, q eas.SearchQuery) []uint32 {
		t.Helper()
		got, err := e.b.Search(ctx10s(t), e.acct, folder, q)
		if err != nil {
			t.Fatalf("Search(%q, %+v): %v", folder, q, err)
		}
		return got
	}
	for _, tc := range []struct {
		name string
		q    eas.SearchQuery
		want []uint32
	}{
		{"all, newest first", eas.SearchQuery{}, []uint32{5, 4, 3, 2, 1}},
		{"subject or body, any case", eas.SearchQuery{Text: "quarterly"}, []uint32{5, 2, 1}},
		{"every word must match", eas.SearchQuery{Text: "  quarterly\tnumbers "}, []uint32{5, 1}},
		{"non-ASCII", eas.SearchQuery{Text: "café"}, []uint32{3}},
		{"no match", eas.SearchQuery{Text: "zebra"}, nil},
		{"since, to the hour", eas.SearchQuery{Since: day(2, 23)}, []uint32{5, 4, 3, 2}},
		{"since excludes earlier the same day", eas.SearchQuery{Since: day(2, 23).Add(time.Minute)}, []uint32{5, 4, 3}},
		{"before is exclusive", eas.SearchQuery{Before: day(3, 0)}, []uint32{2, 1}},
		{"window and text", eas.SearchQuery{Text: "quarterly", Since: day(2, 0), Before: day(5, 12)}, []uint32{2}},
		{"empty window", eas.SearchQuery{Since: day(4, 13), Before: day(5, 11)}, nil},
	} {
		if diff := cmp.Diff(tc.want, search("INBOX", tc.q)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	if got := search("Empty", eas.SearchQuery{Text: "quarterly"}); len(got) != 0 {
		t.Errorf("Search of an empty folder = %v", got)
	}
	if _, err := e.b.Search(ctx10s(t), e.acct, "Nope", eas.SearchQuery{}); !errors.Is(err, eas.ErrMailFolderGone) {
		t.Errorf("Search of a missing folder: %v, want ErrMailFolderGone", err)
	}
}
