package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/pgcluster"
)

// With -pgstat the cluster loads pg_stat_statements, and the report adds
// where ticketd's PostgreSQL time goes: its statements by total execution
// time, and what its backends were waiting for (sampled from
// pg_stat_activity while ticketd's turns ran).

// enableStatements restarts the cluster with pg_stat_statements loaded.
func (b *bench) enableStatements(ctx context.Context, opt pgcluster.Options) error {
	if _, err := b.admin.Exec(ctx, `ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`); err != nil {
		return fmt.Errorf("pgstat: %w", err)
	}
	b.admin.Close()
	if err := b.cluster.Stop(); err != nil {
		return err
	}
	c, err := pgcluster.Start(ctx, opt)
	if err != nil {
		return err
	}
	b.cluster = c
	if b.admin, err = pgxpool.New(ctx, c.URL("postgres")); err != nil {
		return err
	}
	for _, q := range []string{
		`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`,
		// Statements run by triggers and functions count too.
		`ALTER SYSTEM SET pg_stat_statements.track = 'all'`,
		`ALTER SYSTEM SET pg_stat_statements.track_planning = on`,
		`SELECT pg_reload_conf()`,
	} {
		if _, err := b.admin.Exec(ctx, q); err != nil {
			return fmt.Errorf("pgstat: %w", err)
		}
	}
	return nil
}

// resetStatements forgets what was counted so far (the warm-up).
func (b *bench) resetStatements(ctx context.Context) {
	if *pgStat {
		_, _ = b.admin.Exec(ctx, `SELECT pg_stat_statements_reset()`)
	}
}

// reportStatements prints the top statements of database db.
func (b *bench) reportStatements(ctx context.Context, db string, mails int) error {
	rows, err := b.admin.Query(ctx, `
		SELECT s.calls, s.total_exec_time, s.total_plan_time, s.rows, s.query,
			sum(s.total_exec_time + s.total_plan_time) OVER ()
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		WHERE d.datname = $1 AND s.toplevel
		ORDER BY s.total_exec_time + s.total_plan_time DESC LIMIT 25`, db)
	if err != nil {
		return fmt.Errorf("pgstat: %w", err)
	}
	defer rows.Close()
	fmt.Fprintf(b.out, "\nPostgreSQL statements of %s (top level, by execution + planning time; per mail over %d mails):\n", db, mails)
	fmt.Fprintf(b.out, "%9s %9s %9s %9s %6s  %s\n", "calls", "exec ms", "plan ms", "us/mail", "share", "statement")
	for rows.Next() {
		var calls, nrows int64
		var exec, plan, all float64
		var q string
		if err := rows.Scan(&calls, &exec, &plan, &nrows, &q, &all); err != nil {
			return err
		}
		q = strings.Join(strings.Fields(q), " ")
		if len(q) > 110 {
			q = q[:110] + "…"
		}
		fmt.Fprintf(b.out, "%9d %9.0f %9.0f %9.1f %5.1f%%  %s\n", calls, exec, plan,
			(exec+plan)*1000/float64(max(mails, 1)), 100*(exec+plan)/max(all, 1e-9), q)
	}
	return rows.Err()
}

// waitSampler counts what ticketd's active backends are doing.
type waitSampler struct {
	mu      sync.Mutex
	on      bool
	samples map[string]int
	n       int
}

// run samples pg_stat_activity of database db until ctx ends, counting
// only while the sampler is on.
func (w *waitSampler) run(ctx context.Context, b *bench, db string) {
	w.samples = map[string]int{}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		on := w.on
		w.mu.Unlock()
		if !on {
			continue
		}
		rows, err := b.admin.Query(ctx, `SELECT COALESCE(wait_event_type || ':' || wait_event, 'CPU'), left(query, 40)
			FROM pg_stat_activity WHERE datname = $1 AND state = 'active'`, db)
		if err != nil {
			continue
		}
		w.mu.Lock()
		for rows.Next() {
			var ev, q string
			if rows.Scan(&ev, &q) == nil {
				if strings.HasPrefix(ev, "Lock:") || strings.HasPrefix(ev, "LWLock:") {
					ev += " in " + strings.Join(strings.Fields(q), " ")
				}
				w.samples[ev]++
				w.n++
			}
		}
		w.mu.Unlock()
		rows.Close()
	}
}

func (w *waitSampler) set(on bool) {
	w.mu.Lock()
	w.on = on
	w.mu.Unlock()
}

func (w *waitSampler) report(b *bench) {
	w.mu.Lock()
	defer w.mu.Unlock()
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range w.samples {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	fmt.Fprintf(b.out, "\nticketd's active backends, sampled every 5 ms (%d backend samples):\n", w.n)
	for i, e := range all {
		if i == 20 {
			break
		}
		fmt.Fprintf(b.out, "%7d %5.1f%%  %s\n", e.n, 100*float64(e.n)/float64(max(w.n, 1)), e.k)
	}
}
