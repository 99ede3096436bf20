package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"ticketd/workflows/llmfake"
)

// The fault tests each break one part of the running stack and report what
// they saw in a line starting "fault report:" (scripts/faults.sh prints
// them).

// loadMail is one mail of a load run.
type loadMail struct {
	id        string // Message-ID without <>
	from      string
	raw       []byte
	attempted bool
	acked     bool
	codes     []int // SMTP reply codes seen for it, 0 for a broken connection
}

func newLoad(tag string, clients, perClient int) [][]*loadMail {
	load := make([][]*loadMail, clients)
	for c := range load {
		for i := 0; i < perClient; i++ {
			id := fmt.Sprintf("%s-%d-%d@load.test", tag, c, i)
			from := fmt.Sprintf("load%d@customer.test", c)
			raw := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s load %d/%d\r\nMessage-ID: <%s>\r\nDate: Thu, 26 Nov 2026 11:00:00 +0000\r\n\r\nMail %d of client %d: the printer on floor %d is jammed again.\r\n",
				from, supportAddr, tag, c, i, id, i, c, i%7)
			load[c] = append(load[c], &loadMail{id: id, from: from, raw: []byte(raw)})
		}
	}
	return load
}

// send hands one mail to ticketd with go-smtp's client and reports the
// final reply code (250 when acked, 0 when the connection broke).
func sendOne(addr string, m *loadMail) int {
	c, err := smtp.Dial(addr)
	if err != nil {
		return 0
	}
	defer c.Close()
	err = c.SendMail(m.from, []string{supportAddr}, strings.NewReader(string(m.raw)))
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return 250
	case errors.As(err, &se):
		return se.Code
	default:
		return 0
	}
}

// runLoad sends every mail once per client goroutine; with retry, a mail
// not acked is tried again until acked or until ctx ends, as an MTA's queue
// would. Once stopNew is closed (nil: never), no client starts a new mail.
func (s *stack) runLoad(ctx context.Context, load [][]*loadMail, retry bool, stopNew <-chan struct{}) {
	var wg sync.WaitGroup
	for _, mails := range load {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, m := range mails {
				select {
				case <-stopNew:
					return
				default:
				}
				m.attempted = true
				for ctx.Err() == nil {
					code := sendOne(s.smtpAddr, m)
					m.codes = append(m.codes, code)
					if code == 250 {
						m.acked = true
						break
					}
					if !retry {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

// stored counts how often each mail of the load is in the thread tables.
func (s *stack) stored(load [][]*loadMail) map[string]int {
	s.t.Helper()
	rows, err := s.pool.Query(context.Background(),
		`SELECT message_id, count(*) FROM messages WHERE direction = 'inbound' AND message_id LIKE '%@load.test' GROUP BY message_id`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		rows.Scan(&id, &n)
		got[id] = n
	}
	return got
}

// TestFaultKillUnderLoad: SIGKILL ticketd while clients send. Every mail
// that got 250 must be stored exactly once; resending the others must
// create no duplicate.
func TestFaultKillUnderLoad(t *testing.T) {
	s := startStack(t, stackOptions{})
	load := newLoad("kill", 6, 100)
	done := make(chan struct{})
	go func() {
		s.runLoad(context.Background(), load, false, nil)
		close(done)
	}()
	// Kill once some mail is in.
	s.eventually("some mail stored", 30*time.Second, func() error {
		if n := s.count(`SELECT count(*) FROM raw_messages`); n < 20 {
			return fmt.Errorf("%d stored", n)
		}
		return nil
	})
	s.stop(syscall.SIGKILL)
	<-done
	var acked, unanswered int
	for _, mails := range load {
		for _, m := range mails {
			if m.acked {
				acked++
			} else {
				unanswered++
			}
		}
	}
	s.start()
	stored := s.stored(load)
	lost, twice := 0, 0
	for _, mails := range load {
		for _, m := range mails {
			if m.acked && stored[m.id] != 1 {
				lost++
			}
			if stored[m.id] > 1 {
				twice++
			}
		}
	}
	// Resend what got no 250, as the senders' MTAs would.
	s.runLoad(context.Background(), load, true, nil)
	stored = s.stored(load)
	missing, dup := 0, 0
	for _, mails := range load {
		for _, m := range mails {
			if stored[m.id] == 0 {
				missing++
			}
			if stored[m.id] > 1 {
				dup++
			}
		}
	}
	t.Logf("fault report: SIGKILL under SMTP load: %d mails from 6 clients, %d acked before the kill, %d unanswered; "+
		"after restart %d acked mails missing, %d stored twice; after resending the unanswered: %d missing, %d duplicates",
		acked+unanswered, acked, unanswered, lost, twice, missing, dup)
	if lost != 0 || twice != 0 || missing != 0 || dup != 0 || acked == 0 || unanswered == 0 {
		t.Fatal("acked mail lost or stored twice, or the kill did not land mid-load")
	}
	if n := s.count(`SELECT count(*) FROM tickets`); n != len(load)*len(load[0]) {
		t.Errorf("%d tickets for %d distinct mails", n, len(load)*len(load[0]))
	}
}

// TestFaultDatabaseRestart: PostgreSQL stops for a few seconds under load.
// While it is away SMTP answers 4xx (never 250); afterwards every mail goes
// in exactly once.
func TestFaultDatabaseRestart(t *testing.T) {
	s := startStack(t, stackOptions{OwnDatabase: true})
	// Clients keep sending new mail until two seconds after the database
	// is back, so the outage falls in the middle of the load.
	load := newLoad("pgrestart", 4, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stopNew := make(chan struct{})
	done := make(chan struct{})
	go func() {
		s.runLoad(ctx, load, true, stopNew)
		close(done)
	}()
	s.eventually("some mail stored", 30*time.Second, func() error {
		if n := s.count(`SELECT count(*) FROM raw_messages`); n < 10 {
			return fmt.Errorf("%d stored", n)
		}
		return nil
	})
	if err := s.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	// While the database is down, readiness says so.
	var readyDuring int
	s.eventually("readyz to report the outage", 20*time.Second, func() error {
		resp, err := http.Get("http://" + s.httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		readyDuring = resp.StatusCode
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	time.Sleep(4*time.Second - time.Since(down))
	if err := s.cluster.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	outage := time.Since(down)
	time.Sleep(2 * time.Second)
	close(stopNew)
	<-done
	stored := s.stored(load)
	var total, codes4xx, codes5xx, missing, dup int
	for _, mails := range load {
		for _, m := range mails {
			if !m.attempted {
				continue
			}
			total++
			for _, c := range m.codes {
				if c >= 400 && c < 500 {
					codes4xx++
				}
				if c >= 500 {
					codes5xx++
				}
			}
			if !m.acked || stored[m.id] == 0 {
				missing++
			}
			if stored[m.id] > 1 {
				dup++
			}
		}
	}
	t.Logf("fault report: PostgreSQL stopped for %v under SMTP load: %d mails, %d answers 4xx and %d 5xx during the outage, "+
		"/readyz answered %d; afterwards %d missing, %d stored twice", outage.Round(100*time.Millisecond), total, codes4xx, codes5xx, readyDuring, missing, dup)
	if codes4xx == 0 || codes5xx != 0 || missing != 0 || dup != 0 {
		t.Fatal("the outage was not answered with 4xx only, or mail was lost or doubled")
	}
}

// TestFaultInngestRestart: the workflow engine is down while mail arrives.
// Mail is still taken, events wait in the outbox, and when the engine is
// back every ticket is triaged exactly once.
func TestFaultInngestRestart(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.ticketd("", "user", "add", "--email", "mo@example.com", "--role", "moderator", "--skills", "printers")
	s.inngest.Stop()
	load := newLoad("inngest", 1, 6)
	s.runLoad(context.Background(), load, false, nil)
	for _, m := range load[0] {
		if !m.acked {
			t.Fatalf("mail %s not taken while the workflow engine was down: %v", m.id, m.codes)
		}
	}
	var waiting int
	s.eventually("events to wait in the outbox", 10*time.Second, func() error {
		waiting = s.count(`SELECT count(*) FROM event_outbox WHERE sent_at IS NULL`)
		if waiting < len(load[0]) {
			return fmt.Errorf("%d events waiting", waiting)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	triagedWhileDown := s.count(`SELECT count(*) FROM tickets WHERE triaged_at IS NOT NULL`)
	s.inngest.Restart(t)
	s.inngest.Sync(t, "http://"+s.inngestAddr+"/api/inngest", 5)
	s.eventually("every ticket triaged", 120*time.Second, func() error {
		if n := s.count(`SELECT count(*) FROM tickets WHERE status = 'in_progress'`); n != len(load[0]) {
			return fmt.Errorf("%d of %d in progress", n, len(load[0]))
		}
		return nil
	})
	s.settle()
	decisions := s.count(`SELECT count(*) FROM (SELECT ticket_id FROM ai_decisions GROUP BY ticket_id HAVING count(*) > 1) d`)
	acks := s.count(`SELECT count(*) FROM mail_outbox WHERE kind = 'acknowledgement'`)
	audits := s.count(`SELECT count(*) FROM (SELECT ticket_id FROM audit_log WHERE action = 'triage' GROUP BY ticket_id HAVING count(*) > 1) d`)
	t.Logf("fault report: Inngest dev server down while %d mails arrived: all taken, %d events waited, %d triaged while down; "+
		"after restart %d tickets triaged, %d triaged twice, %d acknowledgements queued",
		len(load[0]), waiting, triagedWhileDown, len(load[0]), audits, acks)
	if triagedWhileDown != 0 || audits != 0 || decisions != 0 || acks != len(load[0]) {
		t.Fatal("a workflow ran while the engine was down, ran twice, or an acknowledgement is missing or doubled")
	}
}

// TestFaultRelayDown: the SMTP relay refuses everything for a minute. Mail
// waits and, once the relay is back, every mail is delivered exactly once.
func TestFaultRelayDown(t *testing.T) {
	// Attempts back off to at most 10s apart, so delivery resumes soon
	// after the relay is back.
	s := startStack(t, stackOptions{Env: []string{"SMTP_RELAY_RETRY_MAX=10s"}})
	s.ticketd("", "user", "add", "--email", "mo@example.com", "--role", "moderator", "--skills", "printers")
	s.sink.mu.Lock()
	s.sink.refuse = true
	s.sink.mu.Unlock()
	load := newLoad("relay", 1, 4)
	s.runLoad(context.Background(), load, false, nil)
	s.eventually("notifications queued", 60*time.Second, func() error {
		if n := s.count(`SELECT count(*) FROM mail_outbox`); n < 2*len(load[0]) {
			return fmt.Errorf("%d queued", n)
		}
		return nil
	})
	time.Sleep(60 * time.Second)
	s.sink.mu.Lock()
	s.sink.refuse = false
	refused := s.sink.refused
	s.sink.mu.Unlock()
	queued := s.count(`SELECT count(*) FROM mail_outbox`)
	s.eventually("every mail delivered", 3*time.Minute, func() error {
		if n := s.count(`SELECT count(*) FROM mail_outbox WHERE status <> 'sent'`); n != 0 {
			return fmt.Errorf("%d not sent", n)
		}
		return nil
	})
	s.settle()
	seen := map[string]int{}
	for _, m := range s.sink.all() {
		seen[m.Hdr.Get("Message-Id")]++
	}
	dup := 0
	for _, n := range seen {
		if n > 1 {
			dup++
		}
	}
	t.Logf("fault report: relay refused every mail for 60s (%d attempts refused); %d mails queued, %d delivered after, %d delivered twice",
		refused, queued, len(seen), dup)
	if refused == 0 || len(seen) != queued || dup != 0 {
		t.Fatal("mail lost or delivered twice across the relay outage")
	}
}

// TestFaultLLMGarbage: the model answers garbage, then nothing at all; the
// rules engine takes over and every ticket is still triaged and assigned.
func TestFaultLLMGarbage(t *testing.T) {
	s := startStack(t, stackOptions{Env: []string{"LLM_TIMEOUT=2s"}})
	s.ticketd("", "user", "add", "--email", "mo@example.com", "--role", "moderator", "--skills", "printers")
	for _, sc := range []llmfake.Scenario{llmfake.AlwaysInvalid, llmfake.Timeout, llmfake.RateLimited} {
		s.llm.SetScenario(sc)
		load := newLoad("llm-"+string(sc), 1, 1)
		s.runLoad(context.Background(), load, false, nil)
		s.eventually("the ticket triaged despite "+string(sc), 90*time.Second, func() error {
			var status, assignee, provider string
			err := s.pool.QueryRow(context.Background(), `
				SELECT t.status::text, COALESCE(u.email, ''),
					COALESCE((SELECT CASE WHEN d.error LIKE '%decided by%rules%' THEN 'rules' ELSE d.provider END FROM ai_decisions d
						WHERE d.ticket_id = t.id AND d.output IS NOT NULL ORDER BY d.id DESC LIMIT 1), '')
				FROM messages m JOIN tickets t ON t.id = m.ticket_id LEFT JOIN users u ON u.id = t.assignee_id
				WHERE m.message_id = $1`, load[0][0].id).Scan(&status, &assignee, &provider)
			if err != nil {
				return err
			}
			if status != "in_progress" || assignee != "mo@example.com" || provider != "rules" {
				return fmt.Errorf("status %s, assignee %q, decided by %q", status, assignee, provider)
			}
			return nil
		})
		failed := s.count(`SELECT count(*) FROM ai_decisions d JOIN messages m ON m.ticket_id = d.ticket_id
			WHERE m.message_id = $1 AND d.error <> '' AND d.provider = 'openai'`, load[0][0].id)
		t.Logf("fault report: LLM %s: ticket triaged by the rules engine after %d failed LLM decisions recorded", sc, failed)
		if failed == 0 {
			t.Errorf("the LLM's failure under %s was not recorded", sc)
		}
	}
}
