package admin

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"ticketd/tickets"
)

// CleanupOptions configure RunCleanup.
type CleanupOptions struct {
	Store  *tickets.Store // required
	Logger *slog.Logger   // by default slog.Default()
	Every  time.Duration  // 10 minutes by default
	// Keep is how long sign-in attempts are kept; a day by default, and
	// never less than the limits' window.
	Keep time.Duration
}

// RunCleanup deletes expired sessions, old sign-in links and old sign-in
// attempts, and builds the search documents of tickets that no change has
// reached since intake (tickets.Store.IndexSearch), every o.Every until ctx
// ends. Any replica may run it; each step is idempotent.
func RunCleanup(ctx context.Context, o CleanupOptions) error {
	if o.Store == nil {
		return fmt.Errorf("admin: CleanupOptions.Store is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Every <= 0 {
		o.Every = 10 * time.Minute
	}
	if o.Keep <= 0 {
		o.Keep = 24 * time.Hour
	}
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	for {
		cleanupOnce(ctx, o)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func cleanupOnce(ctx context.Context, o CleanupOptions) {
	defer func() {
		if v := recover(); v != nil {
			o.Logger.Error("panic in web cleanup", "err", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	// Each job goes on when the other fails.
	n, err := o.Store.PruneWebState(ctx, o.Keep)
	switch {
	case err != nil && ctx.Err() == nil:
		o.Logger.Error("web cleanup", "err", err)
	case n > 0:
		o.Logger.Debug("web cleanup", "deleted", n)
	}
	const batch = 500
	for ctx.Err() == nil {
		n, err := o.Store.IndexSearch(ctx, time.Minute, batch)
		if err != nil {
			if ctx.Err() == nil {
				o.Logger.Error("search indexing", "err", err)
			}
			return
		}
		if n > 0 {
			o.Logger.Info("tickets indexed for search", "tickets", n)
		}
		if n < batch {
			return
		}
	}
}
