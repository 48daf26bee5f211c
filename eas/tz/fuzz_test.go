package tz

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-ical"
)

func parseVTimezone(t *testing.T, ics string) *ical.Component {
	t.Helper()
	cal, err := ical.NewDecoder(strings.NewReader(ics)).Decode()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cal.Children {
		if c.Name == ical.CompTimezone {
			return c
		}
	}
	t.Fatal("no VTIMEZONE")
	return nil
}

// FuzzParse: Parse never panics; a blob it accepts re-encodes to an equal
// blob, its rules give offsets within its two offsets, ToUTC inverts
// Offset for a time away from transitions, and its VTIMEZONE reads back.
func FuzzParse(f *testing.F) {
	for _, n := range []string{"Europe/Berlin", "Australia/Sydney", "Asia/Kathmandu"} {
		if loc, err := time.LoadLocation(n); err == nil {
			f.Add(FromLocation(loc, 2026).Encode())
		}
	}
	f.Add(customZone().Encode())
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, BlobSize)))
	f.Add("xP///w")
	f.Fuzz(func(t *testing.T, s string) {
		z, err := Parse(s)
		if err == nil {
			checkBlob(t, z)
		}
		// The raw structure too: the input's bytes, cut or padded to 172.
		raw := make([]byte, BlobSize)
		copy(raw, s)
		if z, err := FromBytes(raw); err == nil {
			checkBlob(t, z)
		}
	})
}

// checkBlob checks what FuzzParse promises of a blob Parse accepted.
func checkBlob(t *testing.T, z TimeZone) {
	{
		back, err := Parse(z.Encode())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if back.Bias != z.Bias || back.StandardBias != z.StandardBias || back.DaylightBias != z.DaylightBias ||
			back.StandardDate != z.StandardDate || back.DaylightDate != z.DaylightDate {
			t.Fatalf("round trip %v -> %v", z, back)
		}
		for _, u := range []time.Time{
			time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC),
			time.Date(1950, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2199, 10, 30, 2, 0, 0, 0, time.UTC),
		} {
			off := z.Offset(u)
			if off != z.StandardOffset() && off != z.DaylightOffset() {
				t.Fatalf("Offset(%v) = %v", u, off)
			}
			w := u.Add(off)
			if r := z.ToUTC(w); z.Offset(r) == off && !r.Equal(u) && z.Offset(u.Add(-48*time.Hour)) == off && z.Offset(u.Add(48*time.Hour)) == off {
				t.Fatalf("ToUTC(%v) = %v, want %v", w, r, u)
			}
			loc := z.Location("fuzz")
			if _, lo := u.In(loc).Zone(); time.Duration(lo)*time.Second != off {
				t.Fatalf("Location offset %ds at %v, Offset %v", lo, u, off)
			}
		}
		if back, err := FromVTimezone(z.VTimezone("fuzz"), 2026); err != nil || !back.Equivalent(z, 2026) {
			t.Fatalf("FromVTimezone: %v, %v for %v", back, err, z)
		}
	}
}
