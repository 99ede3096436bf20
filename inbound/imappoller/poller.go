// Package imappoller takes mail for ticketd out of an IMAP mailbox (RFC
// 9051, IMAP4rev1 RFC 3501 servers too) and hands each message to a
// caller-supplied Deliver function.
//
// A message counts as taken only after Deliver returned nil (the mail is
// committed): then it is marked \Seen or moved to another folder, and the
// mailbox's checkpoint (UIDVALIDITY and the last UID handled) advances in
// PostgreSQL. A crash in between makes the poller deliver the message again
// on its next run, which Deliver recognises by the message's content and
// stores nothing twice.
//
// One replica at a time polls a mailbox: the poller holds a PostgreSQL
// session-level advisory lock on the mailbox for as long as it polls it.
package imappoller

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/metrics"
	"ticketd/tickets"
)

// Mail says where a delivered message comes from.
type Mail struct {
	// Mailbox is the checkpoint key of the mailbox,
	// imap://user@host:port/Mailbox, without the password.
	Mailbox string
	// UIDValidity and UID identify the message in it (RFC 9051 2.3.1.1).
	UIDValidity uint32
	UID         uint32
}

// DeliverFunc stores one mail. It returns nil only once the mail is durable;
// a mail stored already returns nil as well.
type DeliverFunc func(ctx context.Context, raw []byte, m Mail) error

// Options configures a Poller. URL, Pool and Deliver are required.
type Options struct {
	// URL is the mailbox: imaps://user:password@host[:993]/INBOX (TLS),
	// imap://user:password@host[:143]/INBOX (STARTTLS, required), or
	// imap+insecure://... (no TLS at all: loopback and tests only). The
	// user and password are URL-encoded; the path is the mailbox, INBOX
	// when empty.
	URL string
	// Pool holds the checkpoints; the advisory lock takes one more
	// connection of the same configuration, outside the pool.
	Pool *pgxpool.Pool
	// Deliver stores a mail; see DeliverFunc.
	Deliver DeliverFunc
	// IsPermanent reports whether a Deliver error can never succeed on a
	// retry. Such a mail is flagged \Flagged and left unseen in the
	// mailbox for a person to look at, and the poller goes on; nil
	// treats every error as temporary (the poller retries the mail).
	IsPermanent func(error) bool
	// MoveTo is the folder delivered mail is moved to (created when
	// missing); "" marks it \Seen and leaves it in place.
	MoveTo string
	// BatchSize is how many messages one FETCH asks for; default 50.
	BatchSize int
	// PollInterval is how often a server without IDLE is asked for new
	// mail; default 1 minute.
	PollInterval time.Duration
	// IdleTimeout ends an IDLE that heard nothing after this long, to look
	// again anyway; default 10 minutes (RFC 2177 asks for less than 29).
	IdleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting after
	// an error, doubled after each failure; defaults 1 second and 5
	// minutes.
	MinBackoff, MaxBackoff time.Duration
	// AuthRetry is the wait after the server refused the login or the
	// mailbox does not exist, which a retry soon will not fix; default 5
	// minutes.
	AuthRetry time.Duration
	// LockRetry is how often a replica whose peer polls the mailbox tries
	// to take over; default 30 seconds.
	LockRetry time.Duration
	// DialTimeout bounds connecting to the server; default 30 seconds.
	DialTimeout time.Duration
	// DeliverTimeout bounds one Deliver call; default 2 minutes.
	DeliverTimeout time.Duration
	// TLSConfig is used for imaps and STARTTLS, e.g. with RootCAs for a
	// private CA; nil verifies against the system roots.
	TLSConfig *tls.Config
	// Metrics records how many messages wait in the mailbox; nil records
	// nothing.
	Metrics *metrics.Metrics
	// Logger receives the poller's logs; default slog.Default().
	Logger *slog.Logger
}

type security int

const (
	implicitTLS security = iota
	startTLS
	insecure
)

// Poller polls one mailbox.
type Poller struct {
	opt      Options
	log      *slog.Logger
	store    *tickets.Store
	addr     string // host:port
	host     string
	security security
	user     string
	password string
	mailbox  string // the IMAP name, e.g. INBOX
	key      string // the checkpoint key
	lockID   int64

	// unreadable counts, per UID, the fetches the server refused in a
	// row; see fetchOne.
	unreadable map[imap.UID]int
}

// New checks the options; it connects to nothing.
func New(opt Options) (*Poller, error) {
	if opt.Pool == nil {
		return nil, errors.New("imappoller: Options.Pool is required")
	}
	if opt.Deliver == nil {
		return nil, errors.New("imappoller: Options.Deliver is required")
	}
	p := &Poller{opt: opt, unreadable: map[imap.UID]int{}}
	if err := p.parseURL(opt.URL); err != nil {
		return nil, err
	}
	if sameMailbox(opt.MoveTo, p.mailbox) {
		return nil, fmt.Errorf("imappoller: the folder for delivered mail (%q) is the mailbox polled", opt.MoveTo)
	}
	if p.opt.BatchSize <= 0 {
		p.opt.BatchSize = 50
	}
	defaults := []struct {
		d   *time.Duration
		def time.Duration
	}{
		{&p.opt.PollInterval, time.Minute},
		{&p.opt.IdleTimeout, 10 * time.Minute},
		{&p.opt.MinBackoff, time.Second},
		{&p.opt.MaxBackoff, 5 * time.Minute},
		{&p.opt.AuthRetry, 5 * time.Minute},
		{&p.opt.LockRetry, 30 * time.Second},
		{&p.opt.DialTimeout, 30 * time.Second},
		{&p.opt.DeliverTimeout, 2 * time.Minute},
	}
	for _, d := range defaults {
		if *d.d <= 0 {
			*d.d = d.def
		}
	}
	if p.opt.Logger == nil {
		p.opt.Logger = slog.Default()
	}
	p.log = p.opt.Logger.With("mailbox", p.key)
	p.store = tickets.NewStore(opt.Pool)
	sum := sha256.Sum256([]byte("ticketd imap poller " + p.key))
	p.lockID = int64(binary.BigEndian.Uint64(sum[:8]))
	return p, nil
}

// sameMailbox compares mailbox names as IMAP does: INBOX in any case is
// INBOX (RFC 9051 5.1), other names exactly.
func sameMailbox(a, b string) bool {
	if strings.EqualFold(a, "INBOX") {
		return strings.EqualFold(b, "INBOX")
	}
	return a == b
}

func (p *Poller) parseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the URL, password included.
		return errors.New("imappoller: IMAP URL does not parse; expected imaps://user:password@host/INBOX")
	}
	port := ""
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		p.security, port = implicitTLS, "993"
	case "imap":
		p.security, port = startTLS, "143"
	case "imap+insecure":
		p.security, port = insecure, "143"
	default:
		return fmt.Errorf("imappoller: IMAP URL scheme %q: want imaps, imap (STARTTLS) or imap+insecure", u.Scheme)
	}
	p.host = strings.ToLower(u.Hostname())
	if p.host == "" {
		return errors.New("imappoller: IMAP URL has no host")
	}
	if u.Port() != "" {
		port = u.Port()
	}
	p.addr = net.JoinHostPort(p.host, port)
	if u.User == nil || u.User.Username() == "" {
		return fmt.Errorf("imappoller: IMAP URL for %s has no user", p.addr)
	}
	p.user = u.User.Username()
	p.password, _ = u.User.Password()
	p.mailbox = strings.TrimPrefix(u.Path, "/")
	if p.mailbox == "" || strings.EqualFold(p.mailbox, "INBOX") {
		// RFC 9051 5.1: INBOX is case-insensitive.
		p.mailbox = "INBOX"
	}
	// The key is the same whichever way the server is reached.
	p.key = (&url.URL{Scheme: "imap", User: url.User(p.user), Host: p.addr, Path: "/" + p.mailbox}).String()
	return nil
}

// Mailbox returns the mailbox's checkpoint key, imap://user@host:port/Name.
func (p *Poller) Mailbox() string { return p.key }

// Run polls the mailbox until ctx ends, then returns nil. Errors along the
// way are logged and retried: connection failures with exponential
// backoff, a refused login or a missing mailbox every AuthRetry.
func (p *Poller) Run(ctx context.Context) error {
	backoff := p.opt.MinBackoff
	waitingLogged := false
	for ctx.Err() == nil {
		lock, ok, err := p.tryLock(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.log.Warn("imap: cannot take the mailbox lock in PostgreSQL", "err", err, "retry_in", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, p.opt.MaxBackoff)
			continue
		}
		backoff = p.opt.MinBackoff
		if !ok {
			if !waitingLogged {
				p.log.Info("imap: another ticketd polls this mailbox; waiting to take over", "retry_every", p.opt.LockRetry)
				waitingLogged = true
			}
			sleep(ctx, p.opt.LockRetry)
			continue
		}
		waitingLogged = false
		p.log.Info("imap: polling mailbox")
		p.pollLocked(ctx, lock)
		p.unlock(lock)
	}
	return nil
}

// tryLock takes the mailbox's advisory lock on a connection of its own.
func (p *Poller) tryLock(ctx context.Context) (*pgx.Conn, bool, error) {
	cfg := p.opt.Pool.Config().ConnConfig.Copy()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("connect for the mailbox lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(cctx, `SELECT pg_try_advisory_lock($1)`, p.lockID).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return nil, false, fmt.Errorf("take mailbox lock: %w", err)
	}
	if !ok {
		conn.Close(context.Background())
		return nil, false, nil
	}
	return conn, true, nil
}

func (p *Poller) unlock(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Closing the session releases the lock as well; unlocking first
	// hands the mailbox over without waiting for the server to notice.
	_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, p.lockID)
	conn.Close(ctx)
}

// pollLocked polls while the lock is held: it returns when ctx ends or the
// lock's connection is lost (another replica may hold the lock then).
func (p *Poller) pollLocked(ctx context.Context, lock *pgx.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Another replica polls the mailbox now, or nobody: this one's lag
	// is not the mailbox's any more.
	defer p.opt.Metrics.IMAPLag(p.key, 0)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		defer p.recoverPanic("lock watcher")
		p.watchLock(ctx, lock, cancel)
	}()
	defer func() { <-watched }()

	backoff := p.opt.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		progressed, err := p.session(ctx)
		if ctx.Err() != nil {
			return
		}
		// A session that moved the checkpoint, or that lasted, was no
		// failure in a row; one that keeps failing the same way, after
		// delivering or not, waits longer each time.
		if progressed || time.Since(start) > time.Minute {
			backoff = p.opt.MinBackoff
		}
		var ce *configError
		if errors.As(err, &ce) {
			p.log.Error("imap: "+ce.hint+"; retrying slowly", "err", ce.err, "retry_in", p.opt.AuthRetry)
			sleep(ctx, p.opt.AuthRetry)
			continue
		}
		p.log.Warn("imap: polling failed; reconnecting", "err", err, "retry_in", backoff)
		sleep(ctx, backoff)
		backoff = min(2*backoff, p.opt.MaxBackoff)
	}
}

// watchLock checks the lock's connection every few seconds and cancels
// polling when it is gone.
func (p *Poller) watchLock(ctx context.Context, lock *pgx.Conn, cancel context.CancelFunc) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		err := lock.Ping(pctx)
		pcancel()
		if err != nil && ctx.Err() == nil {
			p.log.Error("imap: lost the connection holding the mailbox lock; stopping until it is taken again", "err", err)
			cancel()
			return
		}
	}
}

func (p *Poller) recoverPanic(what string) {
	if r := recover(); r != nil {
		p.log.Error("imap: panic in "+what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// configError is a failure a quick retry will not fix.
type configError struct {
	hint string
	err  error
}

func (e *configError) Error() string { return e.hint + ": " + e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
