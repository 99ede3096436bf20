// Package cluster runs ticketd's production shape on one machine, from the
// machine's own binaries, on loopback: PostgreSQL; Redis and the
// self-hosted Inngest (`inngest start`) keeping its state in both; several
// `ticketd serve` replicas with the same keys, behind an HTTP load balancer
// (the web, the API and /api/inngest) and behind Postfix as the MX that
// relays mail to them; Dovecot with a support mailbox every replica lists
// in IMAP_URL; and a sink as the relay for outgoing mail. `ticketd cluster`
// runs it in the foreground; the whole-stack tests break its parts.
//
// Every part's state lives under one directory: PostgreSQL's cluster,
// Redis's append-only file, Postfix's queue, the mailbox, the sent mail and
// the keys, so a second start carries on where the first stopped.
package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/imappoller/dovecot"
	"ticketd/migrations"
	"ticketd/pgcluster"
)

// Options configure a cluster.
type Options struct {
	// Dir holds every part's state; required.
	Dir string
	// Ticketd and Inngest are the binaries; required.
	Ticketd, Inngest string
	// Replicas is how many `ticketd serve` run; default 3 (at most 250).
	Replicas int
	// Domain is the mail domain (TICKETD_DOMAIN); default localhost. The
	// support address is support@Domain.
	Domain string
	// Env is added to every replica's environment after the cluster's
	// own settings, e.g. LLM_PROVIDER or LOG_LEVEL; the rest of the
	// replicas' environment is the caller's.
	Env []string
	// Fast runs PostgreSQL without fsync: for tests only.
	Fast bool
	// InngestTick is how often Inngest's executor looks at its queue, in
	// milliseconds; 0 means Inngest's default (150).
	InngestTick int
	// DevServer runs the Inngest dev server instead of inngest start, and
	// no Redis: the shape of `ticketd dev`, a benchmark's baseline.
	DevServer bool
	Logger    *slog.Logger
}

// Keys are the cluster's secrets, made on its first start and kept in
// Dir/keys.env: Inngest's signing and event keys, which the server and
// every replica share, TICKETD_SECRET, and the support mailbox's password.
type Keys struct {
	SigningKey, EventKey, Secret, IMAPPassword string
}

// IMAPUser is the support mailbox's user on the cluster's Dovecot.
const IMAPUser = "support"

// Cluster is a running cluster.
type Cluster struct {
	Keys Keys
	// Postgres is ticketd's and Inngest's database server; DatabaseURL
	// ticketd's database on it.
	Postgres    *pgcluster.Cluster
	DatabaseURL string
	Redis       *Redis
	Inngest     *Inngest
	Dovecot     *dovecot.Server
	Postfix     *Postfix
	Sink        *Sink
	Balancer    *Balancer
	Replicas    []*Replica
	// SupportAddress is where the cluster takes mail, by Postfix or in the
	// mailbox.
	SupportAddress string
	// IMAPURL is the mailbox, as every replica's IMAP_URL has it.
	IMAPURL string

	opt   Options
	log   *slog.Logger
	pgLog *os.File
}

// Replica is one `ticketd serve`.
type Replica struct {
	Index    int
	HTTPAddr string // its own HTTP_LISTEN (the balancer's backend)
	SMTPAddr string // its SMTP_LISTEN (one of Postfix's next hops)
	// Log is the path of its log (JSON lines).
	Log  string
	proc *process
}

// Start brings every part up, in order, and returns once the replicas are
// ready, their functions are registered with Inngest and Postfix greets.
// On an error, what was started is stopped.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Dir == "" || o.Ticketd == "" || o.Inngest == "" {
		return nil, errors.New("cluster: Options.Dir, Ticketd and Inngest are required")
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.Replicas > 250 {
		return nil, errors.New("cluster: at most 250 replicas")
	}
	if o.Domain == "" {
		o.Domain = "localhost"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c = &Cluster{opt: o, log: o.Logger, SupportAddress: "support@" + o.Domain}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	if c.Keys, err = loadKeys(filepath.Join(dir, "keys.env")); err != nil {
		return c, err
	}

	// PostgreSQL: ticketd's database and Inngest's.
	// The log stays open for restarts, until Stop.
	if c.pgLog, err = os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		return c, fmt.Errorf("cluster: %w", err)
	}
	if err := traversable(filepath.Join(dir, "pg")); err != nil {
		return c, err
	}
	if c.Postgres, err = pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"), Fast: o.Fast, Log: c.pgLog}); err != nil {
		return c, err
	}
	for _, db := range []string{"ticketd", "inngest"} {
		if err := createDatabase(ctx, c.Postgres, db); err != nil {
			return c, err
		}
	}
	c.DatabaseURL = c.Postgres.URL("ticketd")
	if err := migrate(ctx, c.DatabaseURL); err != nil {
		return c, err
	}
	c.log.Info("postgres running", "socket", c.Postgres.SocketDir())

	// The replicas, each on an HTTP port of its own and an SMTP address of
	// its own (127.0.1.N) with one port for all, behind the balancer.
	var smtpHosts, backends []string
	for i := range o.Replicas {
		smtpHosts = append(smtpHosts, fmt.Sprintf("127.0.1.%d", i+1))
	}
	smtpPort, err := freePortOn(smtpHosts)
	if err != nil {
		return c, err
	}
	for i := range o.Replicas {
		port, err := freePort("127.0.0.1")
		if err != nil {
			return c, err
		}
		r := &Replica{Index: i, HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			SMTPAddr: net.JoinHostPort(smtpHosts[i], strconv.Itoa(smtpPort)),
			Log:      filepath.Join(dir, fmt.Sprintf("replica-%d.log", i+1))}
		c.Replicas = append(c.Replicas, r)
		backends = append(backends, r.HTTPAddr)
	}
	if c.Balancer, err = StartBalancer(backends, c.log.With("component", "balancer")); err != nil {
		return c, err
	}

	// Redis and Inngest.
	inn := InngestOptions{Binary: o.Inngest, Dir: filepath.Join(dir, "inngest"), Tick: o.InngestTick, RetryInterval: 2}
	if o.DevServer {
		inn.Dev, inn.AppURL = true, c.Balancer.URL+"/api/inngest"
	} else {
		if c.Redis, err = StartRedis(ctx, filepath.Join(dir, "redis")); err != nil {
			return c, err
		}
		c.Redis.proc.log = c.log
		c.log.Info("redis running", "addr", c.Redis.Addr)
		inn.SigningKey, inn.EventKey = c.Keys.SigningKey, c.Keys.EventKey
		inn.PostgresURI, inn.RedisURI = c.Postgres.URL("inngest"), c.Redis.URL()
	}
	if c.Inngest, err = StartInngest(ctx, inn); err != nil {
		return c, err
	}
	c.Inngest.proc.log = c.log
	c.log.Info("inngest running", "url", c.Inngest.URL, "dev", o.DevServer)

	// The mailbox and the relay sink.
	if c.Dovecot, err = dovecot.Start(ctx, dovecot.Options{Dir: filepath.Join(dir, "dovecot"),
		Users: map[string]string{IMAPUser: c.Keys.IMAPPassword}}); err != nil {
		return c, err
	}
	c.IMAPURL = "imap+insecure://" + IMAPUser + ":" + url.QueryEscape(c.Keys.IMAPPassword) + "@" + c.Dovecot.Addr + "/INBOX"
	if c.Sink, err = StartSink(filepath.Join(dir, "sent"), c.log.With("component", "sink")); err != nil {
		return c, err
	}

	for _, r := range c.Replicas {
		r.proc = &process{name: fmt.Sprintf("replica %d", r.Index+1), path: o.Ticketd, args: []string{"serve"},
			dir: dir, env: c.replicaEnv(r), logPath: r.Log, log: c.log}
	}
	for i := range c.Replicas {
		if err := c.StartReplica(ctx, i); err != nil {
			return c, err
		}
	}
	if err := c.waitRegistered(ctx); err != nil {
		return c, err
	}

	// The MX last: the replicas take mail now.
	var recipients []string
	recipients = append(recipients, "support")
	if c.Postfix, err = StartPostfix(ctx, PostfixOptions{Dir: filepath.Join(dir, "postfix"), Domain: o.Domain,
		Recipients: recipients, Replicas: smtpHosts, Port: smtpPort}); err != nil {
		return c, err
	}
	c.Postfix.proc.log = c.log
	c.log.Info("cluster running", "mx", c.Postfix.Addr, "web", c.Balancer.URL, "replicas", len(c.Replicas))
	return c, nil
}

func (c *Cluster) replicaEnv(r *Replica) []string {
	env := append(os.Environ(),
		"DATABASE_URL="+c.DatabaseURL,
		"TICKETD_DOMAIN="+c.opt.Domain,
		"SUPPORT_ADDRESS="+c.SupportAddress,
		"TICKETD_SECRET="+c.Keys.Secret,
		"TICKETD_BASE_URL="+c.Balancer.URL,
		"TICKETD_TRUST_PROXY=true",
		"HTTP_LISTEN="+r.HTTPAddr,
		"SMTP_LISTEN="+r.SMTPAddr,
		"SMTP_RELAY_URL=smtp://"+c.Sink.Addr,
		fmt.Sprintf("SMTP_HELO_NAME=replica-%d.cluster.invalid", r.Index+1),
		"IMAP_URL="+c.IMAPURL,
		"INNGEST_SERVE_HOST="+c.Balancer.URL,
		"LOG_FORMAT=json",
	)
	if c.opt.DevServer {
		env = append(env, "INNGEST_DEV="+c.Inngest.URL, "INNGEST_BASE_URL=", "INNGEST_EVENT_KEY=", "INNGEST_SIGNING_KEY=")
	} else {
		env = append(env, "INNGEST_DEV=", "INNGEST_BASE_URL="+c.Inngest.URL,
			"INNGEST_EVENT_KEY="+c.Keys.EventKey, "INNGEST_SIGNING_KEY="+c.Keys.SigningKey)
	}
	// Settings that would point a replica elsewhere do not pass.
	for _, k := range []string{"DATABASE_URL_FILE", "TICKETD_SECRET_FILE", "SMTP_RELAY_URL_FILE", "IMAP_URL_FILE",
		"INNGEST_EVENT_KEY_FILE", "INNGEST_SIGNING_KEY_FILE", "MAILDIR"} {
		env = append(env, k+"=")
	}
	return append(env, c.opt.Env...)
}

// StartReplica starts replica i (again) and waits until it is ready.
func (c *Cluster) StartReplica(ctx context.Context, i int) error {
	r := c.Replicas[i]
	if err := r.proc.start(); err != nil {
		return err
	}
	return r.proc.waitFor(90*time.Second, func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := http.Get("http://" + r.HTTPAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz answers %d", resp.StatusCode)
		}
		return nil
	})
}

// KillReplica kills replica i with SIGKILL, as a crash would.
func (c *Cluster) KillReplica(i int) { c.Replicas[i].proc.stop(syscall.SIGKILL, 10*time.Second) }

// StopReplica stops replica i with SIGTERM: it finishes what is in flight.
func (c *Cluster) StopReplica(i int) { c.Replicas[i].proc.stop(syscall.SIGTERM, 40*time.Second) }

// waitRegistered waits until Inngest lists ticketd's functions (a replica
// registers them when it starts).
func (c *Cluster) waitRegistered(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		fns, err := c.Inngest.Functions(ctx)
		if err == nil {
			for _, f := range fns {
				if f.Slug == "ticketd-triage" {
					return nil
				}
			}
			err = errors.New("no ticketd functions yet")
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster: the replicas did not register their functions with Inngest within a minute: %v (see %s)", err, c.Replicas[0].Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops every part, the MX first and PostgreSQL last.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	if c.Postfix != nil {
		c.Postfix.Stop()
	}
	var wg sync.WaitGroup
	for i, r := range c.Replicas {
		if r.proc != nil {
			wg.Go(func() { c.StopReplica(i) })
		}
	}
	wg.Wait()
	if c.Balancer != nil {
		c.Balancer.Close()
	}
	if c.Inngest != nil {
		c.Inngest.Stop()
	}
	if c.Redis != nil {
		c.Redis.Stop()
	}
	if c.Dovecot != nil {
		c.Dovecot.Stop()
	}
	if c.Sink != nil {
		c.Sink.Close()
	}
	if c.Postgres != nil {
		c.Postgres.Stop()
	}
	if c.pgLog != nil {
		c.pgLog.Close()
	}
}

// Restarts is how often each part was started again after it exited on its
// own (as a service manager would), by name; parts that never were are
// left out.
func (c *Cluster) Restarts() map[string]int {
	out := map[string]int{}
	var procs []*process
	if c.Redis != nil {
		procs = append(procs, c.Redis.proc)
	}
	if c.Inngest != nil {
		procs = append(procs, c.Inngest.proc)
	}
	if c.Postfix != nil {
		procs = append(procs, c.Postfix.proc)
	}
	for _, r := range c.Replicas {
		if r.proc != nil {
			procs = append(procs, r.proc)
		}
	}
	for _, p := range procs {
		if n := p.restartCount(); n > 0 {
			out[p.name] = n
		}
	}
	return out
}

// MailboxLog is the path of Dovecot's log, where every IMAP login and
// logout of the replicas is.
func (c *Cluster) MailboxLog() string { return filepath.Join(c.opt.Dir, "dovecot", "dovecot.log") }

// DeliverToMailbox puts raw into the support mailbox as a local delivery
// agent would: written into the Maildir's tmp, then renamed into new, where
// Dovecot (and so the replica polling it) finds it.
func (c *Cluster) DeliverToMailbox(raw []byte) error {
	md := c.Dovecot.MailDir(IMAPUser)
	var id [8]byte
	rand.Read(id[:])
	name := fmt.Sprintf("%d.%s.cluster", time.Now().UnixNano(), hex.EncodeToString(id[:]))
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(md, d), 0o700); err != nil {
			return fmt.Errorf("cluster: mailbox: %w", err)
		}
	}
	tmp := filepath.Join(md, "tmp", name)
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("cluster: mailbox: %w", err)
	}
	// The mail belongs to the mailbox's owner (nobody, when run as root).
	uid, gid := mailOwner()
	for _, p := range []string{filepath.Dir(md), md, filepath.Join(md, "tmp"), filepath.Join(md, "new"), filepath.Join(md, "cur"), tmp} {
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("cluster: mailbox: %w", err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(md, "new", name)); err != nil {
		return fmt.Errorf("cluster: mailbox: %w", err)
	}
	return nil
}

func createDatabase(ctx context.Context, pg *pgcluster.Cluster, name string) error {
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("cluster: connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("cluster: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("cluster: create database %s: %w", name, err)
	}
	return nil
}

func migrate(ctx context.Context, dbURL string) error {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool); err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	return nil
}

// loadKeys reads the cluster's keys from path, making and writing those
// missing.
func loadKeys(path string) (Keys, error) {
	vals := map[string]string{}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
				vals[k] = v
			}
		}
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return Keys{}, fmt.Errorf("cluster: keys: %w", err)
	}
	random := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	k := Keys{SigningKey: vals["INNGEST_SIGNING_KEY"], EventKey: vals["INNGEST_EVENT_KEY"],
		Secret: vals["TICKETD_SECRET"], IMAPPassword: vals["IMAP_PASSWORD"]}
	changed := false
	for _, f := range []struct {
		v *string
		n int
	}{{&k.SigningKey, 32}, {&k.EventKey, 16}, {&k.Secret, 32}, {&k.IMAPPassword, 12}} {
		if *f.v == "" {
			*f.v, changed = random(f.n), true
		}
	}
	if changed {
		text := fmt.Sprintf("# The cluster's keys, made on its first start. The same keys go to inngest start\n"+
			"# and to every replica; keep this file as secret as a password.\n"+
			"INNGEST_SIGNING_KEY=%s\nINNGEST_EVENT_KEY=%s\nTICKETD_SECRET=%s\nIMAP_PASSWORD=%s\n",
			k.SigningKey, k.EventKey, k.Secret, k.IMAPPassword)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return Keys{}, fmt.Errorf("cluster: keys: %w", err)
		}
	}
	return k, nil
}

// mailOwner is the account that owns mail on the cluster's Dovecot.
func mailOwner() (int, int) {
	if os.Getuid() != 0 {
		return os.Getuid(), os.Getgid()
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}
