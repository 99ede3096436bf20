package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/cluster"
	"ticketd/tickets"
	"ticketd/workflows/llmfake"
)

// The cluster tests run the production shape (package cluster): three
// replicas on inngest start with its state in PostgreSQL and Redis, behind
// Postfix as the MX, with a support mailbox on Dovecot and a relay sink.

const (
	clusterLLMLimit = 4
	clusterDomain   = "example.com"
)

// inngestBinary is bin/inngest at the module root, or $INNGEST_BIN.
func inngestBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("INNGEST_BIN"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "bin", "inngest")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make inngest`", p)
	}
	return p
}

// clusterRun is a started cluster with the fake model and the staff.
type clusterRun struct {
	t    *testing.T
	c    *cluster.Cluster
	llm  *llmfake.Server
	pool *pgxpool.Pool
}

func startCluster(t *testing.T, env ...string) *clusterRun {
	t.Helper()
	if err := cluster.Available(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	llm, err := llmfake.Start(llmfake.Options{Latency: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(llm.Close)
	// Kept when the test fails, with every part's log and data.
	dir, err := os.MkdirTemp("", "ticketd-cluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, Ticketd: ticketdBinary(t), Inngest: inngestBinary(t),
		Replicas: 3, Domain: clusterDomain, Fast: true, Logger: nil,
		Env: append([]string{"LLM_PROVIDER=openai", "LLM_BASE_URL=" + llm.URL, "LLM_API_KEY=e2e", "LLM_MODEL=fake-model",
			fmt.Sprintf("LLM_CONCURRENCY=%d", clusterLLMLimit), "LLM_TIMEOUT=20s",
			// A crashed replica's claimed mail goes out 40s later, not 10m.
			"SMTP_RELAY_LEASE=40s", "LOG_LEVEL=info"}, env...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range c.Replicas {
				t.Logf("replica %d log (tail):\n%s", r.Index+1, tailFile(r.Log, 6000))
			}
			t.Logf("inngest log (tail):\n%s", tailFile(c.Inngest.Log(), 4000))
			t.Logf("postfix log (tail):\n%s", tailFile(c.Postfix.Log(), 4000))
		}
		c.Stop()
		if t.Failed() {
			t.Logf("the cluster's logs and data are kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	pool, err := pgxpool.New(ctx, c.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Enough moderators that none gets more than the 120 automatic mails
	// an hour a staff address may get (the rest would be suppressed).
	st := tickets.NewStore(pool)
	for i := range 12 {
		skills := []string{"printers", "networking"}
		if i%2 == 1 {
			skills = []string{"billing", "email"}
		}
		u := tickets.NewUser{Email: fmt.Sprintf("mod%d@%s", i, clusterDomain), Name: fmt.Sprintf("Moderator %d", i),
			Role: tickets.RoleModerator, Skills: skills}
		if _, err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	return &clusterRun{t: t, c: c, llm: llm, pool: pool}
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (r *clusterRun) count(query string, args ...any) int {
	r.t.Helper()
	var n int
	if err := r.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// eventually retries check until it returns nil or the time is up.
func (r *clusterRun) eventually(what string, within time.Duration, check func() error) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	r.t.Fatalf("%s: not within %v: %v", what, within, err)
}

// sentMail is one mail handed to the cluster.
type sentMail struct {
	id      string // Message-ID without <>
	via     string // "postfix" or "mailbox"
	replyTo string // for a reply: the Message-ID (with <>) of the mail it answers
}

// mailLog records what the cluster accepted.
type mailLog struct {
	mu       sync.Mutex
	accepted []sentMail
	refused  int // answers other than 250 from Postfix (tried again)
}

func (l *mailLog) add(m sentMail) {
	l.mu.Lock()
	l.accepted = append(l.accepted, m)
	l.mu.Unlock()
}

func (l *mailLog) all() []sentMail {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sentMail(nil), l.accepted...)
}

var loadSubjects = []string{
	"Printer on floor %d is jammed",
	"VPN drops every hour (%d)",
	"Invoice %d charged twice",
	"Emails to customers land in spam (%d)",
}

func newTicketMail(id, from string, n int) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <support@%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Thu, 26 Nov 2026 11:00:00 +0000\r\n\r\nMail %d: please help, it happened again this morning.\r\n",
		from, clusterDomain, fmt.Sprintf(loadSubjects[n%len(loadSubjects)], n), id, n)
}

// sendToMX hands a mail to Postfix until it answers 250 (or ctx ends).
func (r *clusterRun) sendToMX(ctx context.Context, l *mailLog, from, rcpt, raw string) bool {
	for ctx.Err() == nil {
		c, err := smtp.Dial(r.c.Postfix.Addr)
		if err == nil {
			err = c.SendMail(from, []string{rcpt}, strings.NewReader(raw))
			c.Close()
		}
		if err == nil {
			return true
		}
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			r.t.Errorf("Postfix refused a mail for good: %v", err)
			return false
		}
		l.mu.Lock()
		l.refused++
		l.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// TestClusterWholeStack is the production shape under load and faults:
// new mail through Postfix and through the mailbox, replies to the
// acknowledgements through Postfix, while one replica is killed with
// SIGKILL and started again, then the Inngest server, Redis and PostgreSQL
// are restarted in turn. Afterwards every accepted mail is one ticket or
// one reply, every ticket was triaged once, every notification reached the
// sink once, the mailbox had one poller at a time, the outboxes are empty,
// and the model never had more than LLM_CONCURRENCY calls in flight.
func TestClusterWholeStack(t *testing.T) {
	r := startCluster(t)
	ctx := context.Background()
	l := &mailLog{}
	begin := time.Now()

	// A burst first, all at once: three replicas triage it with at most
	// LLM_CONCURRENCY model calls in flight.
	var wg sync.WaitGroup
	const burst = 40
	for i := range burst {
		wg.Go(func() {
			id := fmt.Sprintf("burst-%d@customer.test", i)
			from := fmt.Sprintf("burst%d@customer.test", i)
			if r.sendToMX(ctx, l, from, "support@"+clusterDomain, newTicketMail(id, from, i)) {
				l.add(sentMail{id: id, via: "postfix"})
			}
		})
	}
	wg.Wait()
	r.eventually("the burst triaged", 3*time.Minute, func() error {
		if n := r.count(`SELECT count(*) FROM tickets WHERE triaged_at IS NOT NULL`); n < burst {
			return fmt.Errorf("%d of %d triaged", n, burst)
		}
		return nil
	})
	burstMax := r.llm.MaxInFlight()
	t.Logf("cluster report: burst of %d tickets through Postfix, 3 replicas, LLM_CONCURRENCY=%d: at most %d model calls in flight",
		burst, clusterLLMLimit, burstMax)
	if burstMax > clusterLLMLimit {
		t.Errorf("%d model calls in flight during the burst, over the limit of %d", burstMax, clusterLLMLimit)
	}

	// Steady load: new mail by SMTP from four senders and into the
	// mailbox, and requesters answering their acknowledgements.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var seq atomic.Int64
	var load sync.WaitGroup
	for c := range 4 {
		load.Go(func() {
			for loadCtx.Err() == nil {
				n := int(seq.Add(1))
				id := fmt.Sprintf("load-%d@customer.test", n)
				// A sender of its own per mail: automatic answers to one
				// address are limited per hour.
				from := fmt.Sprintf("client%d-%d@customer.test", c, n)
				if r.sendToMX(loadCtx, l, from, "support@"+clusterDomain, newTicketMail(id, from, n)) {
					l.add(sentMail{id: id, via: "postfix"})
				}
				time.Sleep(400 * time.Millisecond)
			}
		})
	}
	load.Go(func() {
		for n := 0; loadCtx.Err() == nil; n++ {
			id := fmt.Sprintf("imap-%d@customer.test", n)
			if err := r.c.DeliverToMailbox([]byte(newTicketMail(id, fmt.Sprintf("mailbox%d@customer.test", n), n))); err != nil {
				t.Errorf("mailbox: %v", err)
				return
			}
			l.add(sentMail{id: id, via: "mailbox"})
			time.Sleep(500 * time.Millisecond)
		}
	})
	load.Go(func() {
		// Answer acknowledgements to the burst's requesters, by mail to
		// the signed Reply-To address, as a mail client would.
		answered := map[string]bool{}
		for n := 0; loadCtx.Err() == nil; {
			for _, m := range r.c.Sink.Mails() {
				if loadCtx.Err() != nil || !strings.HasPrefix(m.To[0], "burst") || answered[m.To[0]] || m.ReplyTo == "" {
					continue
				}
				answered[m.To[0]] = true
				id := fmt.Sprintf("reply-%d@customer.test", n)
				n++
				raw := fmt.Sprintf("From: <%s>\r\nTo: %s\r\nSubject: Re: %s\r\nMessage-ID: <%s>\r\nIn-Reply-To: %s\r\nReferences: %s\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\nThanks, it is still broken though.\r\n",
					m.To[0], m.ReplyTo, m.Subject, id, m.MessageID, m.MessageID)
				rcpt := strings.Trim(m.ReplyTo[strings.LastIndex(m.ReplyTo, "<")+1:], "<> ")
				if r.sendToMX(loadCtx, l, m.To[0], rcpt, raw) {
					l.add(sentMail{id: id, via: "postfix", replyTo: m.MessageID})
				}
				time.Sleep(300 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// The faults, one after another, with load running throughout.
	var faults []string
	pause := func() { time.Sleep(6 * time.Second) }
	pause()
	killedAt := time.Now()
	r.c.KillReplica(0)
	faults = append(faults, "replica 1 SIGKILLed")
	time.Sleep(2 * time.Second)
	if err := r.c.StartReplica(ctx, 0); err != nil {
		t.Fatal(err)
	}
	pause()
	if err := r.c.Inngest.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	faults = append(faults, "inngest restarted")
	pause()
	if err := r.c.Redis.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	faults = append(faults, "redis restarted")
	pause()
	if err := r.c.Postgres.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	faults = append(faults, "postgres restarted")
	pause()
	stopLoad()
	load.Wait()
	loadTime := time.Since(begin)

	// Settle: Postfix has handed on everything, every ticket is triaged,
	// both outboxes are empty and the sink has seen every mail.
	accepted := l.all()
	r.eventually("the cluster to settle", 5*time.Minute, func() error {
		if q, err := r.c.Postfix.Queued(); err != nil || q > 0 {
			return fmt.Errorf("postfix queue %d (%v)", q, err)
		}
		if n := r.count(`SELECT count(*) FROM messages WHERE direction = 'inbound'`); n < len(accepted) {
			return fmt.Errorf("%d of %d mails stored", n, len(accepted))
		}
		if n := r.count(`SELECT count(*) FROM tickets WHERE triaged_at IS NULL`); n > 0 {
			return fmt.Errorf("%d tickets not triaged", n)
		}
		if n := r.count(`SELECT count(*) FROM event_outbox WHERE sent_at IS NULL`); n > 0 {
			return fmt.Errorf("%d events unsent", n)
		}
		if n := r.count(`SELECT count(*) FROM mail_outbox WHERE status <> 'sent'`); n > 0 {
			return fmt.Errorf("%d mails unsent", n)
		}
		if n, s := r.count(`SELECT count(*) FROM mail_outbox`), len(r.c.Sink.Mails()); s < n {
			return fmt.Errorf("%d of %d mails at the sink", s, n)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // anything late would show now

	rep := r.check(accepted, killedAt)
	rep.faults, rep.loadTime, rep.refused = faults, loadTime, l.refused
	rep.burstMax, rep.maxInFlight = burstMax, r.llm.MaxInFlight()
	rep.restarts = r.c.Restarts()
	t.Log(rep.String())
	for part := range rep.restarts {
		if strings.HasPrefix(part, "replica") {
			t.Errorf("%s exited on its own", part)
		}
	}
	if rep.maxInFlight > clusterLLMLimit {
		t.Errorf("%d model calls in flight at once, over the limit of %d", rep.maxInFlight, clusterLLMLimit)
	}
}

// clusterReport is what the whole-stack test counted.
type clusterReport struct {
	faults                                   []string
	loadTime                                 time.Duration
	refused                                  int
	viaPostfix, viaMailbox, replies          int
	forwards, postfixRetried, postfixRefused int
	tickets, triaged, triagedTwice           int
	decisionsExtra                           int
	notifications, atSink, missing, dupes    int
	explainedDupes                           int
	mailboxMaxSessions, mailboxTakeovers     int
	burstMax, maxInFlight                    int
	eventsUnsent, mailsUnsent, postfixQueued int
	restarts                                 map[string]int
}

func (c clusterReport) String() string {
	return fmt.Sprintf("cluster report: %d s of load with faults (%s); accepted: %d new mails by Postfix (%d answers 4xx or broken, tried again), %d in the mailbox, %d replies by Postfix; "+
		"Postfix: %d mails deferred and relayed again later, %d connections refused by a replica and tried on the next; "+
		"%d tickets, %d triaged, %d triaged twice (%d extra model decisions from retried steps); "+
		"%d replies forwarded to the assignee; %d notifications queued, %d delivered at the sink, %d missing, %d Message-IDs delivered twice (%d of them the crash window of the killed replica); "+
		"mailbox: at most %d IMAP session(s) at once, %d takeovers; model calls in flight at most %d in the burst, %d overall (limit %d); "+
		"outboxes: %d events and %d mails unsent; Postfix queue %d; parts that exited on their own and were started again: %v",
		int(c.loadTime.Seconds()), strings.Join(c.faults, ", "), c.viaPostfix, c.refused, c.viaMailbox, c.replies, c.postfixRetried, c.postfixRefused,
		c.tickets, c.triaged, c.triagedTwice, c.decisionsExtra,
		c.forwards, c.notifications, c.atSink, c.missing, c.dupes, c.explainedDupes,
		c.mailboxMaxSessions, c.mailboxTakeovers, c.burstMax, c.maxInFlight, clusterLLMLimit,
		c.eventsUnsent, c.mailsUnsent, c.postfixQueued, c.restarts)
}

// check counts the outcome in the database, at the sink and in Dovecot's
// log, failing the test where it is wrong.
func (r *clusterRun) check(accepted []sentMail, killedAt time.Time) clusterReport {
	t := r.t
	ctx := context.Background()
	var rep clusterReport

	// Every accepted mail is stored once: a new mail as its own ticket, a
	// reply on the ticket of the mail it answers.
	stored := map[string][]int64{} // Message-ID -> ticket ids of its rows
	rows, err := r.pool.Query(ctx, `SELECT message_id, ticket_id FROM messages WHERE direction = 'inbound'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var ticket int64
		if err := rows.Scan(&id, &ticket); err != nil {
			t.Fatal(err)
		}
		stored[id] = append(stored[id], ticket)
	}
	rows.Close()
	ackTicket := map[string]int64{} // Message-ID of a mail ticketd sent -> its ticket
	rows, err = r.pool.Query(ctx, `SELECT message_id, ticket_id FROM mail_outbox WHERE ticket_id IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var ticket int64
		if err := rows.Scan(&id, &ticket); err != nil {
			t.Fatal(err)
		}
		ackTicket[id] = ticket
	}
	rows.Close()
	ticketOf := map[int64]string{}
	for _, m := range accepted {
		switch {
		case m.replyTo != "":
			rep.replies++
		case m.via == "mailbox":
			rep.viaMailbox++
		default:
			rep.viaPostfix++
		}
		got := stored[m.id]
		if len(got) != 1 {
			t.Errorf("accepted mail %s (%s) is stored %d times", m.id, m.via, len(got))
			continue
		}
		if m.replyTo != "" {
			if want := ackTicket[strings.Trim(m.replyTo, "<>")]; got[0] != want {
				t.Errorf("reply %s is on ticket %d, want %d (the ticket of %s)", m.id, got[0], want, m.replyTo)
			}
			continue
		}
		if other, ok := ticketOf[got[0]]; ok {
			t.Errorf("mails %s and %s opened the same ticket %d", other, m.id, got[0])
		}
		ticketOf[got[0]] = m.id
	}
	rep.tickets = r.count(`SELECT count(*) FROM tickets`)
	if rep.tickets != rep.viaPostfix+rep.viaMailbox {
		t.Errorf("%d tickets for %d new mails", rep.tickets, rep.viaPostfix+rep.viaMailbox)
	}

	// Triaged once each: one triage in the audit trail.
	rep.triaged = r.count(`SELECT count(*) FROM tickets WHERE triaged_at IS NOT NULL`)
	rep.triagedTwice = r.count(`SELECT count(*) FROM (SELECT ticket_id FROM audit_log WHERE action = 'triage' GROUP BY ticket_id HAVING count(*) > 1) d`)
	untriaged := r.count(`SELECT count(*) FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.ticket_id = t.id AND a.action = 'triage')`)
	rep.decisionsExtra = r.count(`SELECT count(*) FROM ai_decisions`) - rep.tickets
	if rep.triaged != rep.tickets || rep.triagedTwice != 0 || untriaged != 0 {
		t.Errorf("%d of %d tickets triaged, %d twice, %d without a triage in the audit trail", rep.triaged, rep.tickets, rep.triagedTwice, untriaged)
	}
	// Each ticket got its acknowledgement and its assignment mail, once.
	var odd int
	var example string
	if err := r.pool.QueryRow(ctx, `
		WITH k AS (SELECT t.id, (SELECT string_agg(m.kind, ',' ORDER BY m.kind) FROM mail_outbox m
			WHERE m.ticket_id = t.id AND m.kind IN ('acknowledgement', 'assignment')) AS kinds FROM tickets t)
		SELECT count(*), COALESCE(min(id || ': ' || COALESCE(kinds, 'none')), '') FROM k
		WHERE kinds IS DISTINCT FROM 'acknowledgement,assignment'`).Scan(&odd, &example); err != nil {
		t.Fatal(err)
	}
	if odd != 0 {
		t.Errorf("%d tickets without exactly one acknowledgement and one assignment mail, e.g. ticket %s", odd, example)
	}

	// No mail was held back (by the hourly limits), so the counts below
	// count every notification.
	if n := r.count(`SELECT count(*) FROM audit_log WHERE action = 'mail.suppressed'`); n != 0 {
		t.Errorf("%d mails suppressed", n)
	}

	// Each reply was forwarded to the ticket's assignee: its
	// ticket.replied event ran.
	rep.forwards = r.count(`SELECT count(*) FROM mail_outbox WHERE kind = 'forward'`)
	if rep.forwards != rep.replies {
		t.Errorf("%d replies forwarded to the assignee, want %d", rep.forwards, rep.replies)
	}

	// Every notification reached the sink, once by Message-ID; a second
	// copy only where the killed replica was sending it when it died.
	queued := map[string]bool{}
	rows, err = r.pool.Query(ctx, `SELECT message_id FROM mail_outbox`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		queued[id] = true
	}
	rows.Close()
	rep.notifications = len(queued)
	seen := map[string][]cluster.SunkMail{} // by Message-ID without <>, as the outbox keeps it
	for _, m := range r.c.Sink.Mails() {
		id := strings.Trim(m.MessageID, "<>")
		seen[id] = append(seen[id], m)
	}
	rep.atSink = len(seen)
	for id := range queued {
		if len(seen[id]) == 0 {
			rep.missing++
			t.Errorf("notification %s never reached the sink", id)
		}
	}
	for id, copies := range seen {
		if !queued[id] {
			t.Errorf("the sink got %s, which no replica queued", id)
		}
		if len(copies) > 1 {
			rep.dupes++
			if len(copies) == 2 && copies[0].Helo == "replica-1.cluster.invalid" && copies[0].ReceivedAt.Before(killedAt) &&
				killedAt.Sub(copies[0].ReceivedAt) < time.Second {
				rep.explainedDupes++
				continue
			}
			t.Errorf("notification %s delivered %d times (by %s, %s)", id, len(copies), copies[0].Helo, copies[1].Helo)
		}
	}

	// One poller at a time on the mailbox, by Dovecot's own log.
	rep.mailboxMaxSessions, rep.mailboxTakeovers = imapSessions(t, r.c.MailboxLog())
	if rep.mailboxMaxSessions != 1 {
		t.Errorf("the mailbox had at most %d IMAP sessions at once, want 1", rep.mailboxMaxSessions)
	}

	// Postfix tried again what a replica did not acknowledge.
	rep.postfixRetried, rep.postfixRefused = deferredMails(t, r.c.Postfix.Log())

	rep.eventsUnsent = r.count(`SELECT count(*) FROM event_outbox WHERE sent_at IS NULL`)
	rep.mailsUnsent = r.count(`SELECT count(*) FROM mail_outbox WHERE status <> 'sent'`)
	rep.postfixQueued, _ = r.c.Postfix.Queued()
	return rep
}

var deferredRe = regexp.MustCompile(`postfix/smtp\[\d+\]: ([0-9A-F]+): to=<[^>]*>, .*status=deferred`)

// deferredMails reads Postfix's log: the mails deferred at least once (no
// replica took them: each answered 4xx, or the one taking it died), and
// the connections a replica refused (Postfix then tried the next one).
func deferredMails(t *testing.T, path string) (deferred, refused int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("postfix log: %v", err)
	}
	ids := map[string]bool{}
	for _, m := range deferredRe.FindAllStringSubmatch(string(b), -1) {
		ids[m[1]] = true
	}
	return len(ids), strings.Count(string(b), ": Connection refused")
}

var (
	loginRe  = regexp.MustCompile(`imap-login: (?:Info: )?Login: user=<([^>]*)>.*session=<([^>]+)>`)
	logoutRe = regexp.MustCompile(`imap\(([^)]*)\)<\d+><([^>]+)>: (?:Info: )?(Logged out|Disconnected|Connection closed)`)
)

// imapSessions reads Dovecot's log: the most sessions of the support user
// open at once, and how often a session began after another had ended (a
// replica taking the mailbox over, or reconnecting).
func imapSessions(t *testing.T, path string) (max, takeovers int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("dovecot log: %v", err)
	}
	defer f.Close()
	open := map[string]bool{}
	logins := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := loginRe.FindStringSubmatch(line); m != nil && m[1] == cluster.IMAPUser {
			open[m[2]] = true
			logins++
			if len(open) > max {
				max = len(open)
			}
			continue
		}
		if m := logoutRe.FindStringSubmatch(line); m != nil && m[1] == cluster.IMAPUser {
			delete(open, m[2])
		}
	}
	return max, logins - 1
}
