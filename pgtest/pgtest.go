// Package pgtest gives every test its own clean, migrated PostgreSQL
// database. It uses TEST_DATABASE_URL when set; otherwise it starts one
// throwaway cluster per test binary from the machine's PostgreSQL binaries.
// Each test's database is copied from a migrated template, which takes a few
// milliseconds, so tests run in parallel.
//
// A package using it calls Main from TestMain, so the cluster stops when the
// tests end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/migrations"
	"ticketd/pgcluster"
)

var (
	once     sync.Once
	setupErr error
	admin    *pgxpool.Pool // to the maintenance database, for CREATE/DROP DATABASE
	baseURL  *url.URL
	cluster  *pgcluster.Cluster
	tmpDir   string
	template string
	counter  atomic.Int64
)

// Main runs the tests and stops the cluster afterwards.
func Main(m *testing.M) {
	code := m.Run()
	if admin != nil {
		if template != "" {
			_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{template}.Sanitize())
		}
		admin.Close()
	}
	if cluster != nil {
		cluster.Stop()
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		dir, err := os.MkdirTemp("", "ticketd-pgtest-")
		if err != nil {
			return err
		}
		tmpDir = dir
		c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true})
		if err != nil {
			return fmt.Errorf("%w\n(or set TEST_DATABASE_URL to a PostgreSQL 15+ server whose user may create databases)", err)
		}
		cluster = c
		raw = c.URL("postgres")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("pgtest: TEST_DATABASE_URL: %w", err)
	}
	baseURL = u
	admin, err = pgxpool.New(ctx, raw)
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	// Several test binaries may share one server: names carry the pid.
	template = fmt.Sprintf("ticketd_tpl_%d", os.Getpid())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{template}.Sanitize()); err != nil {
		return fmt.Errorf("pgtest: create template: %w", err)
	}
	pool, err := pgxpool.New(ctx, dbURL(template))
	if err != nil {
		return fmt.Errorf("pgtest: connect to template: %w", err)
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool); err != nil {
		return fmt.Errorf("pgtest: migrate template: %w", err)
	}
	return nil
}

func dbURL(name string) string {
	u := *baseURL
	u.Path = "/" + name
	return u.String()
}

// objectInUse is SQLSTATE 55006, object_in_use.
const objectInUse = "55006"

// URL returns the connection string of a new, clean, migrated database that
// is dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("pgtest: no PostgreSQL for this test: %v", setupErr)
	}
	ctx := context.Background()
	name := fmt.Sprintf("ticketd_t%d_%d", os.Getpid(), counter.Add(1))
	ident := pgx.Identifier{name}.Sanitize()
	var err error
	for try := 0; try < 20; try++ {
		// CREATE DATABASE ... TEMPLATE fails with object_in_use (55006)
		// while another session copies the same template; tests in
		// parallel take turns.
		_, err = admin.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE "+pgx.Identifier{template}.Sanitize())
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != objectInUse {
			break
		}
		time.Sleep(time.Duration(10*(try+1)) * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	})
	return dbURL(name)
}

// New returns a pool on a new, clean, migrated database, closed and dropped
// when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Cluster returns the throwaway cluster, or nil when TEST_DATABASE_URL
// points elsewhere; fault tests use it to restart the server.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	once.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("pgtest: no PostgreSQL for this test: %v", setupErr)
	}
	return cluster
}
