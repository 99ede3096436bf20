package admin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"ticketd/admin"
	"ticketd/testlog"
)

func TestRunCleanup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := e.pool.Exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES ('expired', '\x00', now() - interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- admin.RunCleanup(ctx, admin.CleanupOptions{Store: e.st, Logger: testlog.New(t), Every: time.Hour})
	}()
	// The first pass runs at once; wait for it without a timed assertion.
	for e.count(`SELECT count(*) FROM sessions WHERE token = 'expired'`) != 0 {
		select {
		case err := <-done:
			t.Fatalf("RunCleanup returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("RunCleanup after cancel: %v", err)
	}
	if err := admin.RunCleanup(context.Background(), admin.CleanupOptions{}); err == nil {
		t.Fatal("RunCleanup without a store: no error")
	}
}
