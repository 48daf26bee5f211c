package email

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzSeeds adds the testdata messages and a few hand-made oddities.
func fuzzSeeds(f *testing.F, add func(msg []byte)) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed messages: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
	for _, s := range []string{
		"",
		"\r\n\r\n",
		"Subject: =?utf-8?q?=E2=82?=\r\n\r\n\xff\xfe",
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n\r\n--x--",
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/related; boundary=x\r\n\r\n--x\r\n\r\nloop\r\n--x--",
		"Content-Type: text/html\r\n\r\n<p>a<br><li><pre>b</pre><script>",
		"Content-Type: text/plain; charset=shift_jis\r\nContent-Transfer-Encoding: base64\r\n\r\n\x82\xa0====",
		"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx",
		"Content-Type: text/calendar; method=REPLY\r\n\r\nATTENDEE;PARTSTAT=DECLINED:x",
	} {
		add([]byte(s))
	}
}

// fuzzOptions derives conversion options from mode.
func fuzzOptions(mode uint16) Options {
	o := Options{
		Version:     []string{"12.1", "14.0", "14.1", "16.1"}[mode&3],
		MIMESupport: int(mode>>2) % 3,
		FileRef:     func(p string) string { return p },
	}
	if mode&(1<<4) != 0 {
		o.SpoolMemory = 64
	}
	sizes := []int64{0, 1, 3, 17, 200, 5000}
	for i := 0; i < int(mode>>5)%4; i++ {
		m := int(mode >> (7 + 3*i))
		o.BodyPrefs = append(o.BodyPrefs, BodyPreference{
			Type:           m%4 + 1,
			TruncationSize: sizes[m%len(sizes)],
			AllOrNone:      m&4 != 0,
			Preview:        []int{0, 5, 255}[m%3],
		})
	}
	return o
}

// checkItem checks invariants of a converted message.
func checkItem(t *testing.T, it *Item, o Options) summary {
	t.Helper()
	s := summarize(t, encodeDecode(t, it.Node))
	for _, v := range []string{s.To, s.Cc, s.From, s.ReplyTo, s.Subject, s.DisplayTo, s.ThreadTopic, s.Preview} {
		if !utf8.ValidString(v) || bytes.IndexByte([]byte(v), 0) >= 0 {
			t.Fatalf("invalid text %q", v)
		}
	}
	size, err := strconv.ParseInt(s.BodySize, 10, 64)
	if err != nil || size < 0 {
		t.Fatalf("EstimatedDataSize %q", s.BodySize)
	}
	switch s.BodyType {
	case "1", "2":
		if s.Data != nil && !utf8.ValidString(*s.Data) {
			t.Fatalf("type %s data is not UTF-8", s.BodyType)
		}
	case "4":
	default:
		t.Fatalf("body type %q", s.BodyType)
	}
	if s.Data != nil {
		if int64(len(*s.Data)) > size {
			t.Fatalf("data %d bytes > EstimatedDataSize %d", len(*s.Data), size)
		}
		if !s.Truncated && s.BodyType != "4" && int64(len(*s.Data)) != size {
			t.Fatalf("untruncated data %d bytes, EstimatedDataSize %d", len(*s.Data), size)
		}
	}
	if utf8.RuneCountInString(s.Preview) > maxPreview {
		t.Fatalf("preview of %d characters", utf8.RuneCountInString(s.Preview))
	}
	return s
}

func FuzzConvert(f *testing.F) {
	fuzzSeeds(f, func(msg []byte) { f.Add(msg, uint16(0x2fe5)) })
	f.Fuzz(func(t *testing.T, msg []byte, mode uint16) {
		o := fuzzOptions(mode)
		m := Meta{Read: mode&1 != 0, Received: time.Unix(int64(mode)<<16, 0), Categories: []string{string(msg[:min(len(msg), 8)])}}
		it, err := Convert(bytes.NewReader(msg), m, o)
		if err != nil {
			t.Fatalf("Convert: %v", err)
		}
		defer it.Close()
		checkItem(t, it, o)
	})
}

// FuzzOpenPart checks OpenPart alone and against Convert: every listed
// attachment opens, with the listed name and size.
func FuzzOpenPart(f *testing.F) {
	fuzzSeeds(f, func(msg []byte) { f.Add(msg, "2") })
	f.Fuzz(func(t *testing.T, msg []byte, path string) {
		err := OpenPart(bytes.NewReader(msg), path, func(p PartInfo, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
		if err != nil && !errors.Is(err, ErrNoPart) {
			t.Fatalf("OpenPart(%q): %v", path, err)
		}
		o := Options{FileRef: func(p string) string { return p }}
		it, err := Convert(bytes.NewReader(msg), Meta{}, o)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		for _, a := range checkItem(t, it, o).Atts {
			var n int64
			var name string
			err := OpenPart(bytes.NewReader(msg), a.Ref, func(p PartInfo, r io.Reader) error {
				name = p.Name
				var err error
				n, err = io.Copy(io.Discard, r)
				return err
			})
			if err != nil || strconv.FormatInt(n, 10) != a.Size || name != a.Name {
				t.Fatalf("attachment %+v: OpenPart gives %q, %d bytes, %v", a, name, n, err)
			}
		}
	})
}
