package calendar

import (
	"time"

	"github.com/easd/easd/eas/item"
	"github.com/emersion/go-ical"
)

// maxExpand bounds the occurrences expanded to find the end of a series;
// a longer one counts as endless.
const maxExpand = 100_000

// Index reads the index of a stored event: its UID, first start, last end
// (zero for an endless series) and subject.
func (Codec) Index(stored []byte) (item.Index, error) {
	cal, err := decodeCalendar(stored)
	if err != nil {
		return item.Index{}, err
	}
	c := newCtx(cal, item.Options{})
	if c.master == nil {
		return item.Index{}, errNoEvent
	}
	return c.index()
}

// allDayBounds widens a civil date range to the instants it can mean
// anywhere (UTC+14 to UTC-12), so that a FilterType window never misses
// an all-day event.
func allDayBounds(start, end time.Time) (time.Time, time.Time) {
	return start.Add(-14 * time.Hour), end.Add(12 * time.Hour)
}

// index computes the Index of the event.
func (c *ctx) index() (item.Index, error) {
	w, err := c.eventTimes(c.master)
	if err != nil {
		return item.Index{}, err
	}
	idx := item.Index{UID: rawValue(c.master, ical.PropUID)}
	idx.Summary, _ = getText(c.master, ical.PropSummary)
	bounds := func(t times) (time.Time, time.Time) {
		if t.allDay {
			return allDayBounds(t.start, t.end)
		}
		return t.start, t.end
	}
	idx.Start, idx.End = bounds(w)
	dur := w.end.Sub(w.start)
	if c.master.Props.Get(ical.PropRecurrenceRule) != nil {
		s, ok := c.seriesRule()
		count := 0
		if ok {
			count = s.rule.OrigOptions.Count
		}
		if !ok || (count == 0 && !s.rule.OrigOptions.Until.Before(s.limit)) {
			idx.End = time.Time{} // endless, or ends too far to matter
			return idx, nil
		}
		last := time.Time{}
		next := s.rule.Iterator()
		n := 0
		for ; ; n++ {
			o, more := next()
			if !more {
				break
			}
			if n >= maxExpand {
				idx.End = time.Time{}
				return idx, nil
			}
			last = o
		}
		if count > 0 && n < count && !s.rule.OrigOptions.Until.Before(s.limit) {
			idx.End = time.Time{} // COUNT not reached before the limit
			return idx, nil
		}
		if !last.IsZero() {
			at := s.at(last)
			lw := times{start: at, end: at.Add(dur), allDay: w.allDay}
			if _, e := bounds(lw); e.After(idx.End) {
				idx.End = e
			}
		}
	}
	for _, p := range c.master.Props.Values(ical.PropRecurrenceDates) {
		if t, date, _, err := c.readTime(&p); err == nil {
			if _, e := bounds(times{start: t, end: t.Add(dur), allDay: date}); e.After(idx.End) {
				idx.End = e
			}
		}
	}
	for _, ov := range c.overrides() {
		if ow, err := c.eventTimes(ov); err == nil {
			s, e := bounds(ow)
			if e.After(idx.End) {
				idx.End = e
			}
			if s.Before(idx.Start) {
				idx.Start = s
			}
		}
	}
	return idx, nil
}
