package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ticketd/migrations"
)

// background runs long-lived loops, each recovering its own panics, and
// waits for them at shutdown.
type background struct {
	log *slog.Logger
	wg  sync.WaitGroup
}

func (b *background) Go(ctx context.Context, name string, fn func(context.Context) error) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				b.log.Error("panic", "component", name, "panic", r, "stack", string(debug.Stack()))
			}
		}()
		if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
			b.log.Error("component stopped", "component", name, "err", err)
		}
	}()
}

func (b *background) Wait() { b.wg.Wait() }

// connectWithRetry waits up to a minute for PostgreSQL, so a stack whose
// database starts alongside ticketd comes up in any order.
func connectWithRetry(ctx context.Context, cfg Config, log *slog.Logger) (*pgxpool.Pool, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		pool, err := openPool(ctx, cfg)
		if err == nil {
			return pool, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		log.Warn("waiting for PostgreSQL", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

type readiness struct {
	pool     *pgxpool.Pool
	workflow func(context.Context) error // nil when no engine is configured
}

type readyReport struct {
	Database string `json:"database"`
	Schema   string `json:"schema"`
	Workflow string `json:"workflow_engine"`
}

// ServeHTTP answers /readyz: 200 when the database is reachable and its
// schema current. The workflow engine's state is reported but does not fail
// readiness: mail is taken and events wait in the outbox while it is away.
func (rd readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	rep := readyReport{Database: "ok", Schema: "ok", Workflow: "ok"}
	code := http.StatusOK
	if err := rd.pool.Ping(ctx); err != nil {
		rep.Database, rep.Schema, code = err.Error(), "unknown", http.StatusServiceUnavailable
	} else if err := migrations.Check(ctx, rd.pool); err != nil {
		rep.Schema, code = err.Error(), http.StatusServiceUnavailable
	}
	if rd.workflow == nil {
		rep.Workflow = "not configured"
	} else if err := rd.workflow(ctx); err != nil {
		rep.Workflow = "unreachable: " + err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(rep)
}

func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.requireServe(); err != nil {
		return err
	}
	pool, err := connectWithRetry(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Check(ctx, pool); err != nil {
		return fmt.Errorf("%w; ticketd serve does not start on a stale schema", err)
	}
	app, err := buildApp(ctx, cfg, log, pool)
	if err != nil {
		return err
	}
	return app.run(ctx)
}

// app is ticketd's running parts, wired in buildApp.
type app struct {
	cfg  Config
	log  *slog.Logger
	pool *pgxpool.Pool
	root chi.Router

	// loops run until shutdown: the outbox relays, the IMAP pollers.
	loops []namedLoop
	// listeners serve until shutdown, and stop taking new work first.
	servers []listener
}

type namedLoop struct {
	name string
	run  func(context.Context) error
}

type listener struct {
	name     string
	serve    func() error
	shutdown func(context.Context) error
}

func (a *app) run(ctx context.Context) error {
	bg := &background{log: a.log}
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	for _, l := range a.loops {
		bg.Go(loopCtx, l.name, l.run)
	}
	errc := make(chan error, len(a.servers))
	for _, s := range a.servers {
		s := s
		go func() {
			defer func() {
				if r := recover(); r != nil {
					a.log.Error("panic", "component", s.name, "panic", r, "stack", string(debug.Stack()))
					errc <- fmt.Errorf("%s: panic: %v", s.name, r)
				}
			}()
			if err := s.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("%s: %w", s.name, err)
			}
		}()
	}
	a.log.Info("ticketd running", "http", a.cfg.HTTPListen, "smtp", a.cfg.SMTPListen, "support", a.cfg.SupportAddress)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Shutdown order: stop taking mail and requests (finishing what is in
	// flight), then stop the loops that drain the outboxes, then the pool.
	a.log.Info("ticketd stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(a.servers) - 1; i >= 0; i-- {
		if err := a.servers[i].shutdown(shutCtx); err != nil {
			a.log.Warn("shutdown", "component", a.servers[i].name, "err", err)
		}
	}
	stopLoops()
	bg.Wait()
	return runErr
}

func buildApp(ctx context.Context, cfg Config, log *slog.Logger, pool *pgxpool.Pool) (*app, error) {
	a := &app{cfg: cfg, log: log, pool: pool, root: chi.NewRouter()}
	rd := readiness{pool: pool}
	a.root.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	a.root.Handle("/readyz", &rd)
	a.root.Handle("/metrics", promhttp.Handler())

	if cfg.HTTPListen != "" {
		ln, err := net.Listen("tcp", cfg.HTTPListen)
		if err != nil {
			return nil, fmt.Errorf("HTTP_LISTEN %s: %w", cfg.HTTPListen, err)
		}
		srv := &http.Server{Handler: a.root, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		a.servers = append(a.servers, listener{name: "http", serve: func() error { return srv.Serve(ln) },
			shutdown: srv.Shutdown})
	}
	return a, nil
}
