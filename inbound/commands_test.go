package inbound_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/inbound"
	"ticketd/tickets"
)

// staffEnv is a ticket opened by a requester and assigned to a moderator,
// with another moderator and an admin around.
type staffEnv struct {
	*env
	ticket              int64
	opening             string // the opening mail's Message-ID
	req, mod, mod2, adm tickets.User
}

func newStaffEnv(t *testing.T) *staffEnv {
	e := newEnv(t)
	ctx := context.Background()
	s := &staffEnv{env: e, opening: "<open@example.com>"}
	s.mod = e.user("mod@staff.example", tickets.RoleModerator)
	s.mod2 = e.user("mod2@staff.example", tickets.RoleModerator)
	s.adm = e.user("admin@staff.example", tickets.RoleAdmin)
	s.ticket = e.deliver(mail{From: "Ann <ann@example.com>", MessageID: s.opening}.bytes()).TicketID
	var err error
	if s.req, err = e.st.UserByEmail(ctx, "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.InTx(ctx, func(st *tickets.Store) error {
		_, err := st.Assign(ctx, s.ticket, s.mod.ID, "test", tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot is what a command could change.
type snapshot struct {
	Status, Priority, Notes string
	Assignee                *int64
	Skills                  []string
	Completed, Audit        int
}

func (s *staffEnv) snapshot() snapshot {
	tk := s.env.ticket(s.ticket)
	return snapshot{
		Status: string(tk.Status), Priority: string(tk.Priority), Notes: tk.HelpfulNotes, Assignee: tk.AssigneeID, Skills: tk.Skills,
		Completed: s.count(`SELECT count(*) FROM event_outbox WHERE name = 'ticket.completed'`),
		Audit:     s.count(`SELECT count(*) FROM audit_log WHERE channel = 'mail' AND action <> 'create'`),
	}
}

func TestCommandSecurity(t *testing.T) {
	hour := time.Now().Add(time.Hour)
	// p=none: a failure under p=reject or quarantine reaches no ticket.
	const dmarcFail = "Authentication-Results: mx.ticketd.test; dkim=pass header.d=staff.example; dmarc=fail (p=none) header.from=staff.example"
	for _, tc := range []struct {
		name string
		// from and to build the mail; token(s) picks the reply address.
		from    func(s *staffEnv) string
		to      func(s *staffEnv) string
		headers []string
		// wantTold is who gets the receipt ("" nobody), wantReason a
		// part of the refusal; wantHeld a part of why the mail is held
		// ("" when it is a requester's reply).
		wantTold, wantReason, wantHeld string
		// imap: the mail came from a mailbox behind a trusted server.
		imap bool
	}{
		{name: "forged From on the moderator's reply address",
			from:     func(s *staffEnv) string { return "Mallory <mallory@evil.example>" },
			to:       func(s *staffEnv) string { return s.replyAddress(s.ticket, s.mod.ID, hour) },
			wantTold: "mod@staff.example", wantReason: "not a participant: Mallory <mallory@evil.example>", wantHeld: "not a participant"},
		{name: "no readable From, the moderator's address in Sender",
			from:     func(s *staffEnv) string { return "mallory at evil" },
			to:       func(s *staffEnv) string { return s.replyAddress(s.ticket, s.mod.ID, hour) },
			headers:  []string{"Sender: mod@staff.example"},
			wantTold: "mod@staff.example", wantReason: "no readable From", wantHeld: "not a participant"},
		{name: "the moderator's From without a reply address",
			from:     func(s *staffEnv) string { return "mod@staff.example" },
			to:       func(s *staffEnv) string { return support },
			wantTold: "mod@staff.example", wantReason: "not sent to your signed reply address", wantHeld: "commands refused"},
		{name: "another moderator's reply address",
			from:     func(s *staffEnv) string { return "mod@staff.example" },
			to:       func(s *staffEnv) string { return s.replyAddress(s.ticket, s.mod2.ID, hour) },
			wantTold: "mod2@staff.example", wantReason: "token for another person", wantHeld: "commands refused"},
		{name: "expired reply address",
			from:     func(s *staffEnv) string { return "mod@staff.example" },
			to:       func(s *staffEnv) string { return s.replyAddress(s.ticket, s.mod.ID, time.Now().Add(-time.Minute)) },
			wantTold: "mod@staff.example", wantReason: "token expired", wantHeld: "commands refused"},
		{name: "tampered reply address",
			from:     func(s *staffEnv) string { return "mod@staff.example" },
			to:       func(s *staffEnv) string { return tamper(s.replyAddress(s.ticket, s.mod.ID, hour)) },
			wantTold: "mod@staff.example", wantReason: "not valid", wantHeld: "commands refused"},
		{name: "DMARC failure reported by a trusted server",
			from:    func(s *staffEnv) string { return "mod@staff.example" },
			to:      func(s *staffEnv) string { return s.replyAddress(s.ticket, s.mod.ID, hour) },
			headers: []string{dmarcFail}, imap: true,
			wantTold: "mod@staff.example", wantReason: "DMARC failure", wantHeld: "commands refused"},
		{name: "DKIM failure for the From domain reported by a trusted server",
			from:    func(s *staffEnv) string { return "mod@staff.example" },
			to:      func(s *staffEnv) string { return s.replyAddress(s.ticket, s.mod.ID, hour) },
			headers: []string{"Authentication-Results: mx.ticketd.test; dkim=fail reason=\"bad signature\" header.d=staff.example"}, imap: true,
			wantTold: "mod@staff.example", wantReason: "dkim=fail", wantHeld: "commands refused"},
		{name: "the moderator's From on the requester's reply address",
			from:     func(s *staffEnv) string { return "mod@staff.example" },
			to:       func(s *staffEnv) string { return s.replyAddress(s.ticket, s.req.ID, hour) },
			wantTold: "mod@staff.example", wantReason: "token for another person", wantHeld: "commands refused"},
		{name: "the requester's own command lines are text",
			from:     func(s *staffEnv) string { return "ann@example.com" },
			to:       func(s *staffEnv) string { return s.replyAddress(s.ticket, s.req.ID, hour) },
			wantTold: ""},
		{name: "a stranger on the requester's reply address",
			from:     func(s *staffEnv) string { return "mallory@evil.example" },
			to:       func(s *staffEnv) string { return s.replyAddress(s.ticket, s.req.ID, hour) },
			wantTold: "", wantHeld: "not a participant: <mallory@evil.example>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStaffEnv(t)
			before := s.snapshot()
			raw := mail{From: tc.from(s), To: tc.to(s), InReplyTo: s.opening, Headers: tc.headers,
				Body: "status: completed\npriority: high\n\nThis is fixed now."}.bytes()
			src := inbound.Source{Kind: "smtp", MailFrom: "someone@example.org", RcptTo: []string{tc.to(s)}}
			if tc.imap {
				src = inbound.Source{Kind: "imap", Mailbox: "support/INBOX", UID: 7}
			}
			r := s.deliver(raw, src)
			if r.TicketID != s.ticket {
				t.Fatalf("threaded to %d, want %d", r.TicketID, s.ticket)
			}
			if diff := cmp.Diff(before, s.snapshot()); diff != "" {
				t.Errorf("the refused commands changed the ticket (-before +after):\n%s", diff)
			}
			var told []string
			for to, lines := range s.receipts() {
				told = append(told, to)
				if len(lines) != 2 {
					t.Errorf("receipt to %s has %d lines, want 2", to, len(lines))
				}
				for _, l := range lines {
					if l.Applied || !strings.Contains(l.Reason, tc.wantReason) {
						t.Errorf("receipt line %+v, want refused with %q", l, tc.wantReason)
					}
				}
			}
			wantTold := []string(nil)
			if tc.wantTold != "" {
				wantTold = []string{tc.wantTold}
			}
			if diff := cmp.Diff(wantTold, told); diff != "" {
				t.Errorf("receipt recipients (-want +got):\n%s", diff)
			}
			for _, q := range s.outbox() {
				if q.Kind == "reply" {
					t.Errorf("a refused mail was sent to the requester as a staff reply: %+v", q)
				}
			}
			// The mail itself is kept, command lines and all: a
			// requester's as an ordinary reply that the assignee hears
			// about, anything else held for staff, unseen by the
			// requester and sent on to nobody.
			m := s.message(r.MessageID)
			if !strings.HasPrefix(m.ReplyText, "status: completed") || m.Kind != tickets.KindReply {
				t.Errorf("message kind %s reply %q", m.Kind, m.ReplyText)
			}
			replied := s.count(`SELECT count(*) FROM event_outbox WHERE name = 'ticket.replied'`)
			switch {
			case tc.wantHeld == "" && (m.Held != "" || m.Internal || replied != 1):
				t.Errorf("a requester's reply: held %q, internal %v, %d ticket.replied events", m.Held, m.Internal, replied)
			case tc.wantHeld != "" && (!strings.Contains(m.Held, tc.wantHeld) || !m.Internal || replied != 0):
				t.Errorf("held %q, internal %v, %d ticket.replied events; want held for %q", m.Held, m.Internal, replied, tc.wantHeld)
			}
		})
	}
}

func TestValidCommandsApply(t *testing.T) {
	s := newStaffEnv(t)
	ctx := context.Background()
	to := s.replyAddress(s.ticket, s.mod.ID, time.Now().Add(time.Hour))
	raw := mail{From: "Mod <MOD@staff.example>", To: "Ann <ann@example.com>", Cc: to, InReplyTo: s.opening,
		Headers: []string{"Authentication-Results: mx.ticketd.test; dkim=pass header.d=staff.example; dmarc=pass header.from=staff.example",
			// An untrusted server's failure is no reason to refuse.
			"Authentication-Results: evil.example; dmarc=fail header.from=staff.example"},
		Body: "#status done\npriority: HIGH\nskills: Printers, networking\nnote: check the toner first\n\nHi Ann, the printer is fixed.\n\n-- \nMod"}.bytes()
	r := s.deliver(raw)
	tk := s.env.ticket(s.ticket)
	if tk.Status != tickets.StatusCompleted || tk.Priority != tickets.PriorityHigh || tk.HelpfulNotes != "check the toner first" ||
		!cmp.Equal(tk.Skills, []string{"networking", "printers"}) || tk.CompletedAt == nil {
		t.Errorf("ticket %+v", tk)
	}
	m := s.message(r.MessageID)
	if m.ReplyText != "Hi Ann, the printer is fixed." || m.Internal || *m.AuthorID != s.mod.ID || m.ThreadRule != "reply-address" {
		t.Errorf("message %+v", m)
	}
	// The closure mail follows from ticket.completed; no ticket.replied
	// for a moderator's reply (it is sent on by StaffReply).
	var names []string
	for _, ev := range s.events() {
		names = append(names, strings.Fields(ev)[0])
	}
	want := []string{"ticket.created", "ticket.assigned", "ticket.status_changed", "ticket.completed"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	var data string
	if err := s.pool.QueryRow(ctx, `SELECT data::text FROM event_outbox WHERE name = 'ticket.completed'`).Scan(&data); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(data, fmt.Sprintf(`"actor_id": %d`, s.mod.ID)) || !strings.Contains(data, `"channel": "mail"`) {
		t.Errorf("ticket.completed data %s", data)
	}
	out := s.outbox()
	if len(out) != 2 || out[0].Kind != "reply" || out[0].Recipients[0] != "ann@example.com" || out[0].Data != "Hi Ann, the printer is fixed." {
		t.Fatalf("outbox %+v", out)
	}
	wantLines := []inbound.ReceiptLine{
		{Command: "#status done", Applied: true, Field: "status", Old: "To-Do", New: "Completed"},
		{Command: "priority: HIGH", Applied: true, Field: "priority", Old: "medium", New: "high"},
		{Command: "skills: Printers, networking", Applied: true, Field: "skills", Old: "", New: "networking, printers"},
		{Command: "note: check the toner first", Applied: true, Field: "notes", Old: "", New: "check the toner first"},
	}
	if diff := cmp.Diff(map[string][]inbound.ReceiptLine{"mod@staff.example": wantLines}, s.receipts()); diff != "" {
		t.Errorf("receipt (-want +got):\n%s", diff)
	}
	// Each change is in the audit log, by the moderator, by mail.
	if n := s.count(`SELECT count(*) FROM audit_log WHERE actor_id = $1 AND channel = 'mail'`, s.mod.ID); n != 4 {
		t.Errorf("%d audit entries by the moderator", n)
	}
}

func TestCommandsApplyOneByOne(t *testing.T) {
	s := newStaffEnv(t)
	to := s.replyAddress(s.ticket, s.mod.ID, time.Now().Add(time.Hour))
	r := s.deliver(mail{From: "mod@staff.example", To: to,
		Body: "status: sideways\npriority: low\nassign: mod2@staff.example\nassign: nobody@nowhere.example\nstatus: in-progress\n"}.bytes())
	tk := s.env.ticket(s.ticket)
	if tk.Priority != tickets.PriorityLow || *tk.AssigneeID != s.mod.ID {
		t.Errorf("ticket priority %s assignee %d", tk.Priority, *tk.AssigneeID)
	}
	got := s.receipts()["mod@staff.example"]
	type short struct {
		Applied, Changed bool
		Reason           string
	}
	var gotShort []short
	for _, l := range got {
		reason := l.Reason
		if i := strings.IndexByte(reason, ':'); i >= 0 {
			reason = reason[:i]
		}
		gotShort = append(gotShort, short{l.Applied, l.Applied && l.Old != l.New, reason})
	}
	want := []short{
		{false, false, "unknown value"},
		{true, true, ""},
		{false, false, "not allowed"},
		{false, false, "unknown value"},
		{true, true, ""},
	}
	if diff := cmp.Diff(want, gotShort); diff != "" {
		t.Errorf("receipt (-want +got):\n%s\nlines %+v", diff, got)
	}
	// Nothing but commands: nothing is sent to the requester.
	if m := s.message(r.MessageID); !m.Internal {
		t.Error("a commands-only mail is not internal")
	}
	for _, q := range s.outbox() {
		if q.Kind == "reply" {
			t.Error("a commands-only mail was sent to the requester")
		}
	}
}

// TestCommandValuesOutOfBounds: a value ticketd does not keep is refused in
// the receipt, and the other commands of the mail apply; the mail does not
// fail (an index entry of over 2,712 bytes once made every delivery of it
// fail).
func TestCommandValuesOutOfBounds(t *testing.T) {
	s := newStaffEnv(t)
	to := s.replyAddress(s.ticket, s.mod.ID, time.Now().Add(time.Hour))
	long := strings.Repeat("x", 6000)
	many := make([]string, tickets.MaxSkills+1)
	for i := range many {
		many[i] = fmt.Sprintf("skill-%d", i)
	}
	s.deliver(mail{From: "mod@staff.example", To: to,
		Body: "priority: high\nskills: printers, " + long + "\nskills: " + strings.Join(many, ",") + "\n\nOn it.\n"}.bytes())
	tk := s.env.ticket(s.ticket)
	if tk.Priority != tickets.PriorityHigh || len(tk.Skills) != 0 {
		t.Errorf("priority %s skills %v, want high and none", tk.Priority, tk.Skills)
	}
	got := s.receipts()["mod@staff.example"]
	if len(got) != 3 || !got[0].Applied || got[1].Applied || got[2].Applied ||
		!strings.Contains(got[1].Reason, "at most 64 letters") || !strings.Contains(got[2].Reason, "at most 32 skills") {
		t.Errorf("receipt %+v", got)
	}
}

func TestAssignRules(t *testing.T) {
	for _, tc := range []struct {
		name      string
		actor     string // mod, mod2 or adm
		value     string
		want      string // the assignee's address afterwards, "" for nobody
		refusedIn string
	}{
		{"admin assigns any moderator", "adm", "mod2@staff.example", "mod2@staff.example", ""},
		{"admin unassigns", "adm", "nobody", "", ""},
		{"admin cannot assign a requester", "adm", "ann@example.com", "mod@staff.example", "not an active moderator"},
		{"admin takes it", "adm", "me", "admin@staff.example", ""},
		{"another moderator cannot take it", "mod2", "me", "mod@staff.example", "assigned to someone else"},
		{"moderator cannot give it to another moderator", "mod", "mod2@staff.example", "mod@staff.example", "only to themselves"},
		{"assignee hands back to an admin", "mod", "admin@staff.example", "admin@staff.example", ""},
		{"assignee hands back to nobody", "mod", "unassigned", "", ""},
		{"another moderator cannot hand it back", "mod2", "admin@staff.example", "mod@staff.example", "assigned to someone else"},
		{"another moderator cannot unassign", "mod2", "nobody", "mod@staff.example", "assigned to someone else"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStaffEnv(t)
			actor := map[string]tickets.User{"mod": s.mod, "mod2": s.mod2, "adm": s.adm}[tc.actor]
			s.deliver(mail{From: actor.Email, To: s.replyAddress(s.ticket, actor.ID, time.Now().Add(time.Hour)),
				Body: "assign: " + tc.value + "\n"}.bytes())
			tk := s.env.ticket(s.ticket)
			got := ""
			if tk.AssigneeID != nil {
				u, _ := s.st.User(context.Background(), *tk.AssigneeID)
				got = u.Email
			}
			if got != tc.want {
				t.Errorf("assignee %q, want %q", got, tc.want)
			}
			lines := s.receipts()[actor.Email]
			if len(lines) != 1 {
				t.Fatalf("receipt %+v", lines)
			}
			if tc.refusedIn == "" && !lines[0].Applied || tc.refusedIn != "" && !strings.Contains(lines[0].Reason, tc.refusedIn) {
				t.Errorf("receipt line %+v", lines[0])
			}
		})
	}
}

func TestInternalNote(t *testing.T) {
	s := newStaffEnv(t)
	to := s.replyAddress(s.ticket, s.mod.ID, time.Now().Add(time.Hour))
	r := s.deliver(mail{From: "mod@staff.example", To: to, Body: "#note\nThe customer is on the old firmware.\n"}.bytes())
	m := s.message(r.MessageID)
	if !m.Internal || m.Kind != tickets.KindNote || m.ReplyText != "The customer is on the old firmware." {
		t.Errorf("message %+v", m)
	}
	if n := len(s.outbox()); n != 0 {
		t.Errorf("%d mails queued for an internal note", n)
	}
}

func TestStaffReplyWithoutCommands(t *testing.T) {
	s := newStaffEnv(t)
	to := s.replyAddress(s.ticket, s.mod.ID, time.Now().Add(time.Hour))
	raw := mail{From: "mod@staff.example", To: to, Body: "Please restart it and tell me.\n"}.bytes()
	r := s.deliver(raw)
	out := s.outbox()
	if len(out) != 1 || out[0].Kind != "reply" || out[0].Data != "Please restart it and tell me." {
		t.Errorf("outbox %+v", out)
	}
	if r.Rule != "reply-address" {
		t.Errorf("rule %s", r.Rule)
	}
	// Delivered again: still one reply mail.
	if again := s.deliver(raw); !again.Duplicate {
		t.Errorf("second delivery %+v", again)
	}
	if n := s.count(`SELECT count(*) FROM mail_outbox WHERE kind = 'reply'`); n != 1 {
		t.Errorf("%d reply mails", n)
	}
}
