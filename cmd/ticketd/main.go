// Command ticketd is an email-first support desk: mail to the support
// address becomes a ticket, triaged by an AI workflow on Inngest, assigned to
// the best-matching moderator and worked from everyone's mail client.
//
//	ticketd serve            run the server (SMTP, IMAP, web, workflows)
//	ticketd dev              the whole stack locally on its defaults
//	ticketd cluster          the production shape on one machine
//	ticketd migrate          apply database migrations
//	ticketd inspect FILE     show how intake understands a mail
//	ticketd user add|list    manage moderators and admins
//	ticketd token create     API tokens
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"ticketd/signing"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := args[0], args[1:]
	if cmd == "inspect" {
		// inspect needs no configuration and no database.
		return runInspect(rest, stdout, stderr)
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		usage(stdout)
		return 0
	}
	cfg, err := LoadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "ticketd: configuration:\n%v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "serve":
		err = serve(ctx, cfg, log)
	case "dev":
		err = dev(ctx, cfg, log, stdout)
	case "cluster":
		err = clusterCommand(ctx, cfg, log, rest, stdout)
	case "migrate":
		err = migrate(ctx, cfg, log)
	case "user":
		err = userCommand(ctx, cfg, rest, stdout)
	case "token":
		err = tokenCommand(ctx, cfg, rest, stdout)
	case "trace":
		err = traceCommand(ctx, cfg, rest, stdout)
	case "reprocess":
		err = reprocessCommand(ctx, cfg, log, rest, stdout)
	case "triage":
		err = triageCommand(ctx, cfg, log, rest, os.Stdin, stdout, stderr)
	case "eval":
		err = evalCommand(ctx, cfg, log, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "ticketd: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "ticketd %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `ticketd: an email-first support desk

Usage:
  ticketd serve                         run the server: SMTP receiver, IMAP pollers, web, API, workflows
  ticketd dev                           the whole stack locally: PostgreSQL in .ticketd/pg, the Inngest
                                        dev server, ticketd on 127.0.0.1:8080 and SMTP on 127.0.0.1:2525
  ticketd cluster [--replicas N]        the production shape on this machine, as root: PostgreSQL, Redis,
                                        inngest start, N replicas (default 3) behind Postfix as the MX and
                                        an HTTP balancer, Dovecot with the support mailbox, a relay sink;
                                        state in TICKETD_DATA_DIR/cluster
  ticketd migrate                       apply the database migrations
  ticketd inspect [--body] [--html] FILE
                                        print how intake understands a mail, as JSON
  ticketd user add --email E --role user|moderator|admin [--skills a,b] [--name N] [--password-stdin]
  ticketd user list
  ticketd token create --email E [--name N]   print a new API bearer token for that user
  ticketd token list --email E
  ticketd token revoke --id N
  ticketd trace <message-id>...         what intake did with a mail and what followed: events, mails, triage
  ticketd reprocess --since DATE [--until DATE] [--dry-run] [--after-id N]
                                        read stored mail again with the current parser and correct what
                                        changed, without new tickets, events or mails
  ticketd triage [--roster FILE]        triage tickets given as JSON lines on stdin, {"id", "subject",
                                        "body", "from"}, one decision per line on stdout, through the
                                        same code as the workflow; the roster (a JSON array of {"email",
                                        "name", "role", "skills", "open_tickets"}) or else the database's
                                        staff, skills and history
  ticketd eval triage --set FILE [--roster FILE] [--json] [--misses]
                                        score the configured engine on a labelled set (the same lines
                                        with "expected_priority" and "expected_skills")
  ticketd help                          this text

Configuration comes from the environment:
`)
	printSettings(w)
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" || format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	// Signed tokens (reply addresses, return paths, links) are keys to
	// tickets: every record loses them here, whatever logged them.
	if format == "text" {
		return slog.New(signing.RedactingHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(signing.RedactingHandler(slog.NewJSONHandler(w, opts)))
}
