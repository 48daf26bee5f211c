package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/easd/easd/internal/config"
)

// TestReadmeConfigTable keeps the README's configuration table true: every
// serve flag and its environment variable must be in it.
func TestReadmeConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := config.NewFlagSet("easd serve", "", func(string) string { return "" }, &bytes.Buffer{})
	addStoreFlags(fs)
	addEASFlags(fs)
	// serve's own flags are defined inside runServe; parse its help output.
	var help bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &help, stderr: &help, getenv: func(string) string { return "" },
		isTerminal: func(any) bool { return false }}
	runServe(t.Context(), e, []string{"-h"})
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	for _, line := range strings.Split(help.String(), "\n") {
		if strings.HasPrefix(line, "  --") {
			names = append(names, strings.Fields(line)[0][2:])
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d flags in serve's help:\n%s", len(names), help.String())
	}
	for _, n := range names {
		env := "EASD_" + strings.ToUpper(strings.ReplaceAll(n, "-", "_"))
		if !bytes.Contains(readme, []byte("`--"+n+"`")) || !bytes.Contains(readme, []byte("`"+env+"`")) {
			t.Errorf("README's configuration table lacks --%s / %s", n, env)
		}
	}
}
