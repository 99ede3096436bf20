package inbound_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/inbound"
	"ticketd/testlog"
	"ticketd/tickets"
)

// stored is everything re-processing may change, and what it must not.
type stored struct {
	Messages    []string // id, subject, from_name, text, html, reply, signature, auto_kind
	Tickets     []string // id, description
	Attachments []string // message, filename, type, size, sha256, data kept
	Events      int
	Mails       int
	TicketRows  int
	Audit       int
}

func (e *env) stored() stored {
	e.t.Helper()
	ctx := context.Background()
	var s stored
	lines := func(query string) []string {
		rows, err := e.pool.Query(ctx, query)
		if err != nil {
			e.t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%q", vals))
		}
		return out
	}
	s.Messages = lines(`SELECT id, subject, from_name, text_body, html_body, reply_text, signature, auto_kind, internal, kind
		FROM messages ORDER BY id`)
	s.Tickets = lines(`SELECT id, description FROM tickets ORDER BY id`)
	s.Attachments = lines(`SELECT message_id, filename, content_type, size, encode(sha256, 'hex'), data IS NOT NULL
		FROM attachments ORDER BY message_id, filename`)
	s.Events = e.count(`SELECT count(*) FROM event_outbox`)
	s.Mails = e.count(`SELECT count(*) FROM mail_outbox`)
	s.TicketRows = e.count(`SELECT count(*) FROM tickets`)
	s.Audit = e.count(`SELECT count(*) FROM audit_log`)
	return s
}

func (e *env) exec(query string, args ...any) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

// reprocessEnv holds mails of every kind intake stores: a ticket opened
// with an attachment, the requester's reply, a moderator's reply with a
// command, an internal note, an auto-reply.
type reprocessEnv struct {
	*env
	open, reply, staff, note, auto inbound.Result
}

func newReprocessEnv(t *testing.T) *reprocessEnv {
	e := &reprocessEnv{env: newEnv(t)}
	mod := e.user("mod@staff.example", tickets.RoleModerator)
	e.open = e.deliver(mail{From: "Ann <ann@example.com>", MessageID: "<open@example.com>",
		Headers: []string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="b"`},
		Body: "--b\nContent-Type: text/plain\n\nThe printer is on fire.\n\n-- \nAnn\n" +
			"--b\nContent-Type: text/plain; name=log.txt\nContent-Disposition: attachment; filename=log.txt\n\nsmoke\n--b--\n"}.bytes())
	e.reply = e.deliver(mail{From: "Ann <ann@example.com>", MessageID: "<reply@example.com>", InReplyTo: "<open@example.com>",
		Body: "Still burning.\n\nOn Mon, 2 Mar 2026 at 10:00, Support wrote:\n> What is on fire?\n"}.bytes())
	to := e.replyAddress(e.open.TicketID, mod.ID, time.Now().Add(time.Hour))
	e.staff = e.deliver(mail{From: "Mod <mod@staff.example>", To: to, MessageID: "<staff@staff.example>",
		Body: "priority: high\n\nOn my way with an extinguisher.\n\n> Still burning.\n"}.bytes())
	e.note = e.deliver(mail{From: "Mod <mod@staff.example>", To: to, MessageID: "<note@staff.example>",
		Body: "#note\nTold facilities.\n"}.bytes())
	e.auto = e.deliver(mail{From: "ann@example.com", MessageID: "<ooo@example.com>", InReplyTo: "<open@example.com>",
		Subject: "Out of office", Headers: []string{"Auto-Submitted: auto-replied"}, Body: "I am away.\n"}.bytes())
	for _, r := range []inbound.Result{e.open, e.reply, e.staff, e.note, e.auto} {
		if r.MessageID == 0 || r.Duplicate || r.Quarantined {
			t.Fatalf("setup delivery %+v", r)
		}
	}
	return e
}

func (e *reprocessEnv) run(rg inbound.ReprocessRange) inbound.ReprocessReport {
	e.t.Helper()
	rp := inbound.NewReprocessor(inbound.ReprocessOptions{Pool: e.pool, Logger: testlog.New(e.t), BatchSize: 2})
	rep, err := rp.Run(context.Background(), rg)
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

var allTime = inbound.ReprocessRange{Since: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}

// TestReprocessRestores: what an older parser stored is corrected to what
// the current one reads, with nothing else happening; a second run and a
// run over unchanged mail change nothing.
func TestReprocessRestores(t *testing.T) {
	e := newReprocessEnv(t)
	want := e.stored()
	if len(want.Attachments) != 1 {
		t.Fatalf("attachments %v", want.Attachments)
	}

	// An older parser: quotes left in replies, no signature found, the
	// attachment missed, the out-of-office taken for a person's mail.
	e.exec(`UPDATE messages SET reply_text = reply_text || E'\n\n> What is on fire?' WHERE id = $1`, e.reply.MessageID)
	e.exec(`UPDATE messages SET reply_text = reply_text || E'\n\n> Still burning.' WHERE id = $1`, e.staff.MessageID)
	e.exec(`UPDATE messages SET reply_text = reply_text || E'\n\n-- \nAnn', signature = '' WHERE id = $1`, e.open.MessageID)
	e.exec(`UPDATE tickets SET description = description || E'\n\n-- \nAnn' WHERE id = $1`, e.open.TicketID)
	e.exec(`DELETE FROM attachments`)
	e.exec(`UPDATE messages SET auto_kind = 'none', from_name = 'someone' WHERE id = $1`, e.auto.MessageID)
	old := e.stored()

	dry := e.run(inbound.ReprocessRange{Since: allTime.Since, DryRun: true})
	if diff := cmp.Diff(old, e.stored()); diff != "" {
		t.Errorf("a dry run changed the database (-before +after):\n%s", diff)
	}
	wantFields := map[string]int{"reply_text": 3, "signature": 1, "description": 1, "attachments": 1, "auto_kind": 1, "from_name": 1}
	check := func(name string, rep inbound.ReprocessReport) {
		t.Helper()
		got := struct {
			Examined, Changed, Unchanged, Skipped, Failed int
			ByField                                       map[string]int
		}{rep.Examined, rep.Changed, rep.Unchanged, rep.Skipped, rep.Failed, rep.ByField}
		want := got
		want.Examined, want.Changed, want.Unchanged, want.Skipped, want.Failed, want.ByField = 5, 4, 1, 0, 0, wantFields
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s report (-want +got):\n%s", name, diff)
		}
	}
	check("dry run", dry)
	var out bytes.Buffer
	if err := inbound.WriteReprocessReport(&out, dry); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Dry run: nothing was written.", "examined 5, would change 4, unchanged 1, skipped 0, failed 0",
		fmt.Sprintf("message #%d of ticket #%d:", e.reply.MessageID, e.reply.TicketID), `reply_text: "Still burning. > What is on fire?" → "Still burning."`} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("dry run output lacks %q:\n%s", s, out.String())
		}
	}

	check("run", e.run(allTime))
	got := e.stored()
	// The auto-reply's sender name is what the mail says: it had none.
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("not restored (-as delivered +after reprocess):\n%s", diff)
	}

	// Each changed mail's trace says what changed; unchanged ones get no step.
	for _, tc := range []struct {
		id     string
		fields string
	}{
		{"reply@example.com", "reply_text"},
		{"staff@staff.example", "reply_text"},
		{"open@example.com", "reply_text,signature,description,attachments"},
		{"ooo@example.com", "from_name,auto_kind"},
		{"note@staff.example", ""},
	} {
		tr := e.traceOf(tc.id)
		var keys []string
		for _, s := range tr.Steps {
			if s.Step == inbound.StepReprocessed {
				for _, f := range s.Fields {
					keys = append(keys, f.Key)
				}
			}
		}
		if strings.Join(keys, ",") != tc.fields {
			t.Errorf("%s: reprocessed step fields %v, want %s", tc.id, keys, tc.fields)
		}
	}

	again := e.run(allTime)
	if again.Changed != 0 || again.Unchanged != 5 || again.Failed != 0 {
		t.Errorf("second run %+v: it should change nothing", again)
	}
	if diff := cmp.Diff(want, e.stored()); diff != "" {
		t.Errorf("second run changed the database:\n%s", diff)
	}
}

// TestReprocessLeavesEditedDescription: a description someone changed is
// theirs; the message is corrected all the same.
func TestReprocessLeavesEditedDescription(t *testing.T) {
	e := newReprocessEnv(t)
	want := e.message(e.open.MessageID).ReplyText
	e.exec(`UPDATE messages SET reply_text = 'garbled' WHERE id = $1`, e.open.MessageID)
	e.exec(`UPDATE tickets SET description = 'written by hand' WHERE id = $1`, e.open.TicketID)
	rep := e.run(allTime)
	if rep.Changed != 1 || rep.ByField["description"] != 0 {
		t.Errorf("report %+v", rep)
	}
	if got := e.message(e.open.MessageID).ReplyText; got != want {
		t.Errorf("reply text %q, want %q", got, want)
	}
	if d := e.ticket(e.open.TicketID).Description; d != "written by hand" {
		t.Errorf("description %q", d)
	}
}

// TestReprocessWindow selects mail by when its raw bytes arrived.
func TestReprocessWindow(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name     string
		rg       inbound.ReprocessRange
		examined int
	}{
		{name: "everything", rg: inbound.ReprocessRange{Since: day(1)}, examined: 5},
		{name: "since is inclusive", rg: inbound.ReprocessRange{Since: day(3)}, examined: 3},
		{name: "until is exclusive", rg: inbound.ReprocessRange{Since: day(1), Until: day(3)}, examined: 2},
		{name: "one day", rg: inbound.ReprocessRange{Since: day(3), Until: day(4)}, examined: 3},
		{name: "nothing received since", rg: inbound.ReprocessRange{Since: day(10)}, examined: 0},
		{name: "resumed after a message", rg: inbound.ReprocessRange{Since: day(1), AfterID: 2}, examined: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newReprocessEnv(t)
			// The opening mail and the reply came on the 2nd, the rest on the 3rd.
			e.exec(`UPDATE raw_messages SET received_at = $1`, day(3))
			e.exec(`UPDATE raw_messages SET received_at = $1 WHERE id IN (SELECT raw_message_id FROM messages WHERE id IN ($2, $3))`,
				day(2), e.open.MessageID, e.reply.MessageID)
			e.exec(`UPDATE messages SET reply_text = 'old' WHERE id IN ($1, $2)`, e.open.MessageID, e.auto.MessageID)
			rep := e.run(tc.rg)
			if rep.Examined != tc.examined || rep.Failed != 0 {
				t.Errorf("report %+v, want %d examined", rep, tc.examined)
			}
		})
	}
}

// TestReprocessQueuesNothing: re-processing a mail whose commands,
// threading or class would now read differently still runs nothing again.
func TestReprocessQueuesNothing(t *testing.T) {
	e := newReprocessEnv(t)
	before := e.stored()
	// As if an older parser had not found the moderator's command and
	// had taken the reply for a person's ordinary mail.
	e.exec(`UPDATE messages SET reply_text = 'priority: high' WHERE id = $1`, e.staff.MessageID)
	rep := e.run(allTime)
	if rep.Changed != 1 {
		t.Fatalf("report %+v", rep)
	}
	after := e.stored()
	if after.Events != before.Events || after.Mails != before.Mails || after.TicketRows != before.TicketRows || after.Audit != before.Audit {
		t.Errorf("re-processing did something: before %+v\nafter %+v", before, after)
	}
	if tk := e.ticket(e.open.TicketID); tk.Priority != tickets.PriorityHigh {
		t.Errorf("priority %s", tk.Priority)
	}
}

// TestReprocessCountsFailures: a message whose mail cannot be read back is
// counted as failed and the run goes on.
func TestReprocessCountsFailures(t *testing.T) {
	e := newReprocessEnv(t)
	// A raw message its sha256 no longer matches is still parsed; what
	// fails is a row that breaks a constraint when written back: make the
	// reply's stored subject differ so it is written, and forbid writing.
	e.exec(`UPDATE messages SET subject = 'x' WHERE id = $1`, e.reply.MessageID)
	e.exec(`ALTER TABLE messages ADD CONSTRAINT no_writes CHECK (subject <> 'Printer on fire' OR id <> ` +
		fmt.Sprint(e.reply.MessageID) + `) NOT VALID`)
	rep := e.run(allTime)
	if rep.Failed != 1 || rep.Examined != 5 || len(rep.Failures) != 1 || rep.Failures[0].MessageID != e.reply.MessageID {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(rep.Failures[0].Err, "no_writes") {
		t.Errorf("failure %q", rep.Failures[0].Err)
	}
}

// TestReprocessResumesAtTheInterruptedMessage: a run stopped while it
// re-processes a message (whose transaction rolls back) reports the one
// before as the last examined, so resuming with --after-id takes it again.
func TestReprocessResumesAtTheInterruptedMessage(t *testing.T) {
	e := newReprocessEnv(t)
	e.exec(`UPDATE messages SET subject = 'x' WHERE id = $1`, e.reply.MessageID)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rp := inbound.NewReprocessor(inbound.ReprocessOptions{Pool: e.pool, Logger: testlog.New(t),
		Now: func() time.Time { cancel(); return time.Now() }}) // Ctrl-C while message is re-processed
	rep, err := rp.Run(ctx, allTime)
	if err == nil {
		t.Fatal("run not interrupted")
	}
	// Resume as told.
	rp = inbound.NewReprocessor(inbound.ReprocessOptions{Pool: e.pool, Logger: testlog.New(t)})
	if _, err := rp.Run(context.Background(), inbound.ReprocessRange{Since: allTime.Since, AfterID: rep.LastID}); err != nil {
		t.Fatal(err)
	}
	if s := e.message(e.reply.MessageID).Subject; s == "x" {
		t.Errorf("message #%d was never re-processed: resuming with --after-id %d skipped it", e.reply.MessageID, rep.LastID)
	}
}
