package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedUpToDate regenerates codepages.go in memory and compares it
// with the committed file (run `go generate ./wbxml` when it fails).
func TestGeneratedUpToDate(t *testing.T) {
	src, err := generate(readRows("../../codepages.tsv"), readAliases("../../aliases.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../../codepages.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, have) {
		t.Error("wbxml/codepages.go is stale: run go generate ./wbxml")
	}
}
