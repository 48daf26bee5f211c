package wbxml_test

// Benchmarks on a realistic corpus generated here (deterministically):
//   - sync: a Sync response with 2,000 Email Adds, bodies of mixed sizes
//     (128 B to 16 KiB), ConversationId/ConversationIndex as OPAQUE;
//   - foldersync: a FolderSync response with 200 folders;
//   - itemops: an ItemOperations response with a 5 MiB OPAQUE Data.
// Each is measured for decode and encode, in the streaming layer and the
// tree layer, with b.SetBytes(document size). bench/wbxml/run.sh writes the
// same documents to files (TestWriteBenchCorpus) and times libwbxml on them.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/easd/easd/wbxml"
)

type benchDoc struct {
	name string
	tree *wbxml.Node
	bin  []byte
	toks []benchTok
}

type benchTok struct {
	kind wbxml.Kind
	tag  wbxml.Tag
	data []byte
}

var benchDocs = sync.OnceValue(func() []*benchDoc {
	docs := []*benchDoc{
		{name: "sync", tree: benchSync()},
		{name: "foldersync", tree: benchFolderSync()},
		{name: "itemops", tree: benchItemOps()},
	}
	for _, d := range docs {
		var b bytes.Buffer
		if err := wbxml.Encode(&b, d.tree); err != nil {
			panic(err)
		}
		d.bin = b.Bytes()
		d.toks = recordTokens(d.tree, nil)
	}
	return docs
})

// recordTokens flattens a tree into the streaming calls that encode it.
func recordTokens(n *wbxml.Node, out []benchTok) []benchTok {
	if len(n.Value) == 0 && len(n.Children) == 0 && !n.Opaque {
		return append(out, benchTok{kind: wbxml.KindStart, tag: n.Tag, data: nil})
	}
	out = append(out, benchTok{kind: wbxml.KindStart, tag: n.Tag, data: []byte{1}})
	switch {
	case n.Opaque:
		out = append(out, benchTok{kind: wbxml.KindOpaque, data: n.Value})
	case len(n.Value) > 0:
		out = append(out, benchTok{kind: wbxml.KindText, data: n.Value})
	}
	for _, c := range n.Children {
		out = recordTokens(c, out)
	}
	return append(out, benchTok{kind: wbxml.KindEnd})
}

var benchWords = strings.Fields("the quick brown fox jumps over lazy dog meeting budget report lunch tomorrow please review attached agenda thanks regards")

func benchText(r *rand.Rand, n int) string {
	var b strings.Builder
	b.WriteString("<html><body><p>")
	for b.Len() < n-18 {
		b.WriteString(benchWords[r.IntN(len(benchWords))])
		b.WriteByte(' ')
	}
	b.WriteString("</p></body></html>")
	return b.String()
}

func benchSync() *wbxml.Node {
	r := rand.New(rand.NewPCG(7, 7))
	sizes := []int{256, 1024, 4096, 512, 16384, 2048, 128, 8192}
	cmds := wbxml.E(wbxml.AirSyncCommands)
	for i := range 2000 {
		body := benchText(r, sizes[i%len(sizes)])
		conv := make([]byte, 16)
		for j := range conv {
			conv[j] = byte(r.IntN(256))
		}
		cmds.Append(wbxml.E(wbxml.AirSyncAdd,
			wbxml.T(wbxml.AirSyncServerId, fmt.Sprintf("1:%d", i+1)),
			wbxml.E(wbxml.AirSyncApplicationData,
				wbxml.T(wbxml.EmailTo, fmt.Sprintf("\"User %d\" <user%d@example.com>", i, i)),
				wbxml.T(wbxml.EmailFrom, "\"Alice Example\" <alice@example.com>"),
				wbxml.T(wbxml.EmailSubject, fmt.Sprintf("Message number %d about the %s", i, benchWords[i%len(benchWords)])),
				wbxml.T(wbxml.EmailDateReceived, "2024-05-01T10:15:00.000Z"),
				wbxml.T(wbxml.EmailDisplayTo, fmt.Sprintf("User %d", i)),
				wbxml.T(wbxml.EmailThreadTopic, "Message thread"),
				wbxml.T(wbxml.EmailImportance, "1"),
				wbxml.T(wbxml.EmailRead, fmt.Sprint(i%2)),
				wbxml.E(wbxml.AirSyncBaseBody,
					wbxml.T(wbxml.AirSyncBaseType, "2"),
					wbxml.T(wbxml.AirSyncBaseEstimatedDataSize, fmt.Sprint(len(body))),
					wbxml.T(wbxml.AirSyncBaseData, body)),
				wbxml.T(wbxml.EmailMessageClass, "IPM.Note"),
				wbxml.T(wbxml.EmailInternetCPID, "65001"),
				wbxml.E(wbxml.EmailFlag),
				wbxml.T(wbxml.EmailContentClass, "urn:content-classes:message"),
				wbxml.T(wbxml.AirSyncBaseNativeBodyType, "2"),
				wbxml.O(wbxml.Email2ConversationId, conv),
				wbxml.O(wbxml.Email2ConversationIndex, conv[:5]),
			)))
	}
	return wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, "1013"), wbxml.T(wbxml.AirSyncCollectionId, "1"), wbxml.T(wbxml.AirSyncStatus, "1"),
		cmds, wbxml.E(wbxml.AirSyncMoreAvailable))))
}

func benchFolderSync() *wbxml.Node {
	ch := wbxml.E(wbxml.FolderHierarchyChanges, wbxml.T(wbxml.FolderHierarchyCount, "200"))
	for i := range 200 {
		ch.Append(wbxml.E(wbxml.FolderHierarchyAdd,
			wbxml.T(wbxml.FolderHierarchyServerId, fmt.Sprint(i+1)),
			wbxml.T(wbxml.FolderHierarchyParentId, fmt.Sprint(i/10)),
			wbxml.T(wbxml.FolderHierarchyDisplayName, fmt.Sprintf("Folder %d", i+1)),
			wbxml.T(wbxml.FolderHierarchyType, fmt.Sprint(1+i%19))))
	}
	return wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchyStatus, "1"), wbxml.T(wbxml.FolderHierarchySyncKey, "1"), ch)
}

func benchItemOps() *wbxml.Node {
	r := rand.New(rand.NewPCG(5, 5))
	payload := make([]byte, 5<<20)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range payload {
		payload[i] = alphabet[r.IntN(64)] // printable, so libwbxml can print it
	}
	return wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, "1"),
		wbxml.E(wbxml.ItemOperationsResponse, wbxml.E(wbxml.ItemOperationsFetch,
			wbxml.T(wbxml.ItemOperationsStatus, "1"),
			wbxml.T(wbxml.AirSyncBaseFileReference, "1%3a20%3a0"),
			wbxml.E(wbxml.ItemOperationsProperties,
				wbxml.T(wbxml.AirSyncBaseContentType, "application/octet-stream"),
				wbxml.O(wbxml.ItemOperationsData, payload)))))
}

// benchEach runs f per corpus document. The loops use b.N rather than
// b.Loop: b.Loop keeps every call result alive in memory, which doubles the
// measured cost of a Decoder.Next loop.
func benchEach(b *testing.B, f func(b *testing.B, d *benchDoc)) {
	for _, d := range benchDocs() {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(d.bin)))
			b.ReportAllocs()
			b.ResetTimer()
			f(b, d)
		})
	}
}

// BenchmarkDecodeStream: Decoder.Next over the whole document, reading
// OPAQUE payloads with OpaqueBytes; the decoder is reused with Reset.
func BenchmarkDecodeStream(b *testing.B) {
	benchEach(b, func(b *testing.B, doc *benchDoc) {
		d := wbxml.NewDecoder(nil, wbxml.Limits{})
		r := bytes.NewReader(nil)
		tokens := 0
		for range b.N {
			r.Reset(doc.bin)
			d.Reset(r)
			tokens = 0
			for {
				tok, err := d.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				tokens++
				if tok.Kind == wbxml.KindOpaque {
					if _, err := d.OpaqueBytes(); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		b.ReportMetric(float64(tokens), "tokens/op")
	})
}

// BenchmarkDecodeTree: Decode from an io.Reader into a tree.
func BenchmarkDecodeTree(b *testing.B) {
	benchEach(b, func(b *testing.B, doc *benchDoc) {
		r := bytes.NewReader(nil)
		for range b.N {
			r.Reset(doc.bin)
			if _, err := wbxml.Decode(r, wbxml.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeStream: replays the document's Encoder calls into a reused
// buffer (so OPAQUE payloads are really copied, as to a socket).
func BenchmarkEncodeStream(b *testing.B) {
	benchEach(b, func(b *testing.B, doc *benchDoc) {
		var out bytes.Buffer
		e := wbxml.NewEncoder(&out)
		for range b.N {
			out.Reset()
			e.Reset(&out)
			for _, t := range doc.toks {
				switch t.kind {
				case wbxml.KindStart:
					if t.data == nil {
						e.EmptyElement(t.tag)
					} else {
						e.StartElement(t.tag)
					}
				case wbxml.KindText:
					e.WriteTextBytes(t.data)
				case wbxml.KindOpaque:
					e.WriteOpaque(t.data)
				case wbxml.KindEnd:
					e.EndElement()
				}
			}
			if err := e.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeTree: Encode of a prebuilt tree into a reused buffer.
func BenchmarkEncodeTree(b *testing.B) {
	benchEach(b, func(b *testing.B, doc *benchDoc) {
		var out bytes.Buffer
		for range b.N {
			out.Reset()
			if err := wbxml.Encode(&out, doc.tree); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkToXML and BenchmarkFromXML measure the text form, the closest
// equivalent of what libwbxml's wbxml2xml and xml2wbxml do.
func BenchmarkToXML(b *testing.B) {
	benchEach(b, func(b *testing.B, doc *benchDoc) {
		for range b.N {
			if err := wbxml.ToXML(io.Discard, bytes.NewReader(doc.bin), wbxml.XMLOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkFromXML(b *testing.B) {
	benchEach(b, func(b *testing.B, doc *benchDoc) {
		var x bytes.Buffer
		if err := wbxml.ToXML(&x, bytes.NewReader(doc.bin), wbxml.XMLOptions{}); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if err := wbxml.FromXML(io.Discard, bytes.NewReader(x.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestWriteBenchCorpus writes the benchmark documents for
// bench/wbxml/run.sh when $WBXML_BENCH_DIR is set: NAME.wbxml (our
// encoding) and NAME.xml (the same document in libwbxml's XML dialect).
func TestWriteBenchCorpus(t *testing.T) {
	dir := os.Getenv("WBXML_BENCH_DIR")
	if dir == "" {
		t.Skip("set WBXML_BENCH_DIR to write the benchmark corpus (bench/wbxml/run.sh does)")
	}
	for _, d := range benchDocs() {
		back, err := wbxml.DecodeBytes(d.bin, wbxml.Limits{})
		if err != nil || !sameTree(back, d.tree) {
			t.Fatalf("%s: corpus does not round-trip: %v", d.name, err)
		}
		writeFile(t, filepath.Join(dir, d.name+".wbxml"), d.bin)
		writeFile(t, filepath.Join(dir, d.name+".xml"), writeLibwbxmlXML(d.tree))
		t.Logf("%s: %d bytes WBXML, %d tokens", d.name, len(d.bin), len(d.toks))
	}
}
