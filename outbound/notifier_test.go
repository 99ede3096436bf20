package outbound_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ticketd/outbound"
	"ticketd/tickets"
)

func TestNotifierDedupe(t *testing.T) {
	f := newFixture(t, nil)
	ann := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	tk := f.ticket(ann, "Printer", "It jams.", "open-1@customer.example")

	// A retried workflow step, sequentially and at the same moment.
	for range 3 {
		f.tx(func(st *tickets.Store) error { return f.n.Acknowledgement(f.ctx, st, "evt-1", tk.ID) })
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.n.Completion(f.ctx, f.st, "evt-2", tk.ID)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The same key for another kind of mail, and another key: new mails.
	f.tx(func(st *tickets.Store) error { return f.n.Completion(f.ctx, st, "evt-1", tk.ID) })
	f.tx(func(st *tickets.Store) error { return f.n.Acknowledgement(f.ctx, st, "evt-3", tk.ID) })

	count := map[string]int{}
	for _, m := range f.mails(tk.ID) {
		count[m.Kind]++
	}
	if count["acknowledgement"] != 2 || count["completion"] != 2 {
		t.Errorf("queued %v, want 2 acknowledgements and 2 completions", count)
	}
	if err := f.n.Acknowledgement(f.ctx, f.st, "", tk.ID); err == nil {
		t.Error("an empty dedupe key was accepted")
	}
}

// TestNotifierInCallersTransaction: a mail is queued exactly when the
// caller's transaction commits.
func TestNotifierInCallersTransaction(t *testing.T) {
	f := newFixture(t, nil)
	ann := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	tk := f.ticket(ann, "Printer", "It jams.", "open-1@customer.example")
	err := f.st.InTx(f.ctx, func(st *tickets.Store) error {
		if err := f.n.Completion(f.ctx, st, "evt-1", tk.ID); err != nil {
			return err
		}
		return context.Canceled // the change fails after the mail was queued
	})
	if err != context.Canceled {
		t.Fatal(err)
	}
	if m := f.mails(tk.ID); len(m) != 0 {
		t.Errorf("%d mails survived a rolled-back transaction", len(m))
	}
	f.tx(func(st *tickets.Store) error { return f.n.Completion(f.ctx, st, "evt-1", tk.ID) })
	if m := f.mails(tk.ID); len(m) != 1 {
		t.Errorf("%d mails after the retry, want 1", len(m))
	}
}

func TestLoopSafety(t *testing.T) {
	f := newFixture(t, func(o *outbound.NotifierOptions) { o.AutoLimitPerHour = 3 })
	mo := f.user("mo@desk.example", "Mo", tickets.RoleModerator)
	ctx := f.ctx
	setup := func(email string, autoKind string) (tickets.User, tickets.Ticket) {
		u := f.user(email, "", tickets.RoleUser)
		tk, err := f.st.CreateTicket(ctx, tickets.NewTicket{Subject: "Hello", RequesterID: u.ID, AutoKind: autoKind})
		if err != nil {
			t.Fatal(err)
		}
		return u, tk
	}
	bouncing, bouncingTk := setup("gone@customer.example", "")
	if _, err := f.st.DB().Exec(ctx, `UPDATE users SET bouncing_since = now() WHERE id = $1`, bouncing.ID); err != nil {
		t.Fatal(err)
	}
	_, daemonTk := setup("MAILER-DAEMON@mx.customer.example", "")
	_, selfTk := setup("support+loop@desk.example", "")
	_, aliasTk := setup("help@desk.example", "")
	_, bulkTk := setup("news@shop.example", "bulk")
	_, autoTk := setup("alerts@monitor.example", "auto-generated")
	busy, busyTk := setup("busy@customer.example", "")
	fine, fineTk := setup("fine@customer.example", "")

	ack := func(key string, tk tickets.Ticket) func(st *tickets.Store) error {
		return func(st *tickets.Store) error { return f.n.Acknowledgement(ctx, st, key, tk.ID) }
	}
	// A moderator's reply (a person's mail, not an automatic one).
	reply := func(key string, tk tickets.Ticket) func(st *tickets.Store) error {
		return func(st *tickets.Store) error {
			m, err := st.InsertMessage(ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound,
				Kind: tickets.KindReply, AuthorID: &mo.ID, MessageID: key + "@desk.example",
				FromAddress: mo.Email, ReplyText: "We are on it."})
			if err != nil {
				return err
			}
			return f.n.StaffReply(ctx, st, key, m.ID)
		}
	}
	// Three automatic mails to busy@ fill its hour.
	for _, k := range []string{"b1", "b2", "b3"} {
		f.tx(ack(k, busyTk))
	}
	for _, tc := range []struct {
		name   string
		ticket tickets.Ticket
		do     func(st *tickets.Store) error
		queued bool
		reason string
	}{
		{"automatic mail to MAILER-DAEMON", daemonTk, ack("a", daemonTk), false, "mail system"},
		{"automatic mail to a bouncing address", bouncingTk, ack("a", bouncingTk), false, "bounces since"},
		{"automatic mail to ticketd's signed address", selfTk, ack("a", selfTk), false, "ticketd's own"},
		{"automatic mail to an alias", aliasTk, ack("a", aliasTk), false, "ticketd's own"},
		{"automatic mail to a bulk sender", bulkTk, ack("a", bulkTk), false, "automatic mail (bulk)"},
		{"automatic mail to an alerting system", autoTk, ack("a", autoTk), false, "automatic mail (auto-generated)"},
		{"automatic mail over the hourly limit", busyTk, ack("b4", busyTk), false, "limit of 3"},
		{"automatic mail within the limit", fineTk, ack("a", fineTk), true, ""},
		{"a person's reply to a bouncing address still goes", bouncingTk, reply("r1", bouncingTk), true, ""},
		{"a person's reply over the hourly limit still goes", busyTk, reply("r2", busyTk), true, ""},
		{"a person's reply to ticketd itself does not", selfTk, reply("r3", selfTk), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.mails(tc.ticket.ID))
			f.tx(tc.do)
			after := len(f.mails(tc.ticket.ID))
			if queued := after > before; queued != tc.queued {
				t.Fatalf("queued = %v, want %v", queued, tc.queued)
			}
			if tc.reason == "" {
				return
			}
			trail, err := f.st.AuditTrail(ctx, tc.ticket.ID)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, e := range trail {
				if e.Action == "mail.suppressed" && strings.Contains(e.Detail, tc.reason) {
					found = true
				}
			}
			if !found {
				t.Errorf("no audit entry saying %q in %+v", tc.reason, trail)
			}
		})
	}
	_ = busy
	_ = fine
}

// TestPingPongWithAutoResponder: an auto-responder answering every mail
// gets at most the hourly limit of automatic mails, however long it goes on.
func TestPingPongWithAutoResponder(t *testing.T) {
	f := newFixture(t, func(o *outbound.NotifierOptions) { o.AutoLimitPerHour = 5 })
	robot := f.user("helpdesk@vendor.example", "Vendor desk", tickets.RoleUser)
	mo := f.user("mo@desk.example", "Mo", tickets.RoleModerator)
	tk := f.ticket(robot, "Case 1", "Opened.", "open@vendor.example")
	f.tx(func(st *tickets.Store) error {
		return st.ApplyTriage(f.ctx, tk.ID, tickets.Triage{Priority: tickets.PriorityLow, AssigneeID: &mo.ID})
	})
	for i := range 50 {
		// Each answer of the responder reopens or touches the ticket, and
		// ticketd would tell it about the status again.
		from, to := tickets.StatusInProgress, tickets.StatusTodo
		if i%2 == 1 {
			from, to = to, from
		}
		f.tx(func(st *tickets.Store) error {
			return f.n.StatusChanged(f.ctx, st, "round-"+string(rune('a'+i%26))+string(rune('a'+i/26)), tk.ID, from, to)
		})
	}
	if n := len(f.mails(tk.ID)); n != 5 {
		t.Errorf("%d automatic mails to the responder, want the hourly limit of 5", n)
	}
}

func TestOtherMails(t *testing.T) {
	f := newFixture(t, nil)
	ann := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	mo := f.user("mo@desk.example", "Mo", tickets.RoleModerator)
	al := f.user("al@desk.example", "Al", tickets.RoleAdmin)
	const opening = "open-1@customer.example"
	tk := f.ticket(ann, "Printer", "It jams.", opening)
	f.tx(func(st *tickets.Store) error {
		return st.ApplyTriage(f.ctx, tk.ID, tickets.Triage{Priority: tickets.PriorityLow, AssigneeID: &mo.ID})
	})
	annReply, err := f.st.InsertMessage(f.ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound,
		Kind: tickets.KindReply, AuthorID: &ann.ID, MessageID: "ann-2@customer.example", InReplyTo: opening,
		FromAddress: ann.Email, FromName: "Ann", ToAddresses: []string{support},
		TextBody: "It still jams.\n\n> old", ReplyText: "It still jams."})
	if err != nil {
		t.Fatal(err)
	}
	modCmd, err := f.st.InsertMessage(f.ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound,
		Kind: tickets.KindReply, AuthorID: &mo.ID, MessageID: "mo-cmd@desk.example",
		FromAddress: mo.Email, ReplyText: ""})
	if err != nil {
		t.Fatal(err)
	}
	note, err := f.st.InsertMessage(f.ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound,
		Kind: tickets.KindNote, Internal: true, AuthorID: &mo.ID, MessageID: "mo-note@desk.example",
		FromAddress: mo.Email, ReplyText: "the customer is grumpy"})
	if err != nil {
		t.Fatal(err)
	}
	web, err := f.st.InsertMessage(f.ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Outbound,
		Kind: tickets.KindReply, AuthorID: &al.ID, MessageID: "web-1.abc@desk.example",
		FromAddress: support, ReplyText: "Answered on the web."})
	if err != nil {
		t.Fatal(err)
	}

	// In-Reply-To is the newest mail of the thread its recipient has seen:
	// "previous" is the last mail queued to them.
	type want struct {
		kind, to, auto string
		inReplyTo      string
		text           []string
	}
	for _, tc := range []struct {
		name string
		do   func(st *tickets.Store) error
		want *want // nil: nothing is queued
	}{
		{"forward of the requester's reply to the assignee",
			func(st *tickets.Store) error { return f.n.ForwardToAssignee(f.ctx, st, "rep-1", annReply.ID) },
			&want{"forward", mo.Email, "auto-generated", "mo-note@desk.example", []string{"Ann <ann@customer.example> wrote:", "> It still jams.", "status: completed"}}},
		{"the assignee's own reply is not forwarded to them",
			func(st *tickets.Store) error { return f.n.ForwardToAssignee(f.ctx, st, "rep-2", modCmd.ID) }, nil},
		{"command receipt in reply to the commands",
			func(st *tickets.Store) error {
				return f.n.CommandReceipt(f.ctx, st, "cmd-1", tk.ID, mo, "<mo-cmd@desk.example>", []outbound.ReceiptLine{
					{Command: "status: done", Applied: true, Field: "status", Old: "In-Progress", New: "Completed"},
					{Command: "assign: al@desk.example", Field: "assignee", Reason: "not allowed for your role"},
				})
			},
			&want{"receipt", mo.Email, "auto-replied", "mo-cmd@desk.example", []string{
				"status: done\n    status: In-Progress → Completed", "assign: al@desk.example\n    refused: not allowed for your role"}}},
		{"status change to the requester",
			func(st *tickets.Store) error {
				return f.n.StatusChanged(f.ctx, st, "st-1", tk.ID, tickets.StatusTodo, tickets.StatusInProgress)
			},
			&want{"status", ann.Email, "auto-generated", "ann-2@customer.example", []string{"went from To-Do to In-Progress"}}},
		{"reassignment tells the previous assignee",
			func(st *tickets.Store) error { return f.n.Reassigned(f.ctx, st, "as-2", tk.ID, mo.ID, al.ID) },
			&want{"reassignment", mo.Email, "auto-generated", "previous", []string{"is now assigned to Al"}}},
		{"assignment of a ticket that has another assignee now",
			func(st *tickets.Store) error { return f.n.Assignment(f.ctx, st, "as-1", tk.ID, al.ID) }, nil},
		{"an internal note is never mailed",
			func(st *tickets.Store) error { return f.n.StaffReply(f.ctx, st, "note-1", note.ID) }, nil},
		{"an empty staff reply is not mailed",
			func(st *tickets.Store) error { return f.n.StaffReply(f.ctx, st, "empty-1", modCmd.ID) }, nil},
		{"a reply written on the web keeps its Message-ID",
			func(st *tickets.Store) error { return f.n.StaffReply(f.ctx, st, "web-1", web.ID) },
			&want{"reply", ann.Email, "", "previous", []string{"Answered on the web."}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.mails(tk.ID)
			f.tx(tc.do)
			after := f.mails(tk.ID)
			if tc.want == nil {
				if len(after) != len(before) {
					t.Fatalf("%d mails queued, want none", len(after)-len(before))
				}
				return
			}
			if len(after) != len(before)+1 {
				t.Fatalf("%d mails queued, want 1", len(after)-len(before))
			}
			m := after[len(after)-1]
			p := parse(t, m.Data)
			w := *tc.want
			if m.Kind != w.kind || m.Recipients[0] != w.to || m.Automatic != (w.auto != "") {
				t.Errorf("queued %s to %v (automatic %v), want %s to %s", m.Kind, m.Recipients, m.Automatic, w.kind, w.to)
			}
			if got := p.h.Get("Auto-Submitted"); got != w.auto {
				t.Errorf("Auto-Submitted = %q, want %q", got, w.auto)
			}
			if w.inReplyTo == "previous" {
				for _, b := range before {
					if b.Recipients[0] == w.to {
						w.inReplyTo = b.MessageID
					}
				}
			}
			if got := p.ids(t, "In-Reply-To"); len(got) != 1 || got[0] != w.inReplyTo {
				t.Errorf("In-Reply-To = %v, want %s", got, w.inReplyTo)
			}
			for _, s := range w.text {
				if !strings.Contains(p.text, s) {
					t.Errorf("text lacks %q:\n%s", s, p.text)
				}
			}
			if w.kind == "reply" {
				if m.MessageID != web.MessageID {
					t.Errorf("web reply sent as %s, want its own Message-ID %s", m.MessageID, web.MessageID)
				}
				if from := p.addr(t, "From"); from.Name != "Al via Support" {
					t.Errorf("From name %q", from.Name)
				}
			}
		})
	}
	msgs, err := f.st.Messages(f.ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 5 {
		t.Errorf("%d messages in the thread, want 5 (a web reply adds no second outbound message)", len(msgs))
	}
}

func TestSignInLink(t *testing.T) {
	f := newFixture(t, nil)
	ann := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	f.tx(func(st *tickets.Store) error {
		return f.n.SignInLink(f.ctx, st, "signin-1", ann, "https://desk.example/portal/signin?t=abc")
	})
	var data []byte
	err := f.pool.QueryRow(f.ctx, `SELECT data FROM mail_outbox WHERE kind = 'sign-in' AND ticket_id IS NULL`).Scan(&data)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if got := p.get(t, "Subject"); got != "Sign in to Support" {
		t.Errorf("Subject = %q", got)
	}
	if p.h.Get("Reply-To") != "" || p.h.Get("In-Reply-To") != "" {
		t.Errorf("a sign-in mail belongs to no thread: Reply-To %q, In-Reply-To %q", p.h.Get("Reply-To"), p.h.Get("In-Reply-To"))
	}
	if !strings.Contains(p.text, "Sign in: https://desk.example/portal/signin?t=abc") ||
		!strings.Contains(p.html, `href="https://desk.example/portal/signin?t=abc"`) {
		t.Errorf("no link:\n%s\n%s", p.text, p.html)
	}
	if p.h.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", p.h.Get("Auto-Submitted"))
	}
	_ = time.Now
}

// TestWebReplyThreads: a reply written on the web is stored (To the
// requester, Cc the others) before it is mailed; no copy of it names it in
// In-Reply-To or References, and each answers the opening mail.
func TestWebReplyThreads(t *testing.T) {
	f := newFixture(t, nil)
	ann := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	bob := f.user("bob@customer.example", "Bob", tickets.RoleUser)
	mo := f.user("mo@desk.example", "Mo", tickets.RoleModerator)
	const opening = "open-1@customer.example"
	tk := f.ticket(ann, "Printer", "It jams.", opening, bob)
	const webID = "reply-1.abc@desk.example"
	f.tx(func(st *tickets.Store) error {
		m, err := st.InsertMessage(f.ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Outbound,
			Kind: tickets.KindReply, AuthorID: &mo.ID, MessageID: webID, InReplyTo: opening,
			Refs: []string{opening}, FromAddress: mo.Email, FromName: mo.Name,
			ToAddresses: []string{ann.Email}, CcAddresses: []string{bob.Email},
			Subject: "Re: Printer", TextBody: "Answered on the web.", ReplyText: "Answered on the web."})
		if err != nil {
			return err
		}
		return f.n.StaffReply(f.ctx, st, "web-reply", m.ID)
	})
	for _, m := range f.mails(tk.ID) {
		p := parse(t, m.Data)
		id, _ := p.h.MessageID()
		irt := p.ids(t, "In-Reply-To")
		refs := p.ids(t, "References")
		if slices.Contains(refs, webID) || slices.Contains(refs, id) {
			t.Errorf("mail to %v (Message-ID %s) names the reply itself in References %v", m.Recipients, id, refs)
		}
		if len(irt) != 1 || irt[0] != opening {
			t.Errorf("mail to %v: In-Reply-To = %v, want %s", m.Recipients, irt, opening)
		}
	}
	if n := len(f.mails(tk.ID)); n != 2 {
		t.Errorf("%d mails, want one each to Ann and Bob", n)
	}
}

// TestMailTextsAsPeopleWroteThem: subjects appear in mails as written, not
// escaped, and a name cannot turn the address after it around.
func TestMailTextsAsPeopleWroteThem(t *testing.T) {
	f := newFixture(t, nil)
	mo := f.user("mo@desk.example", "Mo", tickets.RoleModerator)
	ann := f.user("ann@customer.example", "Ann \u202eelpmaxe.knab@ofni", tickets.RoleUser)
	const subject = `"Invoice 12" missing from C:\Invoices 👨‍👩‍👧`
	tk := f.ticket(ann, subject, "It is gone.", "open-1@customer.example")
	f.tx(func(st *tickets.Store) error { return f.n.Acknowledgement(f.ctx, st, "ack", tk.ID) })
	f.tx(func(st *tickets.Store) error {
		return st.ApplyTriage(f.ctx, tk.ID, tickets.Triage{Priority: tickets.PriorityLow, AssigneeID: &mo.ID})
	})
	f.tx(func(st *tickets.Store) error { return f.n.Assignment(f.ctx, st, "as", tk.ID, mo.ID) })
	mails := f.mails(tk.ID)
	if len(mails) != 2 {
		t.Fatalf("%d mails", len(mails))
	}
	ack, assignment := parse(t, mails[0].Data), parse(t, mails[1].Data)
	if !strings.Contains(ack.text, "“"+subject+"”") {
		t.Errorf("the acknowledgement does not name the request as written:\n%s", ack.text)
	}
	for _, part := range []string{assignment.text, assignment.html} {
		if strings.ContainsRune(part, '\u202e') {
			t.Error("a direction override from the requester's name is in the assignment mail")
		}
	}
	if !strings.Contains(assignment.text, "first line is note: alone") {
		t.Errorf("the command help does not say how to keep a reply internal:\n%s", assignment.text)
	}
}
