package email

import (
	"bytes"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// att summarises an airsyncbase:Attachment.
type att struct {
	Name, Ref, Method, Size, CID, Location string
	Inline                                 bool
}

// summary is the content of an ApplicationData, for comparisons.
type summary struct {
	To, Cc, From, ReplyTo, Subject, DisplayTo, ThreadTopic string
	Importance, Read, MessageClass, CPID, ContentClass     string
	Native, BodyType, BodySize                             string
	Truncated                                              bool
	Data                                                   *string
	Preview                                                string
	Atts                                                   []att
	// Version-dependent and derived values.
	DateReceived        string
	ConvID, ConvIndex   []byte
	HasCategories       bool
	Categories          []string
	LastVerb            string
	FlagStatus          string
	HasFlag             bool
	UnknownElementNames []string
}

// encodeDecode encodes n with wbxml.Encode (it must encode) and decodes it
// again, materialising streamed values.
func encodeDecode(t testing.TB, n *wbxml.Node) *wbxml.Node {
	t.Helper()
	var buf bytes.Buffer
	if err := wbxml.Encode(&buf, n); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	d, err := wbxml.DecodeBytes(buf.Bytes(), wbxml.Limits{})
	if err != nil {
		t.Fatalf("decode of the encoded item: %v", err)
	}
	return d
}

func summarize(t testing.TB, n *wbxml.Node) summary {
	t.Helper()
	if n.Tag != wbxml.AirSyncApplicationData {
		t.Fatalf("root is %v, want ApplicationData", n.Tag)
	}
	var s summary
	for _, c := range n.Children {
		v := c.Text()
		switch c.Tag {
		case wbxml.EmailTo:
			s.To = v
		case wbxml.EmailCc:
			s.Cc = v
		case wbxml.EmailFrom:
			s.From = v
		case wbxml.EmailReplyTo:
			s.ReplyTo = v
		case wbxml.EmailSubject:
			s.Subject = v
		case wbxml.EmailDateReceived:
			s.DateReceived = v
		case wbxml.EmailDisplayTo:
			s.DisplayTo = v
		case wbxml.EmailThreadTopic:
			s.ThreadTopic = v
		case wbxml.EmailImportance:
			s.Importance = v
		case wbxml.EmailRead:
			s.Read = v
		case wbxml.EmailMessageClass:
			s.MessageClass = v
		case wbxml.EmailInternetCPID:
			s.CPID = v
		case wbxml.EmailContentClass:
			s.ContentClass = v
		case wbxml.AirSyncBaseNativeBodyType:
			s.Native = v
		case wbxml.EmailFlag:
			s.HasFlag = true
			s.FlagStatus = c.ChildText(wbxml.EmailFlagStatus)
		case wbxml.Email2ConversationId:
			s.ConvID = c.Bytes()
		case wbxml.Email2ConversationIndex:
			s.ConvIndex = c.Bytes()
		case wbxml.Email2LastVerbExecuted:
			s.LastVerb = v
		case wbxml.EmailCategories:
			s.HasCategories = true
			for cat := range c.Each(wbxml.EmailCategory) {
				s.Categories = append(s.Categories, cat.Text())
			}
		case wbxml.AirSyncBaseBody:
			s.BodyType = c.ChildText(wbxml.AirSyncBaseType)
			s.BodySize = c.ChildText(wbxml.AirSyncBaseEstimatedDataSize)
			s.Truncated = c.ChildText(wbxml.AirSyncBaseTruncated) == "1"
			if d := c.Child(wbxml.AirSyncBaseData); d != nil {
				v := d.Text()
				s.Data = &v
			}
			s.Preview = c.ChildText(wbxml.AirSyncBasePreview)
		case wbxml.AirSyncBaseAttachments:
			for a := range c.Each(wbxml.AirSyncBaseAttachment) {
				s.Atts = append(s.Atts, att{
					Name:     a.ChildText(wbxml.AirSyncBaseDisplayName),
					Ref:      a.ChildText(wbxml.AirSyncBaseFileReference),
					Method:   a.ChildText(wbxml.AirSyncBaseMethod),
					Size:     a.ChildText(wbxml.AirSyncBaseEstimatedDataSize),
					CID:      a.ChildText(wbxml.AirSyncBaseContentId),
					Location: a.ChildText(wbxml.AirSyncBaseContentLocation),
					Inline:   a.ChildText(wbxml.AirSyncBaseIsInline) == "1",
				})
			}
		default:
			s.UnknownElementNames = append(s.UnknownElementNames, c.Tag.String())
		}
	}
	return s
}

// convert converts the message in b and returns the decoded element.
func convert(t testing.TB, b []byte, m Meta, o Options) *wbxml.Node {
	t.Helper()
	it, err := Convert(bytes.NewReader(b), m, o)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	defer it.Close()
	return encodeDecode(t, it.Node)
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ref(p string) string { return "R:" + p }

func str(s string) *string { return &s }

// base returns the fields every converted message has with default Meta.
func base(s summary) summary {
	if s.Importance == "" {
		s.Importance = "1"
	}
	if s.Read == "" {
		s.Read = "0"
	}
	if s.MessageClass == "" {
		s.MessageClass = "IPM.Note"
	}
	if s.ContentClass == "" {
		s.ContentClass = "urn:content-classes:message"
	}
	s.CPID = "65001"
	s.HasFlag = true
	return s
}

// TestConvertFiles converts the messages in testdata as a 14.1 client
// asking for plain text would.
func TestConvertFiles(t *testing.T) {
	tests := []struct {
		file string
		o    Options
		want summary
	}{
		{"plain.eml", Options{}, summary{
			To:          `"Jürgen Müller" <juergen@example.com>, bob@example.com`,
			Cc:          `"Carol \"CJ\" Jones" <carol@example.net>`,
			From:        `"Alice Example" <alice@example.org>`,
			ReplyTo:     `"Lists" <list@example.org>`,
			Subject:     "Re: Fwd: Lunch on Freitag",
			DisplayTo:   "Jürgen Müller; bob@example.com",
			ThreadTopic: "Lunch on Freitag",
			Importance:  "2",
			Native:      "1", BodyType: "1", BodySize: "99",
			Data: str("Hi Jürgen,\r\n\r\nLunch at noon works — see you there. \r\nThis line is soft wrapped.\r\n\r\n--  \r\nAlice\r\n"),
		}},
		{"html.eml", Options{}, summary{
			To: "reader@example.com", From: "news@example.com", Subject: "Newsletter",
			DisplayTo: "reader@example.com", ThreadTopic: "Newsletter", Importance: "0",
			Native: "2", BodyType: "1", BodySize: "95",
			Data: str("Hello & welcome\r\n\r\nFirst paragraph with \"entities\" <here>.\r\n\r\n- one\r\n- two\r\n\r\nline\r\nbreak  done"),
		}},
		{"alternative.eml", Options{}, summary{
			To: `"Erin" <erin@example.com>`, From: `"Dave" <dave@example.com>`, Subject: "Alternatives",
			DisplayTo: "Erin", ThreadTopic: "Alternatives",
			Native: "2", BodyType: "1", BodySize: "31",
			Data: str("Plain version of the message.\r\n"),
		}},
		{"mixed.eml", Options{FileRef: ref}, summary{
			To:   `"Grace" <grace@example.com>, "Heidi" <heidi@example.com>`,
			From: `"Frank" <frank@example.com>`, Subject: "Report with logo",
			DisplayTo: "Grace; Heidi", ThreadTopic: "Report with logo",
			Native: "2", BodyType: "1", BodySize: "24",
			Data: str("See the report. [logo]\r\n"),
			Atts: []att{
				{Name: "logo.png", Ref: "R:1.2", Method: "1", Size: "608", CID: "logo@example.com", Inline: true},
				{Name: "Q1 réport.pdf", Ref: "R:2", Method: "1", Size: "2064"},
				{Name: "data.csv", Ref: "R:3", Method: "1", Size: "79"},
				{Name: "Original nøte.eml", Ref: "R:4", Method: "5", Size: "155"},
			},
		}},
		{"mixed.eml", Options{}, summary{ // no FileRef: no Attachments
			To:   `"Grace" <grace@example.com>, "Heidi" <heidi@example.com>`,
			From: `"Frank" <frank@example.com>`, Subject: "Report with logo",
			DisplayTo: "Grace; Heidi", ThreadTopic: "Report with logo",
			Native: "2", BodyType: "1", BodySize: "24",
			Data: str("See the report. [logo]\r\n"),
		}},
		{"latin1.eml", Options{}, summary{
			To: "anne@example.fr", From: `"René François" <rene@example.fr>`,
			Subject: "Résumé du café", DisplayTo: "anne@example.fr", ThreadTopic: "Résumé du café",
			Native: "1", BodyType: "1", BodySize: "36",
			Data: str("Café crème über alles – €5.\r\n"),
		}},
		{"sjis.eml", Options{}, summary{
			To: "tanaka@example.jp", From: `"山田" <yamada@example.jp>`,
			Subject: "会議の件", DisplayTo: "tanaka@example.jp", ThreadTopic: "会議の件",
			Native: "1", BodyType: "1", BodySize: "53",
			Data: str("こんにちは世界。日本語の本文です。\r\n"),
		}},
		{"unknown-charset.eml", Options{}, summary{
			To: "y@example.com", From: "x@example.com",
			// A header word in an unknown charset keeps its raw text.
			Subject: "=?x-unknown?Q?caf=E9?=", DisplayTo: "y@example.com", ThreadTopic: "=?x-unknown?Q?caf=E9?=",
			Native: "1", BodyType: "1", BodySize: "38",
			Data: str("café and valid utf-8 é and nulbyte\r\n"),
		}},
		{"broken.eml", Options{FileRef: ref}, summary{
			To: "undisclosed-recipients:;", From: `"Broken" <broken@example.com>`,
			Subject: "Broken MIME", DisplayTo: "undisclosed-recipients:;", ThreadTopic: "Broken MIME",
			Native: "1", BodyType: "1", BodySize: "82",
			Data: str("Text with a bad escape =ZZ and a lone = sign.\r\nInner text without close delimiter."),
			Atts: []att{
				{Name: "bad.bin", Ref: "R:2", Method: "1", Size: "16"},
				{Name: "last.gif", Ref: "R:4", Method: "1", Size: "14"},
			},
		}},
		{"smime-signed.eml", Options{FileRef: ref}, summary{
			To: "you@example.com", From: "signer@example.com", Subject: "Signed",
			DisplayTo: "you@example.com", ThreadTopic: "Signed",
			MessageClass: "IPM.Note.SMIME.MultipartSigned",
			Native:       "1", BodyType: "1", BodySize: "14", Data: str("Signed text.\r\n"),
			Atts: []att{{Name: "smime.p7s", Ref: "R:2", Method: "1", Size: "100"}},
		}},
		{"smime-encrypted.eml", Options{FileRef: ref}, summary{
			To: "you@example.com", From: "sender@example.com", Subject: "Encrypted",
			DisplayTo: "you@example.com", ThreadTopic: "Encrypted",
			MessageClass: "IPM.Note.SMIME",
			Native:       "1", BodyType: "1", BodySize: "0", Data: str(""),
			Atts: []att{{Name: "smime.p7m", Ref: "R:1", Method: "1", Size: "200"}},
		}},
		{"meeting.eml", Options{FileRef: ref}, summary{
			To: `"Attendee" <att@example.com>`, From: `"Organizer" <org@example.com>`,
			Subject: "Invitation: Planning", DisplayTo: "Attendee", ThreadTopic: "Invitation: Planning",
			MessageClass: "IPM.Schedule.Meeting.Request", ContentClass: "urn:content-classes:calendarmessage",
			Native: "1", BodyType: "1", BodySize: "16", Data: str("You are invited."),
			// The attached .ics is a file; the inline calendar is the meeting.
			Atts: []att{{Name: "invite.ics", Ref: "R:2", Method: "1", Size: "46"}},
			// Its email:MeetingRequest is checked in meeting_test.go.
			UnknownElementNames: []string{"Email:MeetingRequest"},
		}},
		{"meeting-cancel.eml", Options{FileRef: ref}, summary{
			To: `"Attendee" <att@example.com>`, From: `"Organizer" <org@example.com>`,
			Subject: "Canceled: Planning", DisplayTo: "Attendee", ThreadTopic: "Canceled: Planning",
			MessageClass: "IPM.Schedule.Meeting.Canceled", ContentClass: "urn:content-classes:calendarmessage",
			Native: "1", BodyType: "1", BodySize: "9", Data: str("Canceled."),
		}},
	}
	ignore := func(s summary) summary {
		s.DateReceived, s.ConvID, s.ConvIndex = "", nil, nil
		s.HasCategories, s.Categories = false, nil
		return s
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			tc.o.Version = "14.1"
			got := ignore(summarize(t, convert(t, readFile(t, tc.file), Meta{}, tc.o)))
			if diff := cmp.Diff(base(tc.want), got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			if got.Data != nil && got.BodySize != strconv.Itoa(len(*got.Data)) {
				t.Errorf("EstimatedDataSize %s, Data has %d bytes", got.BodySize, len(*got.Data))
			}
		})
	}
}

// TestConvertHTMLBody checks HTML bodies: native HTML, plain text wrapped,
// and the preview beside them.
func TestConvertHTMLBody(t *testing.T) {
	o := Options{Version: "14.1", BodyPrefs: []BodyPreference{{Type: 2, Preview: 20}}}
	s := summarize(t, convert(t, readFile(t, "alternative.eml"), Meta{}, o))
	want := "<html><body><p>HTML <b>version</b> of the message.</p></body></html>\r\n"
	if s.BodyType != "2" || s.Data == nil || *s.Data != want || s.BodySize != "70" {
		t.Errorf("native HTML: type %s size %s data %q", s.BodyType, s.BodySize, deref(s.Data))
	}
	if s.Preview != "Plain version of the" {
		t.Errorf("preview %q", s.Preview)
	}

	s = summarize(t, convert(t, []byte("Subject: x\r\n\r\na < b & \"c\"\r\nline 2\r\n"), Meta{}, o))
	want = wrapPrefix + "a &lt; b &amp; &quot;c&quot;<br>\nline 2<br>\n" + wrapSuffix
	if s.Native != "1" || s.BodyType != "2" || deref(s.Data) != want || s.BodySize != strconv.Itoa(len(want)) {
		t.Errorf("wrapped text: native %s type %s size %s data %q", s.Native, s.BodyType, s.BodySize, deref(s.Data))
	}
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// TestConvertMeta checks the fields taken from Meta and their version
// dependence: 12.1 has no Categories, ConversationId/Index,
// LastVerbExecuted or Preview.
func TestConvertMeta(t *testing.T) {
	msg := readFile(t, "plain.eml")
	m := Meta{
		Read:       true,
		Flag:       &Flag{Status: 2, Type: "Flag for follow up"},
		Categories: []string{"Red", " ", "Work"},
		Received:   time.Date(2024, 3, 5, 13, 30, 1, 5e8, time.UTC),
		Answered:   true,
		Forwarded:  true,
	}
	prefs := []BodyPreference{{Type: 2, Preview: 10}}
	s14 := summarize(t, convert(t, msg, m, Options{Version: "14.1", BodyPrefs: prefs}))
	s12 := summarize(t, convert(t, msg, m, Options{Version: "12.1", BodyPrefs: prefs}))

	if s14.Read != "1" || s14.FlagStatus != "2" || s14.DateReceived != "2024-03-05T13:30:01.500Z" {
		t.Errorf("14.1: read %s flag %s date %s", s14.Read, s14.FlagStatus, s14.DateReceived)
	}
	if diff := cmp.Diff([]string{"Red", "Work"}, s14.Categories); diff != "" {
		t.Errorf("categories (-want +got):\n%s", diff)
	}
	if s14.LastVerb != "3" || len(s14.ConvID) != 16 || len(s14.ConvIndex) != 5 || s14.Preview != "Hi Jürgen," {
		t.Errorf("14.1: verb %q convid %x index %x preview %q", s14.LastVerb, s14.ConvID, s14.ConvIndex, s14.Preview)
	}
	if diff := cmp.Diff(ConversationIndex(time.Date(2024, 3, 5, 13, 29, 58, 0, time.UTC)), s14.ConvIndex); diff != "" {
		t.Errorf("ConversationIndex is not from the Date header:\n%s", diff)
	}
	if s12.HasCategories || s12.ConvID != nil || s12.ConvIndex != nil || s12.LastVerb != "" || s12.Preview != "" {
		t.Errorf("12.1 has 14.0 elements: %+v", s12)
	}
	if s12.Read != "1" || s12.FlagStatus != "2" || s12.BodyType != "2" || s12.Data == nil {
		t.Errorf("12.1 lacks common elements: %+v", s12)
	}
	if len(s14.UnknownElementNames) != 0 {
		t.Errorf("unexpected elements %v", s14.UnknownElementNames)
	}

	// Only Answered: REPLYTOSENDER. No Date header and no Received: no
	// DateReceived, no ConversationIndex, a ConversationId anyway.
	s := summarize(t, convert(t, []byte("From: a@b\r\nSubject: s\r\n\r\nbody\r\n"), Meta{Answered: true}, Options{}))
	if s.LastVerb != "1" || s.DateReceived != "" || s.ConvIndex != nil || len(s.ConvID) != 16 {
		t.Errorf("no dates: verb %q date %q index %x id %x", s.LastVerb, s.DateReceived, s.ConvIndex, s.ConvID)
	}
}

// TestConversationThread checks that a thread's messages share their
// ConversationId.
func TestConversationThread(t *testing.T) {
	root := "Message-ID: <Root@Example.org>\r\nSubject: Plan\r\n\r\nx\r\n"
	reply := "Message-ID: <r1@example.org>\r\nIn-Reply-To: <root@example.org>\r\nSubject: Re: Plan\r\n\r\nx\r\n"
	reply2 := "Message-ID: <r2@example.org>\r\nIn-Reply-To: <r1@example.org>\r\nReferences: <root@example.org>\r\n <r1@example.org>\r\nSubject: Re: Re: Plan\r\n\r\nx\r\n"
	other := "Message-ID: <other@example.org>\r\nSubject: Plan\r\n\r\nx\r\n"
	id := func(m string) []byte {
		return summarize(t, convert(t, []byte(m), Meta{}, Options{Version: "14.0"})).ConvID
	}
	a, b, c, d := id(root), id(reply), id(reply2), id(other)
	if !bytes.Equal(a, b) || !bytes.Equal(a, c) || bytes.Equal(a, d) {
		t.Errorf("ids: root %x reply %x reply2 %x other %x", a, b, c, d)
	}
	if diff := cmp.Diff(a, ConversationID("<root@example.org>", "", "")); diff != "" {
		t.Errorf("ConversationID differs from the element:\n%s", diff)
	}
}
