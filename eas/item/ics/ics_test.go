package ics

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/easd/easd/eas/item"
	"github.com/emersion/go-ical"
)

func TestDecodeRefusesWhatGoICalCannotTake(t *testing.T) {
	deep := strings.Repeat("BEGIN:X\r\n", maxNesting+1) + strings.Repeat("END:X\r\n", maxNesting+1)
	for name, b := range map[string]string{
		"too deep":    "BEGIN:VCALENDAR\r\n" + deep + "END:VCALENDAR\r\n",
		"panic":       "BEGIN:VCALENDAR\r\nX;A=\"b\r\nEND:VCALENDAR\r\n",
		"not ical":    "hello",
		"too large":   strings.Repeat("x", MaxStored+1),
		"deep folded": "BEGIN:VCALENDAR\r\n" + strings.ReplaceAll(deep, "BEGIN:X", "BEG\r\n IN:X") + "END:VCALENDAR\r\n",
	} {
		if _, err := Decode([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestEncodeRepairsAndFolds(t *testing.T) {
	cal := NewCalendar()
	todo := ical.NewComponent(ical.CompToDo)
	SetText(todo, ical.PropUID, "u")
	now, ok := ParseEASTime("2024-03-05T14:30:00.000Z")
	if !ok {
		t.Fatal("ParseEASTime")
	}
	Stamp(todo, ical.PropDateTimeStamp, now)
	SetText(todo, ical.PropSummary, strings.Repeat("日本語, ", 20))
	todo.Props.Add(&ical.Prop{Name: ical.PropPriority, Params: ical.Params{}, Value: "1"})
	todo.Props.Add(&ical.Prop{Name: ical.PropPriority, Params: ical.Params{}, Value: "2"})
	SetCategories(todo, []string{"a,b", "c"})
	SetBody(todo, item.Body{Text: "t", HTML: "<p>t</p>"})
	cal.Children = append(cal.Children, todo)
	out, err := Encode(cal)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bytes.Split(out, []byte("\r\n")) {
		if len(l) > 75 || !utf8.Valid(l) {
			t.Errorf("line of %d bytes or split character: %q", len(l), l)
		}
	}
	back, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	got := Master(back, ical.CompToDo)
	if got == nil || Text(got, ical.PropSummary) != strings.Repeat("日本語, ", 20) || len(got.Props[ical.PropPriority]) != 1 ||
		strings.Join(Categories(got), "|") != "a,b|c" || Body(got) != (item.Body{Text: "t", HTML: "<p>t</p>"}) {
		t.Errorf("round trip:\n%s", out)
	}
}

func TestEscapeText(t *testing.T) {
	s := "a\\b,c;d\ne"
	if e := EscapeText(s); e != `a\\b\,c\;d\ne` || UnescapeText(e) != s {
		t.Errorf("EscapeText = %q, back %q", e, UnescapeText(e))
	}
}

func TestPropTime(t *testing.T) {
	if _, err := time.LoadLocation("Europe/Paris"); err != nil {
		t.Skip("no time zone database:", err)
	}
	wall, utc, isDate, ok := PropTime(&ical.Prop{Name: "DUE", Params: ical.Params{"TZID": {"Europe/Paris"}}, Value: "20240305T143000"})
	if !ok || isDate || wall.Hour() != 14 || utc.Hour() != 13 {
		t.Errorf("TZID: %v %v %v %v", wall, utc, isDate, ok)
	}
	if _, _, isDate, ok := PropTime(&ical.Prop{Name: "DUE", Params: ical.Params{}, Value: "20240305"}); !ok || !isDate {
		t.Error("DATE")
	}
}

func TestUnescapeParam(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "plain",
		"a^nb":          "a\nb",
		"a^Nb":          "a\nb",
		"say ^'hi^'":    `say "hi"`,
		"^^":            "^",
		"keep ^x and ^": "keep ^x and ^",
	} {
		if got := UnescapeParam(in); got != want {
			t.Errorf("UnescapeParam(%q) = %q, want %q", in, got, want)
		}
	}
}
