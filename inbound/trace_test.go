package inbound_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/inbound"
	"ticketd/tickets"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// traceOf returns the one trace of the mails with that Message-ID.
func (e *env) traceOf(messageID string) tickets.Trace {
	e.t.Helper()
	traces, err := e.st.TracesByMessageID(context.Background(), messageID)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(traces) != 1 {
		e.t.Fatalf("%d traces of %s, want 1", len(traces), messageID)
	}
	return traces[0]
}

func stepNames(t tickets.Trace) []string {
	var out []string
	for _, s := range t.Steps {
		out = append(out, s.Step)
	}
	return out
}

// step returns the trace's only step of that name.
func step(t *testing.T, tr tickets.Trace, name string) tickets.TraceStep {
	t.Helper()
	var found []tickets.TraceStep
	for _, s := range tr.Steps {
		if s.Step == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s steps in %v", len(found), name, stepNames(tr))
	}
	return found[0]
}

// outboxEvents lists the event outbox as trace events, oldest first.
func (e *env) outboxEvents(ticketID int64) []tickets.TraceEvent {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id, name FROM event_outbox WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []tickets.TraceEvent
	for rows.Next() {
		var ev tickets.TraceEvent
		if err := rows.Scan(&ev.ID, &ev.Name); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func TestTraces(t *testing.T) {
	for _, tc := range []struct {
		name string
		// run delivers the mails of the case and returns the Message-ID
		// of the one whose trace is checked.
		run   func(e *env) string
		steps []string
		check func(t *testing.T, e *env, tr tickets.Trace)
	}{
		{
			name: "new mail",
			run: func(e *env) string {
				e.deliver(mail{From: "Ann <ann@example.com>", MessageID: "<new@example.com>"}.bytes(),
					inbound.Source{Kind: "smtp", RemoteAddr: "192.0.2.7:40000", ConnID: "c1-4", MailFrom: "ann@example.com", RcptTo: []string{support}})
				return "new@example.com"
			},
			steps: []string{"received", "parsed", "classified", "threaded", "stored", "events", "mails"},
			check: func(t *testing.T, e *env, tr tickets.Trace) {
				rec := step(t, tr, "received")
				if rec.Field("cid") != "c1-4" || rec.Field("remote_addr") != "192.0.2.7:40000" || rec.Field("mail_from") != "ann@example.com" ||
					rec.Field("rcpt_to") != support || tr.Source != "smtp" {
					t.Errorf("received %+v", rec)
				}
				if p := step(t, tr, "parsed"); p.Field("subject") != "Printer on fire" || p.Field("from") != "Ann <ann@example.com>" || p.Field("problems") != "none" {
					t.Errorf("parsed %+v", p)
				}
				if c := step(t, tr, "classified"); c.Field("kind") != "none" {
					t.Errorf("classified %+v", c)
				}
				th := step(t, tr, "threaded")
				if th.Field("rule") != "new" || th.Field("ticket") != fmt.Sprintf("#%d", *tr.TicketID) || !strings.HasPrefix(th.Summary, "no ticket matched") {
					t.Errorf("threaded %+v", th)
				}
				msgs, err := e.st.Messages(context.Background(), *tr.TicketID)
				if err != nil || len(msgs) != 1 {
					t.Fatalf("messages %v, %v", msgs, err)
				}
				st := step(t, tr, "stored")
				if st.Field("message") != fmt.Sprintf("#%d", msgs[0].ID) || st.Field("raw_message") != fmt.Sprintf("#%d", tr.RawMessageID) ||
					*msgs[0].RawMessageID != tr.RawMessageID || st.Field("kind") != "opening" {
					t.Errorf("stored %+v", st)
				}
				if diff := cmp.Diff(e.outboxEvents(*tr.TicketID), step(t, tr, "events").Events); diff != "" {
					t.Errorf("events: the trace names every event the mail caused (-outbox +trace):\n%s", diff)
				}
				if m := step(t, tr, "mails"); len(m.Mails) != 0 {
					t.Errorf("mails %+v", m)
				}
			},
		},
		{
			name: "reply by In-Reply-To",
			run: func(e *env) string {
				open := e.deliver(mail{From: "ann@example.com", MessageID: "<open@example.com>"}.bytes())
				e.deliver(mail{From: "ann@example.com", MessageID: "<again@example.com>", InReplyTo: "<open@example.com>",
					Subject: "Re: Printer on fire", Body: "It is still burning.\n\n> the printer on floor 3 is on fire.\n"}.bytes(),
					inbound.Source{Kind: "imap", Mailbox: "imap://support@mail.example/INBOX", UID: 42})
				if e.traceOf("again@example.com").TicketID == nil || *e.traceOf("again@example.com").TicketID != open.TicketID {
					e.t.Error("the reply's trace is not on the ticket")
				}
				return "again@example.com"
			},
			steps: []string{"received", "parsed", "classified", "threaded", "stored", "events", "mails"},
			check: func(t *testing.T, e *env, tr tickets.Trace) {
				if rec := step(t, tr, "received"); rec.Field("mailbox") != "imap://support@mail.example/INBOX" || rec.Field("uid") != "42" {
					t.Errorf("received %+v", rec)
				}
				th := step(t, tr, "threaded")
				if th.Field("rule") != "in-reply-to" || !strings.Contains(th.Field("matched"), "<open@example.com>") ||
					th.Summary != fmt.Sprintf("to ticket #%d by In-Reply-To", *tr.TicketID) {
					t.Errorf("threaded %+v", th)
				}
				var names []string
				for _, ev := range step(t, tr, "events").Events {
					names = append(names, ev.Name)
				}
				if diff := cmp.Diff([]string{"ticket.replied"}, names); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "duplicate",
			run: func(e *env) string {
				raw := mail{From: "ann@example.com", MessageID: "<dup@example.com>"}.bytes()
				e.deliver(raw)
				if r := e.deliver(raw, inbound.Source{Kind: "imap", Mailbox: "imap://u@h/INBOX", UID: 9}); !r.Duplicate {
					e.t.Fatalf("second delivery %+v", r)
				}
				if r := e.deliver(append([]byte("Received: from relay2.example.com\r\n"), raw...)); !r.Duplicate {
					e.t.Fatalf("resend %+v", r)
				}
				return "dup@example.com"
			},
			steps: []string{"received", "parsed", "classified", "threaded", "stored", "events", "mails", "duplicate", "duplicate"},
			check: func(t *testing.T, e *env, tr tickets.Trace) {
				var dups []tickets.TraceStep
				for _, s := range tr.Steps {
					if s.Step == "duplicate" {
						dups = append(dups, s)
					}
				}
				if dups[0].Field("why") != "the same bytes as before" || dups[0].Field("mailbox") != "imap://u@h/INBOX" {
					t.Errorf("first duplicate %+v", dups[0])
				}
				if !strings.HasPrefix(dups[1].Field("why"), "the same Message-ID from the same sender") {
					t.Errorf("second duplicate %+v", dups[1])
				}
				for _, d := range dups {
					if !strings.HasPrefix(d.Field("duplicate_of"), "message #") || !strings.HasSuffix(d.Summary, "nothing stored") {
						t.Errorf("duplicate %+v", d)
					}
				}
				if n := e.count(`SELECT count(*) FROM mail_traces`); n != 1 {
					t.Errorf("%d traces: a duplicate appends to the first", n)
				}
			},
		},
		{
			name: "quarantined bounce",
			run: func(e *env) string {
				raw := []byte(fmt.Sprintf(dsn, "Message-ID: <bounce-1@mx.example.net>\r\n", "Message-ID: <elsewhere@example.org>\r\n"))
				r, err := e.in.Deliver(context.Background(), raw, inbound.Source{Kind: "smtp", MailFrom: "", RcptTo: []string{support}})
				if err != nil || !r.Quarantined {
					e.t.Fatalf("bounce: %+v, %v", r, err)
				}
				return "bounce-1@mx.example.net"
			},
			steps: []string{"received", "parsed", "classified", "threaded", "stored", "events", "mails"},
			check: func(t *testing.T, e *env, tr tickets.Trace) {
				if tr.TicketID != nil {
					t.Errorf("quarantined mail on ticket %d", *tr.TicketID)
				}
				if rec := step(t, tr, "received"); !strings.HasPrefix(rec.Field("mail_from"), "<>") {
					t.Errorf("received %+v", rec)
				}
				c := step(t, tr, "classified")
				if c.Field("kind") != "bounce" || c.Field("reported_recipients") != "gone@example.net" || !strings.HasPrefix(c.Field("marked_bouncing"), "none") {
					t.Errorf("classified %+v", c)
				}
				th := step(t, tr, "threaded")
				if th.Field("rule") != "quarantine" || !strings.Contains(th.Field("reason"), "matches no ticket") ||
					!strings.Contains(th.Field("report_message_ids"), "none of the") {
					t.Errorf("threaded %+v", th)
				}
				var qid int64
				if err := e.pool.QueryRow(context.Background(), `SELECT id FROM quarantine`).Scan(&qid); err != nil {
					t.Fatal(err)
				}
				if st := step(t, tr, "stored"); st.Field("quarantine") != fmt.Sprintf("#%d", qid) {
					t.Errorf("stored %+v", st)
				}
				if ev := step(t, tr, "events"); ev.Summary != "none" {
					t.Errorf("events %+v", ev)
				}
			},
		},
		{
			name: "command mail",
			run: func(e *env) string {
				mod := e.user("mod@staff.example", tickets.RoleModerator)
				open := e.deliver(mail{From: "ann@example.com", MessageID: "<open@example.com>"}.bytes())
				to := e.replyAddress(open.TicketID, mod.ID, time.Now().Add(time.Hour))
				e.deliver(mail{From: "Mod <mod@staff.example>", To: to, MessageID: "<cmd@staff.example>", InReplyTo: "<open@example.com>",
					Body: "status: done\npriority: urgent\nassign: nobody@nowhere.example\n\nFixed: the toner was empty."}.bytes())
				return "cmd@staff.example"
			},
			steps: []string{"received", "parsed", "classified", "threaded", "commands", "stored", "events", "mails"},
			check: func(t *testing.T, e *env, tr tickets.Trace) {
				th := step(t, tr, "threaded")
				if th.Field("rule") != "reply-address" || !strings.HasPrefix(th.Field("reply_address"), "support+") ||
					!strings.HasPrefix(th.Field("token"), "made for user #") {
					t.Errorf("threaded %+v", th)
				}
				c := step(t, tr, "commands")
				want := []tickets.TraceField{
					{Key: "authorised", Value: "mod@staff.example: the signed reply address was made for them and the From is theirs"},
					{Key: "command", Value: `"status: done" applied: status To-Do → Completed`},
					{Key: "command", Value: `"priority: urgent" applied: priority medium → high`},
					{Key: "command", Value: `"assign: nobody@nowhere.example" refused: unknown value: nobody at ticketd has the address "nobody@nowhere.example"`},
					{Key: "receipt_to", Value: "mod@staff.example"},
				}
				got := c.Fields
				if diff := cmp.Diff(want, got); diff != "" || c.Summary != "2 applied, 1 refused" {
					t.Errorf("commands %q (-want +got):\n%s", c.Summary, diff)
				}
				var names []string
				for _, ev := range step(t, tr, "events").Events {
					names = append(names, ev.Name)
				}
				if diff := cmp.Diff([]string{"ticket.status_changed", "ticket.completed"}, names); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
				rows, err := e.pool.Query(context.Background(), `SELECT id FROM mail_outbox ORDER BY id`)
				if err != nil {
					t.Fatal(err)
				}
				var ids []int64
				for rows.Next() {
					var id int64
					rows.Scan(&id)
					ids = append(ids, id)
				}
				rows.Close()
				if m := step(t, tr, "mails"); len(ids) != 2 || !cmp.Equal(ids, m.Mails) {
					t.Errorf("mails %+v, outbox %v: the staff reply and the receipt", m, ids)
				}
				if st := step(t, tr, "stored"); !strings.Contains(st.Summary, "sent on to the requester") {
					t.Errorf("stored %+v", st)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := tc.run(e)
			tr := e.traceOf(id)
			if diff := cmp.Diff(tc.steps, stepNames(tr)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			tc.check(t, e, tr)
		})
	}
}

// TestTraceIsPartOfTheDelivery: a delivery that fails leaves no trace, like
// it leaves nothing else.
func TestTraceIsPartOfTheDelivery(t *testing.T) {
	e := newEnv(t)
	mod := e.user("mod@staff.example", tickets.RoleModerator)
	open := e.deliver(mail{From: "ann@example.com", MessageID: "<open@example.com>"}.bytes())
	e.notifier.failStaffReply.Store(true)
	to := e.replyAddress(open.TicketID, mod.ID, time.Now().Add(time.Hour))
	raw := mail{From: "mod@staff.example", To: to, MessageID: "<fails@staff.example>", Body: "Fixed."}.bytes()
	if _, err := e.in.Deliver(context.Background(), raw, inbound.Source{Kind: "smtp", RcptTo: []string{to}}); err == nil {
		t.Fatal("delivery succeeded")
	}
	if n := e.count(`SELECT count(*) FROM mail_traces`); n != 1 {
		t.Errorf("%d traces after a failed delivery, want only the opening mail's", n)
	}
}

// TestTraceBounded: a mail delivered again and again does not grow its
// trace without end, and long values are cut.
func TestTraceBounded(t *testing.T) {
	e := newEnv(t)
	raw := mail{From: "ann@example.com", MessageID: "<often@example.com>", Subject: strings.Repeat("very long subject ", 100)}.bytes()
	for range tickets.MaxTraceSteps + 5 {
		e.deliver(raw)
	}
	tr := e.traceOf("often@example.com")
	if len(tr.Steps) > tickets.MaxTraceSteps || tr.DroppedSteps == 0 {
		t.Errorf("%d steps, %d dropped", len(tr.Steps), tr.DroppedSteps)
	}
	if n := len([]rune(step(t, tr, "parsed").Field("subject"))); n > 300 {
		t.Errorf("subject of %d characters kept in the trace", n)
	}
	if tr.Steps[len(tr.Steps)-1].Step != "duplicate" {
		t.Errorf("last step %s", tr.Steps[len(tr.Steps)-1].Step)
	}
}

var (
	stampRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	idRE    = regexp.MustCompile(`(#|ticketd-|/)\d+`)
	hexRE   = regexp.MustCompile(`support\+[A-Za-z0-9_.=-]+@`)
)

// normalise replaces what changes from run to run: times, row ids, the
// tokens of signed reply addresses.
func normalise(s string) string {
	s = stampRE.ReplaceAllString(s, "<time>")
	s = idRE.ReplaceAllString(s, "${1}N")
	return hexRE.ReplaceAllString(s, "support+<token>@")
}

// TestTraceCommandOutput is what `ticketd trace` prints for a mail that
// opened a ticket (with the workflows' mails for its events, played here
// through the real Notifier with the workflows' dedupe keys) and for a
// moderator's command mail; go test -run TestTraceCommandOutput -update
// rewrites testdata/trace.golden.
func TestTraceCommandOutput(t *testing.T) {
	e, notifier := newEnvWithNotifier(t)
	ctx := context.Background()
	mod := e.user("mod@staff.example", tickets.RoleModerator)
	open := e.deliver(mail{From: "Ann Example <ann@example.com>", MessageID: "<golden-open@example.com>",
		Headers: []string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="b"`},
		Body:    "--b\nContent-Type: text/plain\n\nThe printer on floor 3 is on fire.\n--b\nContent-Type: text/plain; name=log.txt\nContent-Disposition: attachment; filename=log.txt\n\nsmoke\n--b--\n"}.bytes(),
		inbound.Source{Kind: "smtp", RemoteAddr: "192.0.2.7:40000", ConnID: "c1-1", MailFrom: "ann@example.com", RcptTo: []string{support}})
	tid := open.TicketID

	// What the workflows do for ticket.created: a decision, the triage,
	// and the acknowledgement and assignment under triage's keys.
	created := e.outboxEvents(tid)[0]
	if err := e.st.InTx(ctx, func(st *tickets.Store) error {
		if err := st.MarkEventsSent(ctx, []int64{created.ID}, 0); err != nil {
			return err
		}
		if _, err := st.InsertAIDecision(ctx, tickets.AIDecision{TicketID: tid, Provider: "rules", InputHash: []byte{1},
			Output: []byte(`{"priority":"high","skills":["printers"],"category":"hardware"}`), LatencyMS: 3}); err != nil {
			return err
		}
		if err := st.ApplyTriage(ctx, tid, tickets.Triage{Priority: tickets.PriorityHigh, Skills: []string{"printers"},
			AssigneeID: &mod.ID, AssignmentReason: "the only moderator"}); err != nil {
			return err
		}
		key := fmt.Sprintf("ticket.created/%d/", tid)
		if err := notifier.Acknowledgement(ctx, st, key+"acknowledgement", tid); err != nil {
			return err
		}
		return notifier.Assignment(ctx, st, key+"assignment", tid, mod.ID)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE mail_outbox SET status = 'sent', sent_at = now(), attempts = 1 WHERE kind = 'acknowledgement'`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE mail_outbox SET attempts = 2, last_error = '451 4.3.0 try again later' WHERE kind = 'assignment'`); err != nil {
		t.Fatal(err)
	}

	// The moderator closes it by mail; the completion workflow mails
	// the requester under the event's id.
	// A fixed expiry keeps the token, and with it the mail's bytes, the
	// same from run to run.
	to := e.replyAddress(tid, mod.ID, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	e.deliver(mail{From: "Mod <mod@staff.example>", To: to, MessageID: "<golden-cmd@staff.example>", InReplyTo: "<golden-open@example.com>",
		Body: "status: done\nassign: nobody@nowhere.example\n\nFixed: the toner was empty."}.bytes(),
		inbound.Source{Kind: "smtp", RemoteAddr: "192.0.2.8:40001", ConnID: "c1-2", MailFrom: "mod@staff.example", RcptTo: []string{to}})
	for _, ev := range e.outboxEvents(tid) {
		if ev.Name == tickets.EventCompleted {
			if err := e.st.InTx(ctx, func(st *tickets.Store) error {
				return notifier.Completion(ctx, st, fmt.Sprintf("ticketd-%d/completion", ev.ID), tid)
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The opening mail again, by IMAP.
	e.deliver(mail{From: "Ann Example <ann@example.com>", MessageID: "<golden-open@example.com>"}.bytes(),
		inbound.Source{Kind: "imap", Mailbox: "imap://support@mail.example/INBOX", UID: 7})

	var out bytes.Buffer
	for _, id := range []string{"<golden-open@example.com>", "golden-cmd@staff.example"} {
		if err := inbound.PrintTrace(ctx, e.st, &out, id); err != nil {
			t.Fatal(err)
		}
		out.WriteString("\n")
	}
	// A Message-ID ticketd sent.
	ack, err := e.st.TicketMailStatuses(ctx, tid)
	if err != nil || len(ack) == 0 {
		t.Fatalf("mails %v, %v", ack, err)
	}
	if err := inbound.PrintTrace(ctx, e.st, &out, ack[0].MessageID); err != nil {
		t.Fatal(err)
	}
	if err := inbound.PrintTrace(ctx, e.st, &out, "<nobody-sent-this@example.com>"); !errors.Is(err, inbound.ErrNoTrace) {
		t.Errorf("unknown Message-ID: %v", err)
	}

	got := normalise(out.String())
	// The sent mail's own Message-ID is made up at random.
	got = regexp.MustCompile(`Mail <[^>]+> was sent`).ReplaceAllString(got, "Mail <id> was sent")
	golden := filepath.Join("testdata", "trace.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("ticketd trace output (-want +got):\n%s", diff)
	}
}
