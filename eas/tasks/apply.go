package tasks

import (
	"slices"
	"strings"
	"time"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// applier applies one ApplicationData to a VTODO. Each element is
// compared with what Render sends for the stored task and written only
// when it differs, so an unchanged round trip leaves the task as it is.
type applier struct {
	todo    *ical.Component
	in      *appData
	old     *view
	oldFull recurrence // the stored Recurrence with every version's elements
	o       item.Options
	now     time.Time
	changed bool
}

func (a *applier) ghosted(t wbxml.Tag) bool { return a.o.Ghosted != nil && a.o.Ghosted(t) }

// get returns the new value of element t: the client's, the stored one
// when t is ghosted, else the default ("" or the value always sent).
func (a *applier) get(t wbxml.Tag) string {
	if s, ok := a.in.vals[t]; ok && s != "" {
		return s
	} else if !ok && a.ghosted(t) {
		return a.old.vals[t]
	}
	return defaults[t]
}

func (a *applier) run() error {
	todo, old := a.todo, a.old
	if s := a.get(wbxml.TasksSubject); s != old.vals[wbxml.TasksSubject] {
		ics.SetText(todo, ical.PropSummary, s)
		a.changed = true
	}
	if s := a.get(wbxml.TasksImportance); s != old.vals[wbxml.TasksImportance] {
		prio := map[string]string{"0": "9", "2": "1"}
		if _, ok := prio[s]; !ok && s != "1" {
			return item.Invalidf("Importance %q (MS-ASTASK 2.2.2.14)", s)
		}
		ics.SetText(todo, ical.PropPriority, prio[s])
		a.changed = true
	}
	if s := a.get(wbxml.TasksSensitivity); s != old.vals[wbxml.TasksSensitivity] {
		class, ok := map[string]string{"0": "", "1": "X-PERSONAL", "2": "PRIVATE", "3": "CONFIDENTIAL"}[s]
		if !ok {
			return item.Invalidf("Sensitivity %q (MS-ASTASK 2.2.2.24)", s)
		}
		ics.SetText(todo, ical.PropClass, class)
		a.changed = true
	}
	for t, name := range xProps {
		if s := a.get(t); s != old.vals[t] {
			ics.SetText(todo, name, s)
			a.changed = true
		}
	}
	cats := a.in.categories
	if !a.in.hasCategories && a.ghosted(wbxml.TasksCategories) {
		cats = old.categories
	}
	if !slices.Equal(cats, old.categories) {
		ics.SetCategories(todo, cats)
		a.changed = true
	}
	if a.in.body.Present {
		if nb, ch := item.ApplyBody(old.body, a.in.body); ch {
			ics.SetBody(todo, nb)
			a.changed = true
		}
	} else if !a.ghosted(wbxml.AirSyncBaseBody) && !old.body.Empty() {
		ics.SetBody(todo, item.Body{})
		a.changed = true
	}
	datesChanged, err := a.dates()
	if err != nil {
		return err
	}
	if err := a.complete(); err != nil {
		return err
	}
	if err := a.reminder(datesChanged); err != nil {
		return err
	}
	return a.recurrence(datesChanged)
}

// dates applies the start and due pairs (see the package comment).
func (a *applier) dates() (bool, error) {
	oldS := [2]string{a.old.vals[wbxml.TasksStartDate], a.old.vals[wbxml.TasksUtcStartDate]}
	oldD := [2]string{a.old.vals[wbxml.TasksDueDate], a.old.vals[wbxml.TasksUtcDueDate]}
	// A pair the client sent half of gets its other half from the stored
	// offset (pairFrom), ghosted or not: the forms must stay consistent.
	get := func(l, u wbxml.Tag) [2]string {
		ls, lok := a.in.vals[l]
		us, uok := a.in.vals[u]
		switch {
		case lok || uok:
			return [2]string{ls, us}
		case a.ghosted(l) || a.ghosted(u):
			return [2]string{a.old.vals[l], a.old.vals[u]}
		}
		return [2]string{}
	}
	newS, newD := get(wbxml.TasksStartDate, wbxml.TasksUtcStartDate), get(wbxml.TasksDueDate, wbxml.TasksUtcDueDate)
	if newS == oldS && newD == oldD {
		return false, nil
	}
	s, err := pairFrom(newS, oldS, "StartDate")
	if err != nil {
		return false, err
	}
	d, err := pairFrom(newD, oldD, "DueDate")
	if err != nil {
		return false, err
	}
	midnight := func(t time.Time) bool { return t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 }
	useDate := (!s.ok || midnight(s.local)) && (!d.ok || midnight(d.local))
	writePair(a.todo, ical.PropDateTimeStart, s, useDate)
	writePair(a.todo, ical.PropDue, d, useDate)
	a.todo.Props.Del(ical.PropDuration)
	a.changed = true
	return true, nil
}

// pairFrom builds a date pair from the client's local and UTC strings; a
// missing half is derived with the stored pair's offset.
func pairFrom(n, old [2]string, what string) (pair, error) {
	if n[0] == "" && n[1] == "" {
		return pair{}, nil
	}
	var off time.Duration
	if ol, ok := parseEASWall(old[0]); ok {
		if ou, ok := ics.ParseEASTime(old[1]); ok {
			off = ol.Sub(ou)
		}
	}
	var p pair
	var ok bool
	if n[0] != "" {
		if p.local, ok = parseEASWall(n[0]); !ok {
			return p, item.Invalidf("%s %q", what, n[0])
		}
	}
	if n[1] != "" {
		if p.utc, ok = ics.ParseEASTime(n[1]); !ok {
			return p, item.Invalidf("Utc%s %q", what, n[1])
		}
		p.utc = p.utc.Truncate(time.Second)
	}
	switch {
	case n[0] == "":
		p.local = p.utc.Add(off)
	case n[1] == "":
		p.utc = p.local.Add(-off)
	}
	if d := p.local.Sub(p.utc); d > ics.MaxZoneSkew || d < -ics.MaxZoneSkew {
		return p, item.Invalidf("%s %s and Utc%s %s are not one time in a time zone (MS-ASTASK 2.2.2.12, 2.2.2.31)", what, n[0], what, n[1])
	}
	p.ok = true
	return p, nil
}

// writePair stores a date pair as DTSTART or DUE, or deletes it.
func writePair(todo *ical.Component, name string, p pair, useDate bool) {
	if !p.ok {
		todo.Props.Del(name)
		return
	}
	prop := ical.NewProp(name)
	if useDate {
		prop.Params.Set(ical.ParamValue, "DATE")
		prop.Value = p.local.Format(ics.DateLayout)
		if !p.utc.Equal(p.local) {
			prop.Params.Set(utcParam, p.utc.Format(ics.CompactUTC))
		}
	} else {
		prop.Value = p.utc.Format(ics.CompactUTC)
		if !p.local.Equal(p.utc) {
			prop.Params.Set(localParam, p.local.Format(ics.LocalLayout))
		}
	}
	todo.Props.Set(prop)
}

// complete applies Complete and DateCompleted (MS-ASTASK 2.2.2.7, 2.2.2.8:
// DateCompleted goes with Complete 1; the time of the change if absent).
func (a *applier) complete() error {
	c, dc := a.get(wbxml.TasksComplete), a.get(wbxml.TasksDateCompleted)
	if c != "1" {
		dc = ""
	}
	if c == a.old.vals[wbxml.TasksComplete] && dc == a.old.vals[wbxml.TasksDateCompleted] {
		return nil
	}
	todo := a.todo
	switch c {
	case "1":
		at := a.now
		if dc != "" {
			t, ok := ics.ParseEASTime(dc)
			if !ok {
				return item.Invalidf("DateCompleted %q", dc)
			}
			at = t
		}
		ics.SetText(todo, ical.PropStatus, "COMPLETED")
		ics.Stamp(todo, ical.PropCompleted, at)
		if todo.Props.Get(ical.PropPercentComplete) != nil {
			ics.SetText(todo, ical.PropPercentComplete, "100")
		}
	case "0":
		if strings.EqualFold(ics.Text(todo, ical.PropStatus), "COMPLETED") {
			ics.SetText(todo, ical.PropStatus, "NEEDS-ACTION")
		}
		todo.Props.Del(ical.PropCompleted)
		if strings.TrimSpace(ics.Text(todo, ical.PropPercentComplete)) == "100" {
			todo.Props.Del(ical.PropPercentComplete)
		}
	default:
		return item.Invalidf("Complete %q (MS-ASTASK 2.2.2.7)", c)
	}
	a.changed = true
	return nil
}

// reminder applies ReminderSet and ReminderTime: the reminder alarm gets
// an absolute trigger (also when the task's dates moved, so that a
// trigger relative to them keeps the time the client shows). ReminderSet
// 1 without a time keeps the stored alarm; 0 removes every alarm.
func (a *applier) reminder(datesChanged bool) error {
	set, at := a.get(wbxml.TasksReminderSet), a.get(wbxml.TasksReminderTime)
	if set != "1" {
		at = ""
	}
	same := set == a.old.vals[wbxml.TasksReminderSet] && at == a.old.vals[wbxml.TasksReminderTime]
	if same && !(datesChanged && at != "") {
		return nil
	}
	todo := a.todo
	switch {
	case set == "0":
		var keep []*ical.Component
		for _, c := range todo.Children {
			if c.Name != ical.CompAlarm {
				keep = append(keep, c)
			}
		}
		a.changed = a.changed || len(keep) != len(todo.Children)
		todo.Children = keep
		return nil
	case set != "1":
		return item.Invalidf("ReminderSet %q (MS-ASTASK 2.2.2.22)", set)
	case at == "":
		return nil
	}
	t, ok := ics.ParseEASTime(at)
	if !ok {
		return item.Invalidf("ReminderTime %q", at)
	}
	trig := ical.NewProp(ical.PropTrigger)
	trig.Params.Set(ical.ParamValue, "DATE-TIME")
	trig.Value = t.Format(ics.CompactUTC)
	alarm, _ := reminder(todo, readPair(todo.Props.Get(ical.PropDateTimeStart)), readPair(todo.Props.Get(ical.PropDue)))
	if alarm == nil {
		alarm = ical.NewComponent(ical.CompAlarm)
		alarm.Props.SetText(ical.PropAction, "DISPLAY")
		alarm.Props.SetText(ical.PropDescription, "Reminder")
		todo.Children = append(todo.Children, alarm)
	}
	alarm.Props.Set(trig)
	a.changed = true
	return nil
}

// recurrence applies Recurrence; when only the dates moved, the rule is
// rewritten for the new anchor (its Start and UNTIL form).
func (a *applier) recurrence(datesChanged bool) error {
	var nr recurrence
	switch {
	case a.in.hasRec:
		nr = a.in.rec
	case a.ghosted(wbxml.TasksRecurrence):
		nr = a.old.rec
	}
	ver := a.o.Version
	recChanged := !nr.forVersion(ver).equal(a.old.rec)
	if !recChanged && (!datesChanged || a.old.rec == nil) {
		return nil
	}
	a.changed = true
	if nr == nil {
		a.todo.Props.Del(ical.PropRecurrenceRule)
		return nil
	}
	start, due := readPair(a.todo.Props.Get(ical.PropDateTimeStart)), readPair(a.todo.Props.Get(ical.PropDue))
	// Elements the client's version cannot send keep their stored value.
	nr = nr.forVersion(ver)
	for t, s := range a.oldFull {
		if !recurSince(t, ver) {
			nr[t] = s
		}
	}
	dateAnchor := start.isDate || !start.ok && due.isDate
	a.todo.Props.Set(nr.toRRULE(dateAnchor, defaultStart(start, due)))
	return nil
}
