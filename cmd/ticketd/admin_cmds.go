package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"ticketd/migrations"
	"ticketd/tickets"
)

func openPool(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return pool, nil
}

// openCurrent opens the pool and refuses a database whose schema is stale.
func openCurrent(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func migrate(ctx context.Context, cfg Config, log interface{ Info(string, ...any) }) error {
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := migrations.Up(ctx, pool)
	if err != nil {
		return err
	}
	current, _, err := migrations.Status(ctx, pool)
	if err != nil {
		return err
	}
	log.Info("migrations applied", "applied", n, "version", current)
	return nil
}

func hashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

func randomPassword() string {
	b := make([]byte, 15)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func userCommand(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("want `user add` or `user list`")
	}
	pool, err := openCurrent(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := tickets.NewStore(pool)
	switch args[0] {
	case "add":
		fs := flag.NewFlagSet("user add", flag.ContinueOnError)
		email := fs.String("email", "", "the user's address")
		roleName := fs.String("role", "moderator", "user, moderator or admin")
		skills := fs.String("skills", "", "comma-separated skills")
		name := fs.String("name", "", "display name")
		pwStdin := fs.Bool("password-stdin", false, "read the password from standard input instead of generating one")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if !strings.Contains(*email, "@") {
			return errors.New("--email: want an address")
		}
		role, err := tickets.ParseRole(*roleName)
		if err != nil {
			return fmt.Errorf("--role: %w", err)
		}
		var hash *string
		password := ""
		if role.IsStaff() {
			if *pwStdin {
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("read password: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
			} else {
				password = randomPassword()
			}
			h, err := hashPassword(password)
			if err != nil {
				return err
			}
			hash = &h
		}
		u, err := store.CreateUser(ctx, tickets.NewUser{Email: *email, Name: *name, Role: role,
			Skills: tickets.SplitSkills(*skills), PasswordHash: hash})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s %s (id %d) skills: %s\n", u.Role, u.Email, u.ID, strings.Join(u.Skills, ", "))
		if password != "" && !*pwStdin {
			fmt.Fprintf(stdout, "password: %s\n", password)
		}
		return nil
	case "list":
		users, err := store.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLE\tSKILLS\tACTIVE")
		for _, u := range users {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%v\n", u.ID, u.Email, u.Name, u.Role, strings.Join(u.Skills, ","), u.Active)
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown user command %q", args[0])
}
