package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"ticketd/inbound/mailparse"
)

// runInspect implements `ticketd inspect [--body] [--html] FILE`: it parses
// one mail (or, with --body, a bare body; --html when that body is HTML)
// with the same code as intake and prints one JSON object. It fails only
// when FILE cannot be read: a malformed mail is still inspected.
func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	body := fs.Bool("body", false, "FILE is a bare message body without headers")
	isHTML := fs.Bool("html", false, "the bare body is HTML (with --body)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ticketd inspect [--body] [--html] FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "inspect: read mail: %v\n", err)
		return 1
	}
	var m *mailparse.Message
	if *body || *isHTML {
		m = mailparse.ParseBody(string(raw), *isHTML)
	} else {
		m = mailparse.Parse(raw, mailparse.Options{})
	}
	if err := m.Summary().WriteJSON(stdout); err != nil {
		fmt.Fprintf(stderr, "inspect: %v\n", err)
		return 1
	}
	return 0
}
