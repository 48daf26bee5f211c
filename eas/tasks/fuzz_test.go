package tasks

import (
	"math/rand"
	"testing"

	"github.com/easd/easd/eas/item/itemtest"
	"github.com/easd/easd/wbxml"
)

// fuzz describes this package's fuzz targets (itemtest.Fuzz).
var fuzz = itemtest.Fuzz{Codec: Codec{}, Versions: versions, Options: opts, Stored: sample,
	GenApp: func(r *rand.Rand) *wbxml.Node { return genApp(r, "16.1").app }, GenStored: genCalendar,
	Seeds: []string{"BEGIN:VCALENDAR\r\nX;A=\"b\"\r\nEND:VCALENDAR\r\n"}}

// FuzzApply: any decodable ApplicationData applies or fails with
// item.ErrInvalid; the result renders and is a fixed point of Render then
// Apply.
func FuzzApply(f *testing.F) { fuzz.Apply(f) }

// FuzzIndex: stored text fails in both Index and Render or works in both
// (never a panic); what renders is a fixed point of Render then Apply.
func FuzzIndex(f *testing.F) { fuzz.Index(f) }
