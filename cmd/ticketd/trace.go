package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"ticketd/inbound"
	"ticketd/tickets"
)

// traceCommand implements `ticketd trace <message-id>...`: what intake did
// with each mail of that Message-ID (with or without <>), and what followed
// from it — the events, the mails the workflows queued for them and how
// their delivery went, the triage decision.
func traceCommand(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w (usage: ticketd trace <message-id>...)", err)
	}
	if fs.NArg() == 0 {
		return errors.New("usage: ticketd trace <message-id>")
	}
	pool, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := tickets.NewStore(pool)
	var errs []error
	for i, id := range fs.Args() {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := inbound.PrintTrace(ctx, st, stdout, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
