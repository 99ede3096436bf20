// Package migrations holds ticketd's schema as plain SQL files, embedded in
// the binary and applied in order by goose.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed *.sql
var files embed.FS

// ErrStale means the database's schema is older than this binary's.
var ErrStale = errors.New("migrations: schema is not current; run `ticketd migrate`")

func provider(pool *pgxpool.Pool) (*goose.Provider, *sql.DB, error) {
	db := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, db, fs.FS(files))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	return p, db, nil
}

// Up applies every migration not yet applied and returns how many ran.
func Up(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	p, db, err := provider(pool)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	res, err := p.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("migrations: apply: %w", err)
	}
	return len(res), nil
}

// Status reports the database's schema version and the newest one this
// binary knows.
func Status(ctx context.Context, pool *pgxpool.Pool) (current, latest int64, err error) {
	p, db, err := provider(pool)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: read version: %w", err)
	}
	sources := p.ListSources()
	if len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	return current, latest, nil
}

// Check returns ErrStale when migrations are pending.
func Check(ctx context.Context, pool *pgxpool.Pool) error {
	current, latest, err := Status(ctx, pool)
	if err != nil {
		return err
	}
	if current < latest {
		return fmt.Errorf("%w (database at version %d, binary expects %d)", ErrStale, current, latest)
	}
	return nil
}
