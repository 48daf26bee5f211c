package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWBXMLCommand decodes every golden WBXML file to XML and encodes it
// back to the same bytes.
func TestWBXMLCommand(t *testing.T) {
	files, err := filepath.Glob("../../wbxml/testdata/golden/*.wbxml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := easd(t, string(in), nil, "wbxml", "decode")
		if dec.code != 0 || !strings.Contains(dec.stdout, "<!DOCTYPE ActiveSync") {
			t.Errorf("%s: decode exit %d: %s", f, dec.code, dec.stderr)
			continue
		}
		enc := easd(t, dec.stdout, nil, "wbxml", "encode")
		if enc.code != 0 || enc.stdout != string(in) {
			t.Errorf("%s: decode then encode changed the bytes (exit %d: %s)", f, enc.code, enc.stderr)
		}
	}
	if r := easd(t, "\x03\x01\x6a\x00\x45", nil, "wbxml", "decode"); r.code != 1 {
		t.Errorf("truncated WBXML: exit %d, want 1", r.code)
	}
	if r := easd(t, "<notxml", nil, "wbxml", "encode"); r.code != 1 {
		t.Errorf("bad XML: exit %d, want 1", r.code)
	}
	if r := easd(t, "", nil, "wbxml", "frob"); r.code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", r.code)
	}
}
