package main

import (
	"bufio"
	"context"

	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/wbxml"
)

const wbxmlSynopsis = `easd wbxml decode|encode [flags] < in > out

  decode   read WBXML (an ActiveSync request or response body), write XML text
  encode   read that XML text, write WBXML

The XML uses the namespaces of libwbxml's wbxml2xml -l ACTIVESYNC, so the two
can be compared; OPAQUE values (MIME, attachments) are written as base64.`

func runWBXML(_ context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd wbxml", wbxmlSynopsis, e.getenv, e.stderr)
	indent := fs.String("indent", "", "  ", "indentation per level for decode; empty puts one element per line")
	compact := fs.Bool("compact", "", false, "decode onto one line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("want decode or encode")
	}
	out := bufio.NewWriterSize(e.stdout, 64<<10)
	var err error
	switch fs.Arg(0) {
	case "decode":
		err = wbxml.ToXML(out, bufio.NewReaderSize(e.stdin, 64<<10), wbxml.XMLOptions{Indent: *indent, Compact: *compact})
	case "encode":
		err = wbxml.FromXML(out, bufio.NewReaderSize(e.stdin, 64<<10))
	default:
		return usageError("unknown subcommand %q: want decode or encode", fs.Arg(0))
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}
