package tasks

import (
	"time"

	"github.com/easd/easd/eas/item/ics"
)

// parseEASWall parses an EAS dateTime and returns its wall clock as
// written, as a UTC time: the "local" task dates are local times written
// with Z (MS-ASTASK 2.2.2.12 DueDate, 2.2.2.26 StartDate).
func parseEASWall(s string) (time.Time, bool) {
	t, ok := ics.ParseEASTimeKeepZone(s)
	if !ok {
		return time.Time{}, false
	}
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC), true
}

// easTime formats an instant as an EAS dateTime.
func easTime(t time.Time) string { return t.UTC().Format(ics.EASLayout) }
