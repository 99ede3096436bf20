package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ticketd/admin"
	"ticketd/inbound"
	"ticketd/inbound/imappoller"
	"ticketd/inbound/smtpserver"
	"ticketd/mailauth"
	"ticketd/metrics"
	"ticketd/migrations"
	"ticketd/outbound"
	"ticketd/signing"
	"ticketd/tickets"
	"ticketd/workflows"
	"ticketd/workflows/triage"
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
	// closers run last, after every loop has stopped.
	closers []func() error
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
	// The listeners stop together, each with the whole grace period: a
	// slow web request must not keep the SMTP receiver taking mail, nor
	// eat the time its sessions in flight have to finish.
	a.log.Info("ticketd stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stopping sync.WaitGroup
	for _, s := range a.servers {
		stopping.Go(func() {
			if err := s.shutdown(shutCtx); err != nil {
				a.log.Warn("shutdown", "component", s.name, "err", err)
			}
		})
	}
	stopping.Wait()
	stopLoops()
	bg.Wait()
	for _, c := range a.closers {
		if err := c(); err != nil {
			a.log.Warn("close", "err", err)
		}
	}
	return runErr
}

func buildApp(ctx context.Context, cfg Config, log *slog.Logger, pool *pgxpool.Pool) (*app, error) {
	a := &app{cfg: cfg, log: log, pool: pool, root: chi.NewRouter()}
	keys, err := signing.NewKeys(cfg.Secrets...)
	if err != nil {
		return nil, fmt.Errorf("TICKETD_SECRET: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	met := metrics.New(reg, pool, log.With("component", "metrics"))

	// Outgoing mail: composed into the mail outbox by the notifier, delivered
	// by the sender through the relay or into the Maildir.
	notifier := outbound.NewNotifier(outbound.NotifierOptions{
		SupportAddress:   cfg.SupportAddress,
		Aliases:          cfg.SupportAliases,
		Domain:           cfg.Domain,
		FromName:         cfg.SupportName,
		Keys:             keys,
		ReplyTTL:         cfg.ReplyTokenTTL,
		BaseURL:          cfg.BaseURL,
		TicketLink:       admin.TicketLink(cfg.BaseURL),
		AutoLimitPerHour: cfg.AutoReplyLimitPerHour,
		Logger:           log.With("component", "notifier"),
	})
	var transport outbound.Transport
	if cfg.SMTPRelayURL != "" {
		relay, err := outbound.NewRelay(outbound.RelayOptions{URL: cfg.SMTPRelayURL, HeloName: cfg.SMTPHeloName,
			Logger: log.With("component", "relay")})
		if err != nil {
			return nil, fmt.Errorf("SMTP_RELAY_URL: %w", err)
		}
		transport = relay
		defer func() {
			a.closers = append(a.closers, relay.Close)
		}()
	} else {
		md, err := outbound.NewMaildir(cfg.Maildir)
		if err != nil {
			return nil, fmt.Errorf("MAILDIR: %w", err)
		}
		transport = md
	}
	sender := outbound.NewSender(outbound.SenderOptions{Pool: pool, Transport: transport, Metrics: met,
		RetryMax: cfg.RelayRetryMax, Lease: cfg.RelayLease, SendTimeout: min(2*time.Minute, cfg.RelayLease/4),
		Logger: log.With("component", "sender")})
	a.loops = append(a.loops, namedLoop{"sender", sender.Run})

	// Intake: the one way in. The SMTP receiver is the MX: it checks who
	// sent each mail.
	resolver, err := mailauth.NewResolver(mailauth.ResolverOptions{Server: cfg.DNSResolver})
	if err != nil {
		return nil, fmt.Errorf("DNS_RESOLVER: %w", err)
	}
	intakeOpts := inbound.Options{
		Authenticator:                mailauth.NewChecker(resolver, cfg.AuthservID, 0),
		AllowUnauthenticatedCommands: !cfg.CommandsRequireAuth,
		ModeratorsSeeUnassigned:      cfg.ModeratorsSeeUnassigned,
		Pool:                         pool,
		Logger:                       log.With("component", "intake"),
		Metrics:                      met,
		SupportAddress:               cfg.SupportAddress,
		Aliases:                      cfg.SupportAliases,
		Keys:                         keys,
		Notifier:                     notifier,
		TrustedAuthServers:           cfg.TrustedAuthServIDs,
		Reopen:                       inbound.ReopenPolicy{NewTicketAfter: cfg.ReopenAfter},
		QuarantineAutoGenerated:      cfg.QuarantineAutoGen,
		QuarantineBulk:               cfg.QuarantineBulk,
		MaxMessageBytes:              cfg.SMTPMaxMessageBytes,
		MaxParticipants:              cfg.MaxParticipants,
	}
	if err := intakeOpts.Validate(); err != nil {
		return nil, err
	}
	intake := inbound.New(intakeOpts)

	if cfg.SMTPListen != "" {
		opt := smtpserver.Options{
			Addr:                 cfg.SMTPListen,
			Domain:               cfg.Domain,
			Accepts:              intake.Accepts,
			IsPermanent:          isRejected,
			MaxMessageBytes:      cfg.SMTPMaxMessageBytes,
			MaxRecipients:        cfg.SMTPMaxRecipients,
			MaxSessions:          cfg.SMTPMaxSessions,
			MaxSessionsPerClient: cfg.SMTPMaxPerClient,
			FirstCommandTimeout:  cfg.SMTPFirstCommand,
			Logger:               log.With("component", "smtp"),
			Metrics:              met,
			Deliver: func(ctx context.Context, raw []byte, env smtpserver.Envelope) error {
				_, err := intake.Deliver(ctx, raw, inbound.Source{Kind: "smtp", ConnID: env.CID,
					RemoteAddr: env.RemoteAddr, Helo: env.Helo, MailFrom: env.MailFrom, RcptTo: env.RcptTo})
				if errors.Is(err, inbound.ErrDeferred) {
					// RFC 7208 8.6, RFC 7489 6.6.2: DNS did not answer;
					// the sending server tries again (RFC 3463 X.7.0).
					return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
						Message: "Sender not verified yet (DNS did not answer), please try again later"}
				}
				return err
			},
		}
		if cfg.SMTPTLSCert != "" {
			cert, err := tls.LoadX509KeyPair(cfg.SMTPTLSCert, cfg.SMTPTLSKey)
			if err != nil {
				return nil, fmt.Errorf("SMTP_TLS_CERT: %w", err)
			}
			opt.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		if cfg.SMTPAuthUsername != "" {
			opt.Auth = &smtpserver.Auth{Username: cfg.SMTPAuthUsername, Password: cfg.SMTPAuthPassword,
				Required: cfg.SMTPAuthRequired}
		}
		srv, err := smtpserver.New(opt)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", cfg.SMTPListen)
		if err != nil {
			return nil, fmt.Errorf("SMTP_LISTEN %s: %w", cfg.SMTPListen, err)
		}
		a.servers = append(a.servers, listener{name: "smtp", serve: func() error { return srv.Serve(ln) },
			shutdown: srv.Shutdown})
	}

	var imapTLS *tls.Config
	if cfg.IMAPCAFile != "" {
		pem, err := os.ReadFile(cfg.IMAPCAFile)
		if err != nil {
			return nil, fmt.Errorf("IMAP_CA_FILE: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("IMAP_CA_FILE: no PEM certificate in %s", cfg.IMAPCAFile)
		}
		imapTLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	for _, u := range cfg.IMAPURLs {
		p, err := imappoller.New(imappoller.Options{
			URL:          u,
			Pool:         pool,
			MoveTo:       cfg.IMAPMoveTo,
			PollInterval: cfg.IMAPPollInterval,
			TLSConfig:    imapTLS,
			Metrics:      met,
			IsPermanent:  isRejected,
			Logger:       log.With("component", "imap"),
			Deliver: func(ctx context.Context, raw []byte, m imappoller.Mail) error {
				_, err := intake.Deliver(ctx, raw, inbound.Source{Kind: "imap", Mailbox: m.Mailbox, UID: m.UID})
				return err
			},
		})
		if err != nil {
			return nil, fmt.Errorf("IMAP_URL: %w", err)
		}
		a.loops = append(a.loops, namedLoop{"imap", p.Run})
	}

	// Workflows: the event relay feeds Inngest, which calls back /api/inngest.
	rules := triage.NewRules(triage.RulesOptions{Similar: tickets.NewStore(pool), Logger: log.With("component", "triage")})
	analyzer, err := triage.New(ctx, cfg.triageConfig(met), rules, log.With("component", "triage"))
	if err != nil {
		return nil, fmt.Errorf("LLM_PROVIDER %s: %w", cfg.LLMProvider, err)
	}
	// The dev server signs nothing: its calls run steps, and so are
	// served on a listener of their own bound to loopback, never on
	// HTTP_LISTEN, where /api/inngest then refuses every call.
	devServer := workflows.DevMode(cfg.InngestDev)
	inngestAddr := cfg.inngestListen(devServer)
	serveOrigin := cfg.InngestServeHost
	if devServer {
		if inngestAddr == "" {
			return nil, errors.New("INNGEST_LISTEN: with INNGEST_DEV, the dev server's unsigned calls need a listener on loopback (such as " + defaultInngestListen + "); it cannot be off")
		}
		if !loopbackAddr(inngestAddr) {
			return nil, fmt.Errorf("INNGEST_LISTEN %s: with INNGEST_DEV the dev server's calls are unsigned, and are served on loopback only (127.0.0.1, ::1 or localhost)", inngestAddr)
		}
		serveOrigin = "http://" + inngestAddr
		if cfg.inngestServeHostSet && cfg.InngestServeHost != serveOrigin {
			log.Warn("INNGEST_SERVE_HOST is not used with INNGEST_DEV: the dev server calls INNGEST_LISTEN", "inngest_listen", inngestAddr)
		}
	}
	wf, err := workflows.New(workflows.Options{
		Pool:           pool,
		Metrics:        met,
		Notifier:       notifier,
		Analyzer:       analyzer,
		Rules:          triage.Guard(rules, cfg.triageConfig(met).Guard),
		Logger:         log.With("component", "workflows"),
		Dev:            cfg.InngestDev,
		BaseURL:        cfg.InngestBaseURL,
		EventKey:       cfg.InngestEventKey,
		SigningKey:     cfg.InngestSigningKey,
		ServeOrigin:    serveOrigin,
		LLMConcurrency: cfg.LLMConcurrency,
	})
	if err != nil {
		return nil, err
	}
	rd := readiness{pool: pool}
	if wf.Configured() {
		rd.workflow = wf.Ready
	} else {
		log.Warn("no workflow engine configured: mail is taken and events wait in the outbox until INNGEST_DEV, INNGEST_BASE_URL or INNGEST_EVENT_KEY is set")
	}
	a.loops = append(a.loops, namedLoop{"event-relay", wf.RunRelay})
	a.root.Handle("/api/inngest", wf.PublicHandler())
	if inngestAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/api/inngest", wf.Handler())
		ln, err := net.Listen("tcp", inngestAddr)
		if err != nil {
			return nil, fmt.Errorf("INNGEST_LISTEN %s: %w", inngestAddr, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 5 * time.Minute,
			IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		a.servers = append(a.servers, listener{name: "inngest", serve: func() error { return srv.Serve(ln) },
			shutdown: srv.Shutdown})
		log.Info("workflow calls served on their own listener", "inngest_listen", ln.Addr().String(), "unsigned", devServer)
	}

	// The web: pages, the requester's portal and /api/v1.
	web, err := admin.New(admin.Options{
		Pool:                    pool,
		Logger:                  log.With("component", "web"),
		Notifier:                notifier,
		Keys:                    keys,
		BaseURL:                 cfg.BaseURL,
		SupportAddress:          cfg.SupportAddress,
		SecureCookies:           cfg.SecureCookies,
		ModeratorsSeeUnassigned: cfg.ModeratorsSeeUnassigned,
		TrustProxy:              cfg.TrustProxy,
		Deliver:                 intake.Deliver,
	})
	if err != nil {
		return nil, err
	}
	a.loops = append(a.loops, namedLoop{"web-cleanup", func(ctx context.Context) error {
		return admin.RunCleanup(ctx, admin.CleanupOptions{Store: tickets.NewStore(pool), Logger: log.With("component", "web-cleanup")})
	}})
	a.root.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	a.root.Handle("/readyz", &rd)
	a.root.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	a.root.Mount("/", web)

	if cfg.HTTPListen != "" {
		ln, err := net.Listen("tcp", cfg.HTTPListen)
		if err != nil {
			return nil, fmt.Errorf("HTTP_LISTEN %s: %w", cfg.HTTPListen, err)
		}
		// A request's body may take minutes (uploads of 16 MiB on a slow
		// line), not for ever; an idle connection is closed.
		srv := &http.Server{Handler: a.root, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 5 * time.Minute,
			IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		a.servers = append(a.servers, listener{name: "http", serve: func() error { return srv.Serve(ln) },
			shutdown: srv.Shutdown})
	}
	return a, nil
}

func isRejected(err error) bool { return errors.Is(err, inbound.ErrRejected) }
