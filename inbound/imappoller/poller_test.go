package imappoller_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/google/go-cmp/cmp"

	"ticketd/inbound/imappoller"
	"ticketd/pgtest"
	"ticketd/tickets"
)

func TestNewParsesURL(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	deliver := func(context.Context, []byte, imappoller.Mail) error { return nil }
	tests := []struct {
		name    string
		url     string
		wantKey string
		wantErr string
	}{
		{"imaps with default port", "imaps://support%40example.test:p%40ss@Mail.Example.test/INBOX",
			"imap://support%40example.test@mail.example.test:993/INBOX", ""},
		{"starttls, no path is INBOX", "imap://support:secret@mail.example.test",
			"imap://support@mail.example.test:143/INBOX", ""},
		{"inbox is case-insensitive", "imap://support:secret@mail.example.test/inbox",
			"imap://support@mail.example.test:143/INBOX", ""},
		{"other folder and port", "imap+insecure://support:secret@127.0.0.1:1143/Support/Tickets",
			"imap://support@127.0.0.1:1143/Support/Tickets", ""},
		{"unknown scheme", "pop3://support:secret@mail.example.test/", "", `scheme "pop3"`},
		{"no user", "imaps://mail.example.test/INBOX", "", "has no user"},
		{"no host", "imaps://support:secret@/INBOX", "", "has no host"},
		{"does not parse, password not echoed", "imaps://support:se cret%zz@mail.example.test/", "", "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := imappoller.New(imappoller.Options{URL: tt.url, Pool: pool, Deliver: deliver})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "cret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Mailbox(); got != tt.wantKey {
				t.Errorf("Mailbox() = %q, want %q", got, tt.wantKey)
			}
		})
	}
	// Moving delivered mail to the mailbox polled would take it again.
	for _, tc := range []struct{ url, moveTo string }{
		{"imap://support:secret@mail.example.test/INBOX", "inbox"},
		{"imap://support:secret@mail.example.test/Support", "Support"},
	} {
		_, err := imappoller.New(imappoller.Options{URL: tc.url, Pool: pool, Deliver: deliver, MoveTo: tc.moveTo})
		if err == nil || !strings.Contains(err.Error(), "is the mailbox polled") {
			t.Errorf("MoveTo %q polling %s: %v", tc.moveTo, tc.url, err)
		}
	}
}

// TestEachMailDeliveredOnce appends mail before the poller starts, while it
// idles, and across a server restart: every mail is delivered once, marked
// \Seen only after that, and the checkpoint follows.
func TestEachMailDeliveredOnce(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	srv := startMemServer(t)
	acct := srv.account()
	st := newStore(pool)
	logs := newLogs(t)

	acct.appendMails(t, "INBOX", ids("a", 0, 7)...)
	p, err := imappoller.New(imappoller.Options{URL: acct.url("INBOX"), Pool: pool, Deliver: st.Deliver,
		BatchSize: 3, MinBackoff: 10 * time.Millisecond, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	want := map[string]int{}
	expect := func(ids ...string) {
		for _, id := range ids {
			want[id] = 1
		}
		waitFor(t, fmt.Sprintf("%d deliveries", len(want)), func() bool { return len(st.delivered()) >= len(want) })
	}
	expect(ids("a", 0, 7)...)

	// New mail while the poller idles.
	acct.appendMails(t, "INBOX", ids("b", 0, 4)...)
	expect(ids("b", 0, 4)...)

	// The server goes away and comes back; the poller reconnects.
	srv.restart()
	acct.appendMails(t, "INBOX", ids("c", 0, 3)...)
	expect(ids("c", 0, 3)...)

	if diff := cmp.Diff(want, st.delivered()); diff != "" {
		t.Errorf("deliveries per mail (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, rows(t, pool)); diff != "" {
		t.Errorf("stored rows per mail (-want +got):\n%s", diff)
	}
	waitFor(t, "every mail marked \\Seen", func() bool {
		flags := acct.flags(t, "INBOX")
		for id := range want {
			if !hasFlag(flags[id], imap.FlagSeen) {
				return false
			}
		}
		return len(flags) == len(want)
	})
	cp, err := tickets.NewStore(pool).IMAPCheckpoint(context.Background(), p.Mailbox())
	if err != nil {
		t.Fatal(err)
	}
	if cp.LastUID != 14 {
		t.Errorf("checkpoint last_uid = %d, want 14", cp.LastUID)
	}
	if n := logs.count("reconnecting"); n == 0 {
		t.Errorf("no reconnect logged across the server restart")
	}
}

// TestUIDValidityChange recreates the mailbox: its new mail, with UIDs
// starting at 1 again, is delivered; and the same mails restored into a
// rebuilt mailbox are delivered again but stored once.
func TestUIDValidityChange(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	srv := startMemServer(t, "Support")
	acct := srv.account()
	st := newStore(pool)
	logs := newLogs(t)

	acct.appendMails(t, "Support", ids("old", 0, 5)...)
	p, err := imappoller.New(imappoller.Options{URL: acct.url("Support"), Pool: pool, Deliver: st.Deliver,
		MinBackoff: 10 * time.Millisecond, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "5 deliveries", func() bool { return len(st.delivered()) == 5 })
	before := waitCheckpoint(t, pool, p, 5)

	// Recreate the mailbox with three new mails: UIDs 1 to 3, below the
	// checkpoint's 5, under a new UIDVALIDITY.
	acct.recreate(t, "Support")
	srv.restart() // the in-memory server does not end sessions on a deleted mailbox
	acct.appendMails(t, "Support", ids("new", 0, 3)...)
	waitFor(t, "8 deliveries", func() bool { return len(st.delivered()) == 8 })
	// The checkpoint advances just after the mails are marked done.
	after := waitCheckpoint(t, pool, p, 3)
	if after.UIDValidity == before.UIDValidity || after.LastUID != 3 {
		t.Errorf("checkpoint after the change = %+v, before %+v; want a new uidvalidity and last_uid 3", after, before)
	}

	// Rebuild it once more, restoring all eight mails from a backup.
	acct.recreate(t, "Support")
	srv.restart()
	acct.appendMails(t, "Support", append(ids("old", 0, 5), ids("new", 0, 3)...)...)
	acct.appendMails(t, "Support", "sentinel-0")
	waitFor(t, "the sentinel", func() bool { return st.callsOf("sentinel-0") == 1 })

	want := map[string]int{"sentinel-0": 1}
	for _, id := range append(ids("old", 0, 5), ids("new", 0, 3)...) {
		want[id] = 1
	}
	if diff := cmp.Diff(want, rows(t, pool)); diff != "" {
		t.Errorf("stored rows per mail (-want +got):\n%s", diff)
	}
	if n := logs.count("UIDVALIDITY changed"); n != 2 {
		t.Errorf("UIDVALIDITY change logged %d times, want 2", n)
	}
}

func TestMoveToFolder(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	srv := startMemServer(t)
	acct := srv.account()
	st := newStore(pool)
	acct.appendMails(t, "INBOX", ids("m", 0, 4)...)
	runPoller(t, imappoller.Options{URL: acct.url("INBOX"), Pool: pool, Deliver: st.Deliver,
		MoveTo: "Done/Tickets", Logger: newLogs(t).logger()})
	waitFor(t, "4 deliveries", func() bool { return len(st.delivered()) == 4 })
	waitFor(t, "the mails moved", func() bool { return len(acct.flags(t, "INBOX")) == 0 })
	moved := acct.flags(t, "Done/Tickets")
	if len(moved) != 4 {
		t.Errorf("%d mails in Done/Tickets, want 4", len(moved))
	}
}

// TestTemporaryFailureRetries: while Deliver fails, the mail stays unseen
// and the checkpoint stays; once Deliver works, the mail is taken.
func TestTemporaryFailureRetries(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	srv := startMemServer(t)
	acct := srv.account()
	st := newStore(pool)
	var failing atomic.Bool
	var attempts atomic.Int64
	failing.Store(true)
	st.fail = func(string) error {
		if failing.Load() {
			attempts.Add(1)
			return errors.New("begin transaction: connection refused")
		}
		return nil
	}
	acct.appendMails(t, "INBOX", "t-0", "t-1")
	p, err := imappoller.New(imappoller.Options{URL: acct.url("INBOX"), Pool: pool, Deliver: st.Deliver,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: newLogs(t).logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "three failed attempts", func() bool { return attempts.Load() >= 3 })
	flags := acct.flags(t, "INBOX")
	for _, id := range []string{"t-0", "t-1"} {
		if hasFlag(flags[id], imap.FlagSeen) {
			t.Errorf("%s marked \\Seen while Deliver fails", id)
		}
	}
	cp, err := tickets.NewStore(pool).IMAPCheckpoint(context.Background(), p.Mailbox())
	if err != nil {
		t.Fatal(err)
	}
	if cp.LastUID != 0 {
		t.Errorf("checkpoint advanced to %d while Deliver fails", cp.LastUID)
	}
	failing.Store(false)
	waitFor(t, "both mails delivered", func() bool { return len(st.delivered()) == 2 })
	if diff := cmp.Diff(map[string]int{"t-0": 1, "t-1": 1}, st.delivered()); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
}

// TestPermanentRejection: a mail Deliver can never take is flagged and left
// for a person; the poller goes on with the next one.
func TestPermanentRejection(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	srv := startMemServer(t)
	acct := srv.account()
	st := newStore(pool)
	errBad := errors.New("inbound: rejected: not a mail")
	st.fail = func(id string) error {
		if id == "p-1" {
			return fmt.Errorf("deliver: %w", errBad)
		}
		return nil
	}
	acct.appendMails(t, "INBOX", ids("p", 0, 3)...)
	runPoller(t, imappoller.Options{URL: acct.url("INBOX"), Pool: pool, Deliver: st.Deliver,
		IsPermanent: func(err error) bool { return errors.Is(err, errBad) }, Logger: newLogs(t).logger()})
	waitFor(t, "p-0 and p-2 delivered", func() bool { return len(st.delivered()) == 2 })
	waitFor(t, "flags set", func() bool {
		f := acct.flags(t, "INBOX")
		return hasFlag(f["p-1"], imap.FlagFlagged) && hasFlag(f["p-2"], imap.FlagSeen)
	})
	f := acct.flags(t, "INBOX")
	if hasFlag(f["p-1"], imap.FlagSeen) {
		t.Errorf("rejected mail marked \\Seen: %v", f["p-1"])
	}
}

// TestTwoPollersOneMailbox runs two pollers on one mailbox, as two replicas
// would: one holds the lock and delivers; when it stops, the other takes
// over; no mail is delivered twice.
func TestTwoPollersOneMailbox(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	srv := startMemServer(t)
	acct := srv.account()
	st := newStore(pool)
	logs := newLogs(t)
	opt := func(label string) imappoller.Options {
		return imappoller.Options{URL: acct.url("INBOX"), Pool: pool, Deliver: st.as(label),
			LockRetry: 50 * time.Millisecond, Logger: logs.logger().With("replica", label)}
	}
	stopA := runPoller(t, opt("a"))
	waitFor(t, "replica a to hold the lock", func() bool { return logs.count("polling mailbox") == 1 })
	runPoller(t, opt("b"))
	waitFor(t, "replica b to find the lock taken", func() bool { return logs.count("another ticketd polls") == 1 })

	acct.appendMails(t, "INBOX", ids("r", 0, 20)...)
	waitFor(t, "20 deliveries", func() bool { return len(st.delivered()) == 20 })
	stopA()
	acct.appendMails(t, "INBOX", ids("s", 0, 5)...)
	waitFor(t, "25 deliveries", func() bool { return len(st.delivered()) == 25 })

	want := map[string]int{}
	for _, id := range append(ids("r", 0, 20), ids("s", 0, 5)...) {
		want[id] = 1
	}
	if diff := cmp.Diff(want, st.delivered()); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, label := range st.by {
		wantLabel := "a"
		if strings.HasPrefix(id, "s-") {
			wantLabel = "b"
		}
		if label != wantLabel {
			t.Errorf("%s delivered by replica %s, want %s", id, label, wantLabel)
		}
	}
}

// TestBadLoginRetriesSlowly: a refused login or a missing mailbox is logged
// with what to check and retried after AuthRetry, not in a loop.
func TestBadLoginRetriesSlowly(t *testing.T) {
	t.Parallel()
	srv := startMemServer(t)
	tests := []struct {
		name    string
		url     func(a account) string
		wantLog string
	}{
		{"wrong password", func(a account) string { a.password = "wrong"; return a.url("INBOX") },
			"the server refused the login: check the user and password"},
		{"missing mailbox", func(a account) string { return a.url("Nope") },
			`cannot open mailbox \"Nope\": check the mailbox`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.New(t)
			st := newStore(pool)
			logs := newLogs(t)
			stop := runPoller(t, imappoller.Options{URL: tt.url(srv.account()), Pool: pool, Deliver: st.Deliver,
				MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, AuthRetry: time.Hour,
				Logger: logs.logger()})
			waitFor(t, "the error logged", func() bool { return logs.count(tt.wantLog) >= 1 })
			// With a millisecond backoff, a poller retrying quickly
			// would log hundreds of attempts in this second.
			time.Sleep(time.Second)
			stop()
			if n := logs.count(tt.wantLog); n != 1 {
				t.Errorf("error logged %d times in a second, want 1 (retry after AuthRetry)", n)
			}
			if n := logs.count("retry_in=1h0m0s"); n != 1 {
				t.Errorf("retry delay not logged as 1h: %d", n)
			}
		})
	}
}

// TestLockConnectionLost: when PostgreSQL ends the session holding the
// mailbox lock, the poller stops, takes the lock again and goes on, and no
// mail is delivered twice.
func TestLockConnectionLost(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	srv := startMemServer(t)
	acct := srv.account()
	st := newStore(pool)
	logs := newLogs(t)
	runPoller(t, imappoller.Options{URL: acct.url("INBOX"), Pool: pool, Deliver: st.Deliver,
		MinBackoff: 10 * time.Millisecond, Logger: logs.logger()})
	acct.appendMails(t, "INBOX", ids("l", 0, 3)...)
	waitFor(t, "3 deliveries", func() bool { return len(st.delivered()) == 3 })

	var n int
	err := pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("end the session holding the lock: %d sessions, %v", n, err)
	}
	waitFor(t, "the loss noticed", func() bool { return logs.count("lost the connection holding the mailbox lock") == 1 })
	waitFor(t, "the lock taken again", func() bool { return logs.count("polling mailbox") == 2 })
	acct.appendMails(t, "INBOX", ids("m", 0, 2)...)
	waitFor(t, "5 deliveries", func() bool { return len(st.delivered()) == 5 })
	for id, n := range st.delivered() {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}
