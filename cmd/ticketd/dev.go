package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/migrations"
	"ticketd/pgcluster"
	"ticketd/tickets"
)

// dev runs the whole stack locally on its defaults: a private PostgreSQL
// cluster in TICKETD_DATA_DIR/pg (created on first run, reused after), the
// Inngest dev server, and ticketd itself with outgoing mail in a Maildir.
// Ctrl-C stops every child.
func dev(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		pgLog, err := os.OpenFile(filepath.Join(dataDir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer pgLog.Close()
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dataDir, "pg"), Log: pgLog})
		if err != nil {
			return err
		}
		defer func() {
			cluster.Stop()
			log.Info("postgres stopped")
		}()
		if err := ensureDatabase(ctx, cluster, "ticketd"); err != nil {
			return err
		}
		cfg.DatabaseURL = cluster.URL("ticketd")
		log.Info("postgres running", "socket", cluster.SocketDir(), "log", pgLog.Name())
	}
	if len(cfg.Secrets) == 0 {
		secret, err := devSecret(filepath.Join(dataDir, "secret"))
		if err != nil {
			return err
		}
		cfg.Secrets = []string{secret}
	}
	if cfg.SMTPRelayURL == "" && cfg.Maildir == "" {
		cfg.Maildir = filepath.Join(dataDir, "outbox")
	}
	if !cfg.commandsAuthSet {
		// A walkthrough on one machine has no DNS that could vouch for
		// its senders.
		cfg.CommandsRequireAuth = false
	}

	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	n, err := migrations.Up(ctx, pool)
	if err != nil {
		pool.Close()
		return err
	}
	if n > 0 {
		log.Info("migrations applied", "applied", n)
	}
	err = ensureAdmin(ctx, pool, cfg, stdout)
	pool.Close()
	if err != nil {
		return err
	}

	if cfg.InngestDev == "" && cfg.InngestBaseURL == "" {
		stopInngest, url, err := startInngestDev(ctx, cfg, dataDir, log)
		if err != nil {
			return err
		}
		defer stopInngest()
		cfg.InngestDev = url
	}
	fmt.Fprintf(stdout, "\nticketd dev is up:\n  web    %s\n  smtp   %s (mail to %s)\n  inngest %s\n  outbox %s\nCtrl-C stops everything.\n\n",
		cfg.BaseURL, cfg.SMTPListen, cfg.SupportAddress, cfg.InngestDev, cfg.Maildir)
	if !cfg.CommandsRequireAuth {
		fmt.Fprintf(stdout, "COMMANDS_REQUIRE_AUTH=false: mailed commands run from the signed reply address and a matching From,\n"+
			"without SPF, DKIM or DMARC (this machine has no DNS to vouch for senders). Never so in production.\n\n")
		log.Warn("mailed commands do not require an authenticated sender", "setting", "COMMANDS_REQUIRE_AUTH=false")
	}
	return serve(ctx, cfg, log)
}

func ensureDatabase(ctx context.Context, c *pgcluster.Cluster, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the dev cluster: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// devSecret returns the dev stack's signing key, made on first run.
func devSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	s := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write dev secret: %w", err)
	}
	return s, nil
}

// ensureAdmin creates admin@<domain> with a random password on first run and
// prints the password once.
func ensureAdmin(ctx context.Context, pool *pgxpool.Pool, cfg Config, stdout io.Writer) error {
	var admins int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE role = 'admin'`).Scan(&admins); err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if admins > 0 {
		return nil
	}
	password := randomPassword()
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	email := "admin@" + cfg.Domain
	if _, err := tickets.NewStore(pool).CreateUser(ctx, tickets.NewUser{Email: email, Name: "Admin",
		Role: tickets.RoleAdmin, PasswordHash: &hash}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nCreated the first admin. Sign in at %s with\n  email:    %s\n  password: %s\nThis password is shown only once.\n", cfg.BaseURL, email, password)
	return nil
}

// startInngestDev runs `inngest dev` pointed at ticketd's /api/inngest and
// waits until it answers.
func startInngestDev(ctx context.Context, cfg Config, dataDir string, log *slog.Logger) (stop func(), url string, err error) {
	bin, err := filepath.Abs(cfg.InngestBin)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, "", fmt.Errorf("the Inngest dev server %s is missing: run `make inngest` (or set INNGEST_DEV to a running one)", bin)
	}
	port := strconv.Itoa(cfg.InngestPort)
	// The dev server's calls are unsigned, and served only on the
	// loopback listener INNGEST_LISTEN (serve opens it).
	sdkURL := "http://" + cfg.inngestListen(true) + "/api/inngest"
	logFile, err := os.OpenFile(filepath.Join(dataDir, "inngest.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "dev", "--no-discovery", "-u", sdkURL, "--port", port, "--host", "127.0.0.1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dataDir
	// Its own process group, and it dies with ticketd even on SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, "", fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logFile.Close()
		log.Info("inngest dev server stopped")
	}
	url = "http://127.0.0.1:" + port
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			logFile.Close()
			return nil, "", fmt.Errorf("inngest dev server exited: %v (see %s)", err, logFile.Name())
		default:
		}
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				log.Info("inngest dev server running", "url", url, "log", logFile.Name())
				return stop, url, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, "", errors.New("inngest dev server did not answer within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
