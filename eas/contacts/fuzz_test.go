package contacts

import (
	"math/rand"
	"testing"

	"github.com/easd/easd/eas/item/itemtest"
	"github.com/easd/easd/wbxml"
)

// fuzzStored is the item a fuzzed Change applies to.
const fuzzStored = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u1\r\nN:Doe;Jane;;;\r\nFN:Jane Doe\r\n" +
	"TEL;TYPE=WORK,PREF:1\r\nTEL;TYPE=work:2\r\nEMAIL:a@b.example\r\nX-FOO:keep\r\n" +
	"ADR;TYPE=home:PO;;Street;City;;;\r\nBDAY:1980-05-17\r\nPHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgo=\r\nEND:VCARD\r\n"

// fuzz describes this package's fuzz targets (itemtest.Fuzz).
var fuzz = itemtest.Fuzz{Codec: Codec{}, Versions: versions, Options: opts, Stored: fuzzStored,
	GenApp: func(r *rand.Rand) *wbxml.Node { return genApp(r, "16.1").app }, GenStored: genCard,
	Seeds: []string{"BEGIN:VCARD\r\nX;A=\"b\r\nEND:VCARD"}}

// FuzzApply: any decodable ApplicationData either applies or fails with
// item.ErrInvalid; what it applies renders, and applying the rendering
// back is a fixed point (the stored bytes do not change).
func FuzzApply(f *testing.F) { fuzz.Apply(f) }

// FuzzIndex: any stored text either fails in both Index and Render or
// works in both (never a panic), and a vCard that renders is a fixed
// point of Render then Apply.
func FuzzIndex(f *testing.F) { fuzz.Index(f) }
