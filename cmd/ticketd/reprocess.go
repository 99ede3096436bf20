package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"ticketd/inbound"
)

// reprocessCommand implements `ticketd reprocess --since DATE [--until DATE]
// [--dry-run]`: stored inbound mail received in that window is read again
// by the current parser, and what changed is corrected, without new
// tickets, events, mails or threading.
func reprocessCommand(ctx context.Context, cfg Config, log *slog.Logger, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("reprocess", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	since := fs.String("since", "", "re-process mail received at or after this time (required)")
	until := fs.String("until", "", "and before this time (default: now)")
	dryRun := fs.Bool("dry-run", false, "print what would change, change nothing")
	afterID := fs.Int64("after-id", 0, "resume after this message id (printed by an interrupted run)")
	batch := fs.Int("batch", 100, "messages listed at a time (each is re-processed in its own transaction)")
	usage := "usage: ticketd reprocess --since DATE [--until DATE] [--dry-run] [--after-id N]"
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w (%s)", err, usage)
	}
	if *since == "" || fs.NArg() > 0 {
		return errors.New(usage)
	}
	now := time.Now()
	rg := inbound.ReprocessRange{DryRun: *dryRun, AfterID: *afterID}
	var err error
	if rg.Since, err = parseWhen(*since, now); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if *until != "" {
		if rg.Until, err = parseWhen(*until, now); err != nil {
			return fmt.Errorf("--until: %w", err)
		}
		if !rg.Until.After(rg.Since) {
			return errors.New("--until must be after --since")
		}
	}
	pool, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	rp := inbound.NewReprocessor(inbound.ReprocessOptions{Pool: pool, Logger: log.With("component", "reprocess"), BatchSize: *batch})
	rep, runErr := rp.Run(ctx, rg)
	if err := inbound.WriteReprocessReport(stdout, rep); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("%w; resume with --after-id %d", runErr, rep.LastID)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d messages failed", rep.Failed)
	}
	return nil
}

// parseWhen reads a point in time: RFC 3339, a date and time or a date
// (in the local time zone), or a duration before now ("72h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: want 2026-03-01, 2026-03-01T10:00, RFC 3339, or a duration ago like 72h", s)
}
