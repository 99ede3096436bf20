package outbound_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"ticketd/outbound"
	"ticketd/tickets"
)

// queueMails queues n completion mails, one ticket each, and returns their
// Message-IDs.
func (f *fixture) queueMails(n int, email string) []string {
	f.t.Helper()
	u, err := f.st.EnsureRequester(f.ctx, email, "")
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for i := range n {
		tk := f.ticket(u, fmt.Sprintf("Request %d", i), "Text.", fmt.Sprintf("open-%d.%s", i, email))
		f.tx(func(st *tickets.Store) error { return f.n.Completion(f.ctx, st, "done", tk.ID) })
		m := f.mails(tk.ID)
		if len(m) != 1 {
			f.t.Fatalf("%d mails queued for ticket %d", len(m), tk.ID)
		}
		ids = append(ids, m[0].MessageID)
	}
	return ids
}

func (f *fixture) outbox(id string) tickets.OutboxMail {
	f.t.Helper()
	m, err := f.st.OutboxMailByMessageID(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// once checks that the sink received each id exactly once, and nothing else.
func once(t testing.TB, got []sunk, ids []string) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range got {
		h := m.header(t)
		id, err := h.MessageID()
		if err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("mail %s received %d times, want once", id, seen[id])
		}
		delete(seen, id)
	}
	if len(seen) != 0 {
		t.Errorf("unexpected mails received: %v", seen)
	}
}

func fastRetry(o *outbound.SenderOptions) {
	o.RetryMin, o.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	o.PollInterval = 50 * time.Millisecond
	o.SendTimeout = 5 * time.Second
}

func TestSenderWaitsForRelay(t *testing.T) {
	f := newFixture(t, nil)
	sk := startSink(t, sinkOptions{})
	relay := f.relay(sk, nil)
	sk.stop() // the relay is down
	ids := f.queueMails(5, "ann@customer.example")
	f.run(f.sender(relay, fastRetry))

	eventually(t, "every mail failed at least twice", func() bool {
		for _, id := range ids {
			if m := f.outbox(id); m.Attempts < 2 || m.Status != tickets.MailPending || m.LastError == "" {
				return false
			}
		}
		return true
	})
	m := f.outbox(ids[0])
	if !strings.Contains(m.LastError, "connect to relay") || !m.NextAttemptAt.After(m.CreatedAt) {
		t.Errorf("a waiting mail: last error %q, next attempt %v", m.LastError, m.NextAttemptAt)
	}
	sk.restart()
	once(t, sk.waitFor(len(ids)), ids)
	eventually(t, "every mail is marked sent", func() bool {
		for _, id := range ids {
			if f.outbox(id).Status != tickets.MailSent {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // a few more rounds of the sender: nothing is sent again
	once(t, sk.received(), ids)
}

func TestSenderRelayAnswers(t *testing.T) {
	f := newFixture(t, nil)
	sk := startSink(t, sinkOptions{Rcpt: func(to string) error {
		switch {
		case strings.HasPrefix(to, "nobody@"):
			return rcptError(550, smtp.EnhancedCode{5, 1, 1}, "No such user here")
		case strings.HasPrefix(to, "full@"):
			return rcptError(452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full, try later")
		case strings.HasPrefix(to, "authonly@"):
			return rcptError(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
		}
		return nil
	}})
	// Retries an hour away: one DeliverDue is one attempt each, however
	// slowly the machine runs the batch.
	snd := f.sender(f.relay(sk, nil), func(o *outbound.SenderOptions) {
		fastRetry(o)
		o.RetryMin, o.RetryMax = time.Hour, 2*time.Hour
	})
	refused := f.queueMails(1, "nobody@customer.example")[0]
	later := f.queueMails(1, "full@customer.example")[0]
	unauthenticated := f.queueMails(1, "authonly@customer.example")[0]
	fine := f.queueMails(1, "ann@customer.example")[0]
	f.deliver(snd)

	for _, tc := range []struct {
		name     string
		id       string
		status   string
		attempts int
		lastErr  string
	}{
		{"5xx fails for good with the answer", refused, tickets.MailFailed, 1, "550 5.1.1 No such user here (answer to RCPT TO)"},
		{"4xx waits for another try", later, tickets.MailPending, 1, "452 4.2.2 Mailbox full, try later"},
		{"a relay that wants authentication: ticketd's configuration, not the mail's fault", unauthenticated, tickets.MailPending, 1, "530 5.7.0 Authentication required"},
		{"accepted", fine, tickets.MailSent, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := f.outbox(tc.id)
			if m.Status != tc.status || m.Attempts != tc.attempts || !strings.Contains(m.LastError, tc.lastErr) {
				t.Errorf("status %s after %d attempts, last error %q; want %s, %d, %q",
					m.Status, m.Attempts, m.LastError, tc.status, tc.attempts, tc.lastErr)
			}
		})
	}
	once(t, sk.received(), []string{fine})
	// The refused mail did not spoil the connection for the next ones.
	if n := f.outbox(fine); n.Status != tickets.MailSent {
		t.Errorf("mail after a refused one: %s", n.Status)
	}
}

func TestSenderGivesUp(t *testing.T) {
	f := newFixture(t, nil)
	sk := startSink(t, sinkOptions{Rcpt: func(string) error {
		return rcptError(451, smtp.EnhancedCode{4, 3, 0}, "Try again later")
	}})
	id := f.queueMails(1, "ann@customer.example")[0]
	// Queued four days ago: the next temporary failure is the last.
	if _, err := f.pool.Exec(f.ctx, `UPDATE mail_outbox SET created_at = now() - interval '4 days' WHERE message_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	f.deliver(f.sender(f.relay(sk, nil), fastRetry))
	if m := f.outbox(id); m.Status != tickets.MailFailed || !strings.Contains(m.LastError, "451") {
		t.Errorf("status %s, last error %q; want failed with the 451", m.Status, m.LastError)
	}
}

func TestTwoSendersDeliverEachMailOnce(t *testing.T) {
	f := newFixture(t, func(o *outbound.NotifierOptions) { o.AutoLimitPerHour = -1 })
	sk := startSink(t, sinkOptions{})
	ids := f.queueMails(60, "ann@customer.example")
	small := func(o *outbound.SenderOptions) { fastRetry(o); o.BatchSize = 5; o.Workers = 3 }
	f.run(f.sender(f.relay(sk, nil), small))
	f.run(f.sender(f.relay(sk, nil), small))
	once(t, sk.waitFor(len(ids)), ids)
	eventually(t, "every mail is marked sent", func() bool {
		var pending int
		f.pool.QueryRow(f.ctx, `SELECT count(*) FROM mail_outbox WHERE status <> 'sent'`).Scan(&pending)
		return pending == 0
	})
	var attempts int
	f.pool.QueryRow(f.ctx, `SELECT sum(attempts) FROM mail_outbox`).Scan(&attempts)
	if attempts != len(ids) {
		t.Errorf("%d delivery attempts for %d mails", attempts, len(ids))
	}
	once(t, sk.received(), ids)
}

// TestSenderWakesOnNewMail: with an hour between polls, only the
// notification from the committing transaction can wake the sender once it
// has delivered what it found at start.
func TestSenderWakesOnNewMail(t *testing.T) {
	f := newFixture(t, nil)
	sk := startSink(t, sinkOptions{})
	f.run(f.sender(f.relay(sk, nil), func(o *outbound.SenderOptions) { o.PollInterval = time.Hour }))
	eventually(t, "the sender listens", func() bool {
		var n int
		err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN '||$1`, tickets.MailOutboxChannel).Scan(&n)
		return err == nil && n == 1
	})
	for i := range 3 {
		ids := f.queueMails(1, fmt.Sprintf("u%d@customer.example", i))
		once(t, sk.waitFor(i + 1)[i:], ids)
	}
}

// TestSenderLeaseExpiry documents the at-least-once window: a sender that
// took a mail and died before recording the relay's answer leaves it
// reserved for the lease; after that another sender sends it.
func TestSenderLeaseExpiry(t *testing.T) {
	f := newFixture(t, nil)
	sk := startSink(t, sinkOptions{})
	id := f.queueMails(1, "ann@customer.example")[0]
	claimed, err := f.st.ClaimMail(f.ctx, 10, 500*time.Millisecond) // the sender that dies
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	snd := f.sender(f.relay(sk, nil), fastRetry)
	f.deliver(snd)
	if sk.count() != 0 {
		t.Fatal("a leased mail was sent by another sender")
	}
	eventually(t, "the lease passed", func() bool {
		w, ok, err := f.st.NextMailDue(f.ctx)
		return err == nil && ok && w == 0
	})
	f.deliver(snd)
	once(t, sk.waitFor(1), []string{id})
	if m := f.outbox(id); m.Status != tickets.MailSent || m.Attempts != 2 {
		t.Errorf("status %s after %d attempts", m.Status, m.Attempts)
	}
	// The dead sender's late answer changes nothing.
	if ok, _, err := f.st.MarkMailSent(f.ctx, claimed[0].ID, claimed[0].Attempts); ok || err != nil {
		t.Errorf("a stale claim marked the mail: %v, %v", ok, err)
	}
}

// blockingTransport holds every delivery until released.
type blockingTransport struct {
	started chan struct{}
	release chan struct{}
	mu      sync.Mutex
	sent    int
}

func (b *blockingTransport) Send(ctx context.Context, from string, to []string, data []byte) error {
	b.started <- struct{}{}
	<-b.release
	b.mu.Lock()
	b.sent++
	b.mu.Unlock()
	return nil
}

// TestSenderShutdown: stopping finishes the delivery in flight and records
// it, and gives claimed mails it did not start back at once.
func TestSenderShutdown(t *testing.T) {
	f := newFixture(t, nil)
	ids := f.queueMails(4, "ann@customer.example")
	tr := &blockingTransport{started: make(chan struct{}, 10), release: make(chan struct{})}
	snd := f.sender(tr, func(o *outbound.SenderOptions) { o.Workers = 1; o.BatchSize = 4 })
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error)
	go func() { done <- snd.Run(ctx) }()
	<-tr.started
	cancel()
	time.Sleep(100 * time.Millisecond) // the sender sees the cancellation first
	close(tr.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var sent, due int
	for _, id := range ids {
		m := f.outbox(id)
		switch {
		case m.Status == tickets.MailSent && m.Attempts == 1:
			sent++
		case m.Status == tickets.MailPending && m.Attempts == 0 && !m.NextAttemptAt.After(time.Now()):
			due++
		default:
			t.Errorf("mail %s: %s, %d attempts, next at %v", id, m.Status, m.Attempts, m.NextAttemptAt)
		}
	}
	if sent != 1 || due != 3 || tr.sent != 1 {
		t.Errorf("%d sent and %d given back (transport sent %d), want 1 and 3", sent, due, tr.sent)
	}
}

func TestRelayTLSAndAuth(t *testing.T) {
	f := newFixture(t, nil)
	serverTLS, roots := selfSigned(t)
	trust := func(o *outbound.RelayOptions) { o.TLSConfig = serverTLSClient(roots) }
	users := map[string]string{"ticketd": "s3cret pass"}
	creds := "ticketd:s3cret%20pass"
	for _, tc := range []struct {
		name      string
		sink      sinkOptions
		scheme    string
		userinfo  string
		opts      func(*outbound.RelayOptions)
		wantTLS   bool
		wantUser  string
		wantError string // "" when it is delivered
	}{
		{"STARTTLS with AUTH PLAIN", sinkOptions{TLS: serverTLS, Users: users}, "smtp", creds, trust, true, "ticketd", ""},
		{"STARTTLS with AUTH LOGIN", sinkOptions{TLS: serverTLS, Users: users, Mechs: []string{"LOGIN"}}, "smtp", creds, trust, true, "ticketd", ""},
		{"STARTTLS without credentials", sinkOptions{TLS: serverTLS}, "smtp", "", trust, true, "", ""},
		{"implicit TLS (smtps)", sinkOptions{TLS: serverTLS, Users: users, ImplicitTLS: true}, "smtps", creds, trust, true, "ticketd", ""},
		{"no TLS offered and no credentials: plain", sinkOptions{}, "smtp", "", nil, false, "", ""},
		{"skipping verification for tests", sinkOptions{TLS: serverTLS}, "smtp", "", func(o *outbound.RelayOptions) { o.InsecureSkipVerify = true }, true, "", ""},
		{"an untrusted certificate", sinkOptions{TLS: serverTLS}, "smtp", "", nil, false, "", "certificate"},
		{"a wrong password", sinkOptions{TLS: serverTLS, Users: users}, "smtp", "ticketd:wrong", trust, false, "", "535"},
		{"credentials but no STARTTLS", sinkOptions{Users: users}, "smtp", creds, nil, false, "", "not sending the password in clear"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sk := startSink(t, tc.sink)
			o := outbound.RelayOptions{URL: sk.url(tc.scheme, tc.userinfo), HeloName: "ticketd.test", Logger: f.log}
			if tc.opts != nil {
				tc.opts(&o)
			}
			r, err := outbound.NewRelay(o)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
			defer cancel()
			data := []byte("From: support@desk.example\r\nTo: ann@customer.example\r\nSubject: hi\r\n\r\nHello.\r\n")
			for range 2 { // the second mail reuses the connection
				err = r.Send(ctx, support, []string{"ann@customer.example"}, data)
				if err != nil {
					break
				}
			}
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantError)
				}
				if outbound.Permanent(err) {
					t.Errorf("err %v is permanent; configuration trouble must let the mail wait", err)
				}
				if n := sk.count(); n != 0 {
					t.Errorf("%d mails arrived", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := sk.waitFor(2)
			for _, m := range got {
				if m.TLS != tc.wantTLS || m.User != tc.wantUser || string(m.Data) != string(data) {
					t.Errorf("received TLS=%v user=%q data=%q; want TLS=%v user=%q", m.TLS, m.User, m.Data, tc.wantTLS, tc.wantUser)
				}
			}
		})
	}
}

func TestRelayURL(t *testing.T) {
	for _, tc := range []struct{ url, want, err string }{
		{"smtp://mail.example", "smtp://mail.example:25", ""},
		{"smtp://u:p@mail.example:587", "smtp://u@mail.example:587", ""},
		{"smtps://mail.example", "smtps://mail.example:465", ""},
		{"http://mail.example", "", "scheme"},
		{"smtp://", "", "no host"},
		{"smtp://mail.example/x", "", "no path"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			r, err := outbound.NewRelay(outbound.RelayOptions{URL: tc.url})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tc.want {
				t.Errorf("String() = %q, want %q (never the password)", r.String(), tc.want)
			}
		})
	}
}

func TestMaildir(t *testing.T) {
	f := newFixture(t, nil)
	dir := filepath.Join(t.TempDir(), "outbox")
	md, err := outbound.NewMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := f.queueMails(3, "ann@customer.example")
	f.deliver(f.sender(md, nil))
	files, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	tmp, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(files) != 3 || len(tmp) != 0 {
		t.Fatalf("%d files in new/ and %d in tmp/, want 3 and 0", len(files), len(tmp))
	}
	var got []sunk
	for _, e := range files {
		data, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		p := parse(t, data)
		if p.h.Get("Delivered-To") != "ann@customer.example" {
			t.Errorf("envelope fields: Delivered-To %q", p.h.Get("Delivered-To"))
		}
		f.checkReturnPath(strings.Trim(p.h.Get("Return-Path"), "<>"), "ann@customer.example")
		if !strings.Contains(p.text, "is completed") {
			t.Errorf("text:\n%s", p.text)
		}
		got = append(got, sunk{Data: data})
	}
	once(t, got, ids)
}

func TestPermanent(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"a 5xx answer", &outbound.SendError{Code: 550}, true},
		{"a 4xx answer", &outbound.SendError{Temporary: true, Code: 451}, false},
		{"wrapped", fmt.Errorf("deliver: %w", &outbound.SendError{Code: 554}), true},
		{"anything else", errors.New("connection reset"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := outbound.Permanent(tc.err); got != tc.want {
				t.Errorf("Permanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// countingTransport counts deliveries per Message-ID; slow is how long
// each delivery takes.
type countingTransport struct {
	mu   sync.Mutex
	n    map[string]int
	slow time.Duration
}

func (c *countingTransport) Send(ctx context.Context, from string, to []string, data []byte) error {
	select {
	case <-time.After(c.slow):
	case <-ctx.Done():
		return ctx.Err()
	}
	r, err := mail.CreateReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	id, _ := r.Header.MessageID()
	c.mu.Lock()
	c.n[id]++
	c.mu.Unlock()
	return nil
}

// TestSenderRenewsLeaseWithinBatch: a claimed batch is worked through
// Workers mails at a time. With a slow relay the lease of the last mails
// would pass while they wait, and another sender would claim and send them
// too; the sender renews a claim that is about to run out before it sends.
// It takes some 40 s: a lease lasts at least SendTimeout + 30 s.
func TestSenderRenewsLeaseWithinBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("takes some 40 s")
	}
	f := newFixture(t, func(o *outbound.NotifierOptions) { o.AutoLimitPerHour = -1 })
	ids := f.queueMails(40, "ann@customer.example")
	tr := &countingTransport{n: map[string]int{}, slow: 900 * time.Millisecond}
	a := f.sender(tr, func(o *outbound.SenderOptions) {
		o.Workers, o.BatchSize, o.SendTimeout, o.Lease = 1, 40, time.Second, 1 // Lease becomes 31s
	})
	b := f.sender(tr, func(o *outbound.SenderOptions) {
		o.Workers, o.BatchSize, o.SendTimeout, o.Lease = 4, 40, time.Second, 1
	})
	done := make(chan struct{})
	go func() { defer close(done); a.DeliverDue(f.ctx) }()
	// The other replica polls.
	for polling := true; polling; {
		select {
		case <-done:
			polling = false
		case <-time.After(time.Second):
			b.DeliverDue(f.ctx)
		}
	}
	b.DeliverDue(f.ctx)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, id := range ids {
		if tr.n[id] != 1 {
			t.Errorf("mail %s delivered %d times, want once", id, tr.n[id])
		}
	}
}

// TestDeliveryClearsBouncing: when the relay accepts a mail to an address
// marked bouncing, the mark clears (a later delivery is newer news), except
// when the report that set it is about that very mail.
func TestDeliveryClearsBouncing(t *testing.T) {
	f := newFixture(t, nil)
	sk := startSink(t, sinkOptions{})
	relay := f.relay(sk, nil)
	ids := f.queueMails(2, "ann@customer.example")
	ann, err := f.st.UserByEmail(f.ctx, "ann@customer.example")
	if err != nil {
		t.Fatal(err)
	}
	// A report about the first mail marked ann before it was recorded sent.
	first := f.outbox(ids[0])
	if _, err := f.pool.Exec(f.ctx, `INSERT INTO bounces (user_id, mail_id, detail) VALUES ($1, $2, 'test')`, ann.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(f.ctx, `UPDATE users SET bouncing_since = now() WHERE id = $1`, ann.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(f.ctx, `UPDATE mail_outbox SET next_attempt_at = now() + interval '1 hour' WHERE id <> $1`, first.ID); err != nil {
		t.Fatal(err)
	}
	bouncing := func() bool {
		u, err := f.st.User(f.ctx, ann.ID)
		if err != nil {
			t.Fatal(err)
		}
		return u.BouncingSince != nil
	}
	f.deliver(f.sender(relay, nil))
	if f.outbox(ids[0]).Status != tickets.MailSent || !bouncing() {
		t.Fatal("the bounced mail's own delivery cleared the mark its report set")
	}
	if _, err := f.pool.Exec(f.ctx, `UPDATE mail_outbox SET next_attempt_at = now()`); err != nil {
		t.Fatal(err)
	}
	f.deliver(f.sender(relay, nil))
	if f.outbox(ids[1]).Status != tickets.MailSent || bouncing() {
		t.Fatal("a later delivery to ann did not clear the mark")
	}
	var how string
	if err := f.pool.QueryRow(f.ctx, `SELECT cleared_how FROM bounces WHERE user_id = $1 AND cleared_at IS NOT NULL`, ann.ID).Scan(&how); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(how, ids[1]) {
		t.Errorf("the report was cleared %q, want by mail %s", how, ids[1])
	}
}
