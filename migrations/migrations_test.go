package migrations_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"ticketd/migrations"
	"ticketd/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestCheckRefusesAStaleSchema(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	if err := migrations.Check(ctx, pool); err != nil {
		t.Fatalf("a migrated database: %v", err)
	}
	current, latest, err := migrations.Status(ctx, pool)
	if err != nil || current != latest || latest < 1 {
		t.Fatalf("Status = %d, %d, %v", current, latest, err)
	}
	// As if the binary were newer than the database.
	if _, err := pool.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = $1`, latest); err != nil {
		t.Fatal(err)
	}
	err = migrations.Check(ctx, pool)
	if !errors.Is(err, migrations.ErrStale) {
		t.Fatalf("Check on a stale schema = %v, want ErrStale", err)
	}
	if want := "ticketd migrate"; !strings.Contains(err.Error(), want) {
		t.Errorf("the error %q does not say %q", err, want)
	}
}
