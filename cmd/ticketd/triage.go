package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"ticketd/tickets"
	"ticketd/workflows/triage"
	"ticketd/workflows/triage/batch"
)

// triager builds what `ticketd triage` and `ticketd eval triage` decide
// with: the engine the configuration names, as serve builds it, and the
// desk of the roster file or, without one, of the database. The returned
// function releases what it opened.
func triager(ctx context.Context, cfg Config, log *slog.Logger, roster string) (*batch.Triager, func(), error) {
	t := &batch.Triager{}
	done := func() {}
	var similar triage.SimilarFinder
	switch {
	case roster != "":
		r, err := batch.ReadRoster(roster)
		if err != nil {
			return nil, nil, err
		}
		t.Staff, t.Desk = r, triage.Desk{Vocabulary: r.Vocabulary()}
	case cfg.DatabaseURL != "":
		pool, err := openCurrent(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		done = pool.Close
		st := tickets.NewStore(pool)
		desk, err := triage.LoadDesk(ctx, st)
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		t.Staff, t.Desk, similar = st, desk, st
	default:
		return nil, nil, errors.New("needs the desk's staff: --roster FILE, or DATABASE_URL for the database's")
	}
	rules := triage.NewRules(triage.RulesOptions{Similar: similar, Logger: log})
	tc := cfg.triageConfig(nil)
	analyzer, err := triage.New(ctx, tc, rules, log)
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("LLM_PROVIDER %s: %w", cfg.LLMProvider, err)
	}
	t.Analyzer, t.Fallback = analyzer, triage.Guard(rules, tc.Guard)
	return t, done, nil
}

// triageCommand is `ticketd triage [--roster FILE]`: tickets as JSON lines
// on stdin, one decision per line on stdout.
func triageCommand(ctx context.Context, cfg Config, log *slog.Logger, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("triage", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	roster := fs.String("roster", "", "the staff to assign")
	const usage = "usage: ticketd triage [--roster FILE] < tickets.jsonl"
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w (%s)", err, usage)
	}
	if fs.NArg() != 0 {
		return errors.New(usage)
	}
	t, done, err := triager(ctx, cfg, log, *roster)
	if err != nil {
		return err
	}
	defer done()
	t.Log = stderr
	return t.Run(ctx, stdin, stdout, stderr)
}

// evalCommand is `ticketd eval triage --set FILE [--roster FILE] [--json]`.
func evalCommand(ctx context.Context, cfg Config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: ticketd eval triage --set FILE [--roster FILE] [--json] [--misses]\n       ticketd eval triage --history [--tickets N] [--learn 0.8] [--json] [--misses]"
	if len(args) == 0 || args[0] != "triage" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("eval triage", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	setPath := fs.String("set", "", "the labelled set: JSON lines of a ticket with expected_priority and expected_skills (and optionally category and language)")
	roster := fs.String("roster", "", "the staff to assign, instead of the database's")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	misses := fs.Bool("misses", false, "list every ticket that came out otherwise than labelled")
	history := fs.Bool("history", false, "back-test on the database's Completed tickets: learn from the older, measure on the newer")
	count := fs.Int("tickets", 5000, "with --history: how many of the newest Completed tickets take part")
	learn := fs.Float64("learn", 0.8, "with --history: the share of them, the oldest, learned from")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w (%s)", err, usage)
	}
	if (*setPath == "") == !*history || fs.NArg() != 0 || *history && *roster != "" {
		return errors.New(usage)
	}
	if *history {
		return backTestCommand(ctx, cfg, log, batch.BackTestOptions{Tickets: *count, Learn: *learn, Logger: log}, *asJSON, *misses, stdout)
	}
	set, err := batch.ReadSet(*setPath)
	if err != nil {
		return err
	}
	t, done, err := triager(ctx, cfg, log, *roster)
	if err != nil {
		return err
	}
	defer done()
	t.Log = stderr
	rep, err := t.Evaluate(ctx, *setPath, set)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(stdout, *misses)
}

// backTestCommand is `ticketd eval triage --history`.
func backTestCommand(ctx context.Context, cfg Config, log *slog.Logger, o batch.BackTestOptions, asJSON, misses bool, stdout io.Writer) error {
	pool, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	rep, err := batch.BackTest(ctx, tickets.NewStore(pool), o)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "back-test: learned from %d Completed tickets, measured on the %d newer ones (opened from %s); the history decided %d of them\n\n",
		rep.Learned, rep.Measured, rep.Split.UTC().Format("2006-01-02 15:04"), rep.UsedHistory)
	if err := rep.RulesAlone.WriteText(stdout, misses); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	return rep.WithHistory.WriteText(stdout, misses)
}
