package tz

import (
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/tz/internal/zonegen"
	"github.com/google/go-cmp/cmp"
)

// zoneCase is an IANA zone and a year whose rule a blob expresses exactly.
type zoneCase struct {
	name string
	year int
}

// testZones are the zones every round-trip test covers: both
// hemispheres, half- and quarter-hour offsets, 30-minute daylight saving,
// transitions at midnight, zones without DST, the date line, historic
// rules.
var testZones = []zoneCase{
	{"UTC", 2026}, {"Etc/GMT+12", 2026},
	{"Europe/Berlin", 2026}, {"Europe/London", 2026}, {"Europe/Dublin", 2026},
	{"Europe/Lisbon", 2026}, {"Europe/Moscow", 2026}, {"Europe/Istanbul", 2026},
	{"Europe/Helsinki", 2026}, {"Europe/Kyiv", 2026}, {"Atlantic/Azores", 2026},
	{"America/New_York", 2026}, {"America/Chicago", 2026}, {"America/Denver", 2026},
	{"America/Phoenix", 2026}, {"America/Los_Angeles", 2026}, {"America/Anchorage", 2026},
	{"America/Halifax", 2026}, {"America/St_Johns", 2026}, {"America/Havana", 2026},
	{"America/Santiago", 2026}, {"America/Asuncion", 2023}, {"America/Bogota", 2026},
	{"America/Caracas", 2026}, {"America/Mexico_City", 2021}, {"America/Mexico_City", 2026},
	{"America/Sao_Paulo", 2015}, {"America/Sao_Paulo", 2017}, {"America/Sao_Paulo", 2026},
	{"America/Nuuk", 2026},
	{"Australia/Sydney", 2026}, {"Australia/Adelaide", 2026}, {"Australia/Brisbane", 2026},
	{"Australia/Lord_Howe", 2026}, {"Pacific/Auckland", 2026}, {"Pacific/Chatham", 2026},
	{"Pacific/Kiritimati", 2026}, {"Pacific/Pago_Pago", 2026}, {"Pacific/Apia", 2020},
	{"Asia/Tokyo", 2026}, {"Asia/Kolkata", 2026}, {"Asia/Kathmandu", 2026},
	{"Asia/Tehran", 2020}, {"Asia/Tehran", 2026}, {"Asia/Jerusalem", 2026},
	{"Asia/Shanghai", 2026}, {"Asia/Dubai", 2026},
	{"Africa/Cairo", 2024}, {"Africa/Johannesburg", 2026}, {"Africa/Casablanca", 2026},
}

func load(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("zone %s not installed: %v", name, err)
	}
	return loc
}

// yearHours returns every hour of year in loc plus instants around each
// of loc's changes that year (1 s, 1 min, 30 min either side).
func yearHours(loc *time.Location, year int) []time.Time {
	from := time.Date(year, 1, 1, 0, 0, 0, 0, loc)
	to := time.Date(year+1, 1, 1, 0, 0, 0, 0, loc)
	var out []time.Time
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		out = append(out, t)
	}
	for _, c := range locChanges(loc, from, to) {
		for _, d := range []time.Duration{time.Second, time.Minute, 30 * time.Minute} {
			for _, t := range []time.Time{c.at.Add(-d), c.at, c.at.Add(d)} {
				if !t.Before(from) && t.Before(to) {
					out = append(out, t)
				}
			}
		}
	}
	return out
}

func goOffset(t time.Time, loc *time.Location) time.Duration {
	_, off := t.In(loc).Zone()
	return time.Duration(off) * time.Second
}

// TestZonesRoundTrip: FromLocation(year) -> Encode -> Parse gives the same
// blob, whose own rules (Offset, Location, ToUTC) give Go's offsets for
// every hour of that year and around every transition.
func TestZonesRoundTrip(t *testing.T) {
	if len(testZones) < 30 {
		t.Fatalf("only %d test zones", len(testZones))
	}
	for _, zc := range testZones {
		t.Run(zc.name+"/"+itoa(zc.year), func(t *testing.T) {
			loc := load(t, zc.name)
			z := FromLocation(loc, zc.year)
			enc := z.Encode()
			if len(enc) != 232 {
				t.Fatalf("encoded length %d", len(enc))
			}
			back, err := Parse(enc)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(z, back); diff != "" {
				t.Fatalf("Parse(Encode) differs (-want +got):\n%s", diff)
			}
			own := back.Location("test")
			for _, u := range yearHours(loc, zc.year) {
				want := goOffset(u, loc)
				if got := back.Offset(u); got != want {
					t.Fatalf("%v: Offset %v, Go %v (blob %v)", u.UTC(), got, want, back)
				}
				if got := goOffset(u, own); got != want {
					t.Fatalf("%v: Location offset %v, Go %v", u.UTC(), got, want)
				}
				// Wall times that occur once map back to their instant.
				w := u.In(loc)
				if goOffset(u.Add(-3*time.Hour), loc) == want && goOffset(u.Add(3*time.Hour), loc) == want {
					if got := back.ToUTC(w); !got.Equal(u) {
						t.Fatalf("ToUTC(%v) = %v, want %v", w, got.UTC(), u.UTC())
					}
				}
			}
		})
	}
}

// TestIANA: the IANA zone a blob maps back to has the offsets of the zone
// the blob came from, for every hour of the year; with the Windows name
// known, it is CLDR's zone for it.
func TestIANA(t *testing.T) {
	for _, zc := range testZones {
		t.Run(zc.name+"/"+itoa(zc.year), func(t *testing.T) {
			loc := load(t, zc.name)
			z := FromLocation(loc, zc.year)
			name, ok := z.IANA(zc.year)
			if !ok {
				t.Fatalf("IANA(%d) of %v: not found", zc.year, z)
			}
			back := load(t, name)
			for _, u := range yearHours(loc, zc.year) {
				if a, b := goOffset(u, loc), goOffset(u, back); a != b {
					t.Fatalf("%s -> %s: at %v offset %v, want %v", zc.name, name, u.UTC(), b, a)
				}
			}
			// Without names (as iOS sends it) the rules alone find a zone.
			anon := z
			anon.StandardName, anon.DaylightName = "", ""
			name2, ok := anon.IANA(zc.year)
			if !ok {
				t.Fatalf("IANA of nameless %v: not found", anon)
			}
			if !anon.EquivalentTo(load(t, name2), zc.year) {
				t.Fatalf("nameless blob -> %s with other rules", name2)
			}
		})
	}
}

// TestIANAWrongName: a Windows name whose zone has other rules is not
// trusted; the rules decide.
func TestIANAWrongName(t *testing.T) {
	z := FromLocation(load(t, "America/New_York"), 2026)
	z.StandardName = "W. Europe Standard Time"
	name, ok := z.IANA(2026)
	if !ok || !z.EquivalentTo(load(t, name), 2026) || name == "Europe/Berlin" {
		t.Fatalf("IANA = %q, %v", name, ok)
	}
	// An IANA name in the name field is used when its rules agree.
	z.StandardName = "America/Toronto"
	if name, ok := z.IANA(2026); !ok || name != "America/Toronto" {
		t.Fatalf("IANA with IANA name = %q, %v", name, ok)
	}
}

// customZone has rules no IANA zone has: UTC+03:17, daylight time +45
// minutes from the first Sunday of June 01:30 to the last Friday of
// August 23:59:59.999.
func customZone() TimeZone {
	return TimeZone{
		Bias: -197, StandardName: "Custom Standard", DaylightName: "Custom Daylight",
		DaylightDate: SystemTime{Month: 6, DayOfWeek: 0, Day: 1, Hour: 1, Minute: 30},
		StandardDate: SystemTime{Month: 8, DayOfWeek: 5, Day: 5, Hour: 23, Minute: 59, Second: 59, Milliseconds: 999},
		DaylightBias: -45,
	}
}

// TestCustomZone: a blob matching no known zone keeps its own rules:
// Offset, ToUTC and Location follow them, IANA reports it as custom, and it
// survives VTimezone -> FromVTimezone exactly.
func TestCustomZone(t *testing.T) {
	z := customZone()
	if name, ok := z.IANA(2026); ok {
		t.Fatalf("custom zone mapped to %s", name)
	}
	std := 197 * time.Minute
	dst := std + 45*time.Minute
	cases := []struct {
		utc  time.Time
		want time.Duration
	}{
		{time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), std},
		// 7 June 2026 is the first Sunday of June: 01:30 local = 22:13 UTC on the 6th.
		{time.Date(2026, 6, 6, 22, 12, 59, 0, time.UTC), std},
		{time.Date(2026, 6, 6, 22, 13, 0, 0, time.UTC), dst},
		// 28 August 2026 is the last Friday: 23:59:59.999 local (+04:02).
		{time.Date(2026, 8, 28, 19, 57, 59, 998e6, time.UTC), dst},
		{time.Date(2026, 8, 28, 19, 57, 59, 999e6, time.UTC), std},
		{time.Date(2030, 7, 1, 0, 0, 0, 0, time.UTC), dst},
	}
	loc := z.Location("Custom")
	for _, c := range cases {
		if got := z.Offset(c.utc); got != c.want {
			t.Errorf("Offset(%v) = %v, want %v", c.utc, got, c.want)
		}
		if got := goOffset(c.utc.Truncate(time.Second), loc); got != z.Offset(c.utc.Truncate(time.Second)) {
			t.Errorf("Location offset at %v = %v", c.utc, got)
		}
	}
	// 09:00 local stays 09:00 local: ToUTC and Offset invert each other
	// all year, also in daylight time.
	for d := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC); d.Year() == 2026; d = d.AddDate(0, 0, 1) {
		u := z.ToUTC(d)
		if w := u.Add(z.Offset(u)); !w.Equal(d) {
			t.Fatalf("ToUTC(%v) = %v, back to wall %v", d, u, w)
		}
		if got := time.Date(d.Year(), d.Month(), d.Day(), 9, 0, 0, 0, loc); !got.Equal(u) {
			t.Fatalf("Location: %v, ToUTC %v", got, u)
		}
	}
	back, err := FromVTimezone(z.VTimezone("custom"), 2026)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(z, back); diff != "" {
		t.Fatalf("VTimezone round trip (-want +got):\n%s", diff)
	}
}

// TestVTimezone: for every test zone, the VTIMEZONE of its blob gives the
// blob back (exactly with X-EAS-TIMEZONE, with the same offsets without it).
func TestVTimezone(t *testing.T) {
	for _, zc := range testZones {
		t.Run(zc.name+"/"+itoa(zc.year), func(t *testing.T) {
			z := FromLocation(load(t, zc.name), zc.year)
			c := z.VTimezone(zc.name)
			back, err := FromVTimezone(c, zc.year)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(z, back); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			c.Props.Del(PropBlob)
			rules, err := FromVTimezone(c, zc.year)
			if err != nil {
				t.Fatal(err)
			}
			if !rules.Equivalent(z, zc.year) {
				t.Fatalf("from rules %v, want %v", rules, z)
			}
			if rules.StandardName != z.StandardName {
				t.Fatalf("StandardName %q, want %q", rules.StandardName, z.StandardName)
			}
		})
	}
}

// TestParseVariants: the base64 forms clients send are accepted; wrong
// sizes and absurd biases are not.
func TestParseVariants(t *testing.T) {
	z := FromLocation(load(t, "Europe/Berlin"), 2026)
	std := z.Encode()
	raw := base64.RawStdEncoding.EncodeToString(z.Bytes())
	url := base64.URLEncoding.EncodeToString(z.Bytes())
	wrapped := std[:76] + "\r\n" + std[76:152] + "\n " + std[152:]
	for _, s := range []string{std, raw, url, wrapped} {
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got != z {
			t.Fatalf("Parse(%q) = %v", s, got)
		}
	}
	zero := base64.StdEncoding.EncodeToString(make([]byte, BlobSize))
	if got, err := Parse(zero); err != nil || got.StandardOffset() != 0 || got.HasDST() {
		t.Fatalf("all-zero blob: %v, %v", got, err)
	}
	bad := []string{"", "AAAA", base64.StdEncoding.EncodeToString(make([]byte, BlobSize+1)), "!" + std[1:]}
	huge := z
	huge.Bias = 100000
	bad = append(bad, huge.Encode())
	for _, s := range bad {
		if _, err := Parse(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%.20q...) error %v, want ErrInvalid", s, err)
		}
	}
}

// TestOutlookVTimezone reads a VTIMEZONE as Outlook exports it (DTSTART
// in 1601, Windows name as TZID) and one with a history of observances.
func TestOutlookVTimezone(t *testing.T) {
	berlin := FromLocation(load(t, "Europe/Berlin"), 2026)
	outlook := "BEGIN:VCALENDAR\r\nPRODID:x\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\n" +
		"BEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n" +
		"BEGIN:DAYLIGHT\r\nDTSTART:16010325T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\n" +
		"END:VTIMEZONE\r\nEND:VCALENDAR\r\n"
	history := "BEGIN:VCALENDAR\r\nPRODID:x\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:America/Sao_Paulo\r\n" +
		"BEGIN:DAYLIGHT\r\nDTSTART:20151018T000000\r\nTZOFFSETFROM:-0300\r\nTZOFFSETTO:-0200\r\nRDATE:20151018T000000,20161016T000000\r\nTZNAME:-02\r\nEND:DAYLIGHT\r\n" +
		"BEGIN:STANDARD\r\nDTSTART:20150222T000000\r\nTZOFFSETFROM:-0200\r\nTZOFFSETTO:-0300\r\nRDATE:20160221T000000\r\nTZNAME:-03\r\nEND:STANDARD\r\n" +
		"BEGIN:STANDARD\r\nDTSTART:20170219T000000\r\nTZOFFSETFROM:-0200\r\nTZOFFSETTO:-0300\r\nTZNAME:-03\r\nEND:STANDARD\r\n" +
		"END:VTIMEZONE\r\nEND:VCALENDAR\r\n"
	for _, c := range []struct {
		ics  string
		year int
		want TimeZone
	}{
		{outlook, 2026, berlin},
		{history, 2016, FromLocation(load(t, "America/Sao_Paulo"), 2016)},
	} {
		vtz := parseVTimezone(t, c.ics)
		got, err := FromVTimezone(vtz, c.year)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equivalent(c.want, c.year) {
			t.Errorf("FromVTimezone = %v, want %v", got, c.want)
		}
	}
}

// TestWindowsNames checks the generated CLDR table through its API.
func TestWindowsNames(t *testing.T) {
	for iana, win := range map[string]string{
		"Europe/Berlin": "W. Europe Standard Time", "Asia/Kolkata": "India Standard Time",
		"Asia/Calcutta": "India Standard Time", "America/Sao_Paulo": "E. South America Standard Time",
		"UTC": "UTC", "Australia/Adelaide": "Cen. Australia Standard Time",
	} {
		if got, ok := WindowsName(iana); !ok || got != win {
			t.Errorf("WindowsName(%s) = %q, %v; want %q", iana, got, ok, win)
		}
	}
	for win, iana := range map[string]string{
		"W. Europe Standard Time": "Europe/Berlin", "W. Europe Daylight Time": "Europe/Berlin",
		"Tokyo Standard Time": "Asia/Tokyo", "Iran Standard Time": "Asia/Tehran",
	} {
		if got, ok := IANAName(win); !ok || got != iana {
			t.Errorf("IANAName(%s) = %q, %v; want %q", win, got, ok, iana)
		}
	}
	if _, ok := IANAName("Nowhere Standard Time"); ok {
		t.Error("unknown Windows name mapped")
	}
}

// TestGeneratedUpToDate: windowszones_gen.go is what the generator makes
// of the installed CLDR files (skipped when they are not installed).
func TestGeneratedUpToDate(t *testing.T) {
	wz, err1 := os.ReadFile(zonegen.DefaultWindowsZones)
	bcp, err2 := os.ReadFile(zonegen.DefaultBCP47)
	if err1 != nil || err2 != nil {
		t.Skipf("CLDR files not installed: %v %v", err1, err2)
	}
	want, err := zonegen.Generate(wz, bcp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("windowszones_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("windowszones_gen.go is stale: run go generate ./eas/tz")
	}
	if !strings.Contains(string(got), cldrWindowsZonesVersion) {
		t.Fatal("version constant missing")
	}
}

func itoa(n int) string { return time.Date(n, 1, 1, 0, 0, 0, 0, time.UTC).Format("2006") }
