package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"ticketd/tickets"
)

// tokenCommand manages bearer tokens for /api/v1. A token acts as its user,
// with that user's role; only its SHA-256 is stored.
func tokenCommand(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("want `token create`, `token list` or `token revoke`")
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	email := fs.String("email", "", "the token's user")
	name := fs.String("name", "", "what the token is for")
	id := fs.Int64("id", 0, "the token's id (revoke)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	pool, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := tickets.NewStore(pool)
	switch args[0] {
	case "create", "list":
		if *email == "" {
			return errors.New("--email: required")
		}
		u, err := store.UserByEmail(ctx, *email)
		if err != nil {
			return err
		}
		if args[0] == "create" {
			secret, err := store.CreateAPIToken(ctx, u.ID, *name)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, secret)
			return nil
		}
		toks, err := store.APITokens(ctx, u.ID)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED\tREVOKED")
		for _, t := range toks {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.Format(time.DateTime), when(t.LastUsedAt), when(t.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		if *id == 0 {
			return errors.New("--id: required")
		}
		if err := store.RevokeAPIToken(ctx, *id); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked token "+strconv.FormatInt(*id, 10))
		return nil
	}
	return fmt.Errorf("unknown token command %q", args[0])
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.DateTime)
}
