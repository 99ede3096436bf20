package imappoller_test

import (
	"context"
	"crypto/tls"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"

	"ticketd/inbound/imappoller"
	"ticketd/inbound/imappoller/dovecot"
	"ticketd/pgtest"
	"ticketd/testcert"
)

// startDovecot runs a private Dovecot for the test. A machine without
// Dovecot fails the test with how to install it: these tests are never
// skipped.
func startDovecot(t testing.TB, opt dovecot.Options) *dovecot.Server {
	t.Helper()
	if err := dovecot.Available(); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "ticketd-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	opt.Dir = dir
	if opt.Users == nil {
		opt.Users = map[string]string{"support": "pw"}
	}
	s, err := dovecot.Start(context.Background(), opt)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start Dovecot: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("Dovecot's log:\n%s", s.Log())
		}
		os.RemoveAll(dir)
	})
	return s
}

// certificate returns a self-signed certificate for 127.0.0.1 and a client
// configuration trusting it.
func certificate(t testing.TB) (*tls.Certificate, *tls.Config) {
	cert, roots := testcert.New(t)
	return &cert, &tls.Config{RootCAs: roots}
}

func dovecotURL(scheme, addr, mailbox string) string {
	return (&url.URL{Scheme: scheme, User: url.UserPassword("support", "pw"), Host: addr, Path: "/" + mailbox}).String()
}

// TestDovecotEachMailOnce: over implicit TLS, mail appended before the
// poller starts, after a Dovecot restart, and after the mailbox was
// recreated (new UIDVALIDITY, UIDs from 1 again) is delivered once each.
func TestDovecotEachMailOnce(t *testing.T) {
	t.Parallel()
	cert, clientTLS := certificate(t)
	dc := startDovecot(t, dovecot.Options{Certificate: cert})
	acct := account{addr: dc.Addr, user: "support", password: "pw"}
	acct.run(t, func(c *imapclient.Client) error { return c.Create("Support", nil).Wait() })
	pool := pgtest.New(t)
	st := newStore(pool)
	logs := newLogs(t)

	acct.appendMails(t, "Support", ids("d", 0, 10)...)
	p, err := imappoller.New(imappoller.Options{URL: dovecotURL("imaps", dc.TLSAddr, "Support"), TLSConfig: clientTLS,
		Pool: pool, Deliver: st.Deliver, BatchSize: 4, MinBackoff: 20 * time.Millisecond,
		IdleTimeout: 200 * time.Millisecond, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "10 deliveries", func() bool { return len(st.delivered()) == 10 })

	if err := dc.Restart(context.Background()); err != nil {
		t.Fatalf("restart Dovecot: %v", err)
	}
	acct.appendMails(t, "Support", ids("e", 0, 5)...)
	waitFor(t, "15 deliveries", func() bool { return len(st.delivered()) == 15 })
	before := waitCheckpoint(t, pool, p, 15)

	acct.recreate(t, "Support")
	acct.appendMails(t, "Support", ids("f", 0, 4)...)
	waitFor(t, "19 deliveries", func() bool { return len(st.delivered()) == 19 })
	// The checkpoint advances just after the mails are marked done.
	after := waitCheckpoint(t, pool, p, 4)
	if after.UIDValidity == before.UIDValidity || after.LastUID != 4 || before.LastUID != 15 {
		t.Errorf("checkpoint before the mailbox was recreated %+v, after %+v; want 15, then a new uidvalidity and 4",
			before, after)
	}

	want := map[string]int{}
	for _, id := range append(append(ids("d", 0, 10), ids("e", 0, 5)...), ids("f", 0, 4)...) {
		want[id] = 1
	}
	if diff := cmp.Diff(want, st.delivered()); diff != "" {
		t.Errorf("deliveries per mail (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, rows(t, pool)); diff != "" {
		t.Errorf("stored rows per mail (-want +got):\n%s", diff)
	}
	if n := logs.count("UIDVALIDITY changed"); n != 1 {
		t.Errorf("UIDVALIDITY change logged %d times, want 1", n)
	}
}

// TestDovecotSTARTTLSPollingAndMove: a Dovecot announcing neither IDLE nor
// MOVE is polled over STARTTLS, and delivered mail is moved to a folder the
// poller creates (COPY, \Deleted, UID EXPUNGE with UIDPLUS).
func TestDovecotSTARTTLSPollingAndMove(t *testing.T) {
	t.Parallel()
	cert, clientTLS := certificate(t)
	dc := startDovecot(t, dovecot.Options{Certificate: cert, Capability: "IMAP4rev1 LITERAL+ SASL-IR ENABLE UIDPLUS"})
	acct := account{addr: dc.Addr, user: "support", password: "pw"}
	pool := pgtest.New(t)
	st := newStore(pool)
	logs := newLogs(t)

	acct.appendMails(t, "INBOX", ids("g", 0, 3)...)
	runPoller(t, imappoller.Options{URL: dovecotURL("imap", dc.Addr, "INBOX"), TLSConfig: clientTLS,
		Pool: pool, Deliver: st.Deliver, MoveTo: "Processed", PollInterval: 50 * time.Millisecond, Logger: logs.logger()})
	waitFor(t, "3 deliveries", func() bool { return len(st.delivered()) == 3 })
	acct.appendMails(t, "INBOX", ids("h", 0, 3)...)
	waitFor(t, "6 deliveries", func() bool { return len(st.delivered()) == 6 })
	waitFor(t, "INBOX emptied", func() bool { return len(acct.flags(t, "INBOX")) == 0 })
	if n := len(acct.flags(t, "Processed")); n != 6 {
		t.Errorf("%d mails in Processed, want 6", n)
	}
	if n := logs.count("idle=false"); n == 0 {
		t.Errorf("the poller did not notice the server lacks IDLE")
	}
	if n := logs.count("creating the folder"); n != 1 {
		t.Errorf("folder creation logged %d times, want 1", n)
	}
	for id, n := range st.delivered() {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

func TestDovecotTwoPollers(t *testing.T) {
	t.Parallel()
	dc := startDovecot(t, dovecot.Options{})
	acct := account{addr: dc.Addr, user: "support", password: "pw"}
	pool := pgtest.New(t)
	st := newStore(pool)
	logs := newLogs(t)
	for _, label := range []string{"a", "b"} {
		runPoller(t, imappoller.Options{URL: dovecotURL("imap+insecure", dc.Addr, "INBOX"), Pool: pool,
			Deliver: st.as(label), LockRetry: 50 * time.Millisecond, Logger: logs.logger().With("replica", label)})
	}
	acct.appendMails(t, "INBOX", ids("k", 0, 30)...)
	waitFor(t, "30 deliveries", func() bool { return len(st.delivered()) == 30 })
	acct.appendMails(t, "INBOX", "sentinel-1")
	waitFor(t, "the sentinel", func() bool { return st.callsOf("sentinel-1") == 1 })
	want := map[string]int{"sentinel-1": 1}
	for _, id := range ids("k", 0, 30) {
		want[id] = 1
	}
	if diff := cmp.Diff(want, st.delivered()); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	if n := logs.count("polling mailbox"); n != 1 {
		t.Errorf("%d pollers took the mailbox, want 1", n)
	}
	labels := map[string]bool{}
	st.mu.Lock()
	for _, l := range st.by {
		labels[l] = true
	}
	st.mu.Unlock()
	if len(labels) != 1 {
		t.Errorf("mail delivered by replicas %v, want one", labels)
	}
}

func TestDovecotBadPassword(t *testing.T) {
	t.Parallel()
	dc := startDovecot(t, dovecot.Options{})
	pool := pgtest.New(t)
	st := newStore(pool)
	logs := newLogs(t)
	u := dovecotURL("imap+insecure", dc.Addr, "INBOX")
	u = strings.Replace(u, ":pw@", ":wrong@", 1)
	stop := runPoller(t, imappoller.Options{URL: u, Pool: pool, Deliver: st.Deliver,
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, AuthRetry: time.Hour, Logger: logs.logger()})
	const want = "the server refused the login: check the user and password"
	waitFor(t, "the login error", func() bool { return logs.count(want) >= 1 })
	time.Sleep(time.Second)
	stop()
	if n := logs.count(want); n != 1 {
		t.Errorf("login error logged %d times in a second, want 1", n)
	}
	if n := logs.count("AUTHENTICATIONFAILED"); n != 1 {
		t.Errorf("Dovecot's answer not in the log: %d", n)
	}
	// Dovecot saw one attempt.
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(dc.MailDir("support")), "..", "..", "dovecot.log"))
	if n := strings.Count(string(b), "auth failed"); n > 1 {
		t.Errorf("Dovecot logged %d failed logins, want 1", n)
	}
}
