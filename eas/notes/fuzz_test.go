package notes

import (
	"math/rand"
	"testing"

	"github.com/easd/easd/eas/item/itemtest"
	"github.com/easd/easd/wbxml"
)

const fuzzStored = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VJOURNAL\r\nUID:u\r\nDTSTAMP:20240101T000000Z\r\n" +
	"SUMMARY:s\r\nDESCRIPTION:d\r\nX-FOO:keep\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n"

// fuzz describes this package's fuzz targets (itemtest.Fuzz).
var fuzz = itemtest.Fuzz{Codec: Codec{}, Versions: versions, Options: opts, Stored: fuzzStored,
	GenApp: func(r *rand.Rand) *wbxml.Node { return genApp(r).app }, GenStored: foreign,
	Seeds: []string{"BEGIN:VCALENDAR\r\nX;A=\"b\"\r\nEND:VCALENDAR\r\n"}}

// FuzzApply: any decodable ApplicationData applies or fails with
// item.ErrInvalid; the result is a fixed point of Render then Apply.
func FuzzApply(f *testing.F) { fuzz.Apply(f) }

// FuzzIndex: stored text fails in both Index and Render or works in both
// (never a panic); what renders is a fixed point of Render then Apply.
func FuzzIndex(f *testing.F) { fuzz.Index(f) }
