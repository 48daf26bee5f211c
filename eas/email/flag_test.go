package email

import (
	"testing"
	"time"

	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

func TestFlagRoundTrip(t *testing.T) {
	d := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		name string
		in   *Flag
		want *Flag // nil: cleared
	}{
		{"nil", nil, nil},
		{"cleared", &Flag{Status: 0, Type: "x"}, nil},
		{"active", &Flag{
			Status: 2, Type: "Flag for follow up",
			StartDate: d("2024-03-05T00:00:00Z"), UtcStartDate: d("2024-03-04T23:00:00Z"),
			DueDate: d("2024-03-08T00:00:00Z"), UtcDueDate: d("2024-03-07T23:00:00Z"),
			ReminderSet: true, ReminderTime: d("2024-03-08T08:00:00.123Z"),
			OrdinalDate: d("2024-03-05T10:00:00Z"), SubOrdinalDate: "5555555",
		}, nil},
		{"active without reminder", &Flag{Status: 2, Type: "Flag for follow up"}, nil},
		{"complete", &Flag{Status: 1, Type: "Flag for follow up", CompleteTime: d("2024-03-06T12:00:00Z")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil && tc.in != nil && tc.in.Status != 0 {
				want = tc.in
			}
			n := FlagNode(tc.in)
			if n.Tag != wbxml.EmailFlag {
				t.Fatalf("tag %v", n.Tag)
			}
			if (want == nil) != (len(n.Children) == 0) {
				t.Errorf("children %d for %+v", len(n.Children), tc.in)
			}
			// Through WBXML and back.
			back := encodeDecode(t, wbxml.E(wbxml.AirSyncApplicationData, n)).Child(wbxml.EmailFlag)
			got, err := ParseFlag(back)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}

	// A completed flag carries tasks:DateCompleted too (MS-ASEMAIL 2.2.2.19).
	n := FlagNode(&Flag{Status: 1, CompleteTime: d("2024-03-06T12:00:00Z")})
	if got := n.ChildText(wbxml.TasksDateCompleted); got != "2024-03-06T12:00:00.000Z" {
		t.Errorf("DateCompleted %q", got)
	}
}

func TestParseFlag(t *testing.T) {
	flag := func(children ...*wbxml.Node) *wbxml.Node { return wbxml.E(wbxml.EmailFlag, children...) }
	f, err := ParseFlag(flag(
		wbxml.T(wbxml.EmailFlagStatus, "1"),
		wbxml.T(wbxml.TasksDateCompleted, "2024-03-06T12:00:00.000Z"),
		wbxml.T(wbxml.TasksStartDate, "20240305T000000Z"),
	))
	want := &Flag{Status: 1,
		CompleteTime: time.Date(2024, 3, 6, 12, 0, 0, 0, time.UTC),
		StartDate:    time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)}
	if err != nil || !cmp.Equal(want, f) {
		t.Errorf("DateCompleted only: %+v, %v", f, err)
	}
	if f, err := ParseFlag(flag()); f != nil || err != nil {
		t.Errorf("empty: %v, %v", f, err)
	}
	if f, err := ParseFlag(nil); f != nil || err != nil {
		t.Errorf("nil: %v, %v", f, err)
	}
	if f, err := ParseFlag(flag(wbxml.T(wbxml.EmailFlagType, "x"))); f != nil || err != nil {
		t.Errorf("no status: %v, %v", f, err)
	}
	for _, bad := range []*wbxml.Node{
		flag(wbxml.T(wbxml.EmailFlagStatus, "7")),
		flag(wbxml.T(wbxml.EmailFlagStatus, "two")),
		flag(wbxml.T(wbxml.EmailFlagStatus, "2"), wbxml.T(wbxml.TasksDueDate, "tomorrow")),
	} {
		if f, err := ParseFlag(bad); err == nil {
			t.Errorf("%v: no error, %+v", bad, f)
		}
	}
}
