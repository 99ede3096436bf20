package outbound_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/signing"
	"ticketd/tickets"
)

// TestConversationThread follows one ticket from the acknowledgement to the
// closure mail, through the real Sender and Relay into an SMTP sink, and
// reads every mail back: headers, threading chain, reply tokens, bodies.
func TestConversationThread(t *testing.T) {
	f := newFixture(t, nil)
	ann := f.user("ann@customer.example", "Zoë Ångström", tickets.RoleUser)
	bob := f.user("bob@customer.example", "Bob", tickets.RoleUser)
	mo := f.user("mo@desk.example", "Mo Moderator", tickets.RoleModerator, "hardware")
	const opening = "CAF-opening.1@mail.customer.example"
	tk := f.ticket(ann, "Fwd: Printer on fire", "The printer on floor 2 is on fire.", opening, bob)

	sk := startSink(t, sinkOptions{})
	snd := f.sender(f.relay(sk, nil), nil)

	// Triage: notes, first response, assignee; then the two mails.
	f.tx(func(st *tickets.Store) error {
		if err := st.ApplyTriage(f.ctx, tk.ID, tickets.Triage{
			Summary: "Printer fire", HelpfulNotes: "Check the fuser.", FirstResponse: "Please unplug the printer.",
			Priority: tickets.PriorityHigh, Skills: []string{"hardware"}, AssigneeID: &mo.ID,
			AssignmentReason: "matched skills: hardware",
		}); err != nil {
			return err
		}
		if err := f.n.Acknowledgement(f.ctx, st, "created-1", tk.ID); err != nil {
			return err
		}
		return f.n.Assignment(f.ctx, st, "created-1", tk.ID, mo.ID)
	})
	f.deliver(snd)
	sk.waitFor(2)

	// The moderator answers by mail; intake stores it and asks for the reply.
	var modMsg tickets.Message
	f.tx(func(st *tickets.Store) error {
		var err error
		modMsg, err = st.InsertMessage(f.ctx, tickets.Message{
			TicketID: tk.ID, Direction: tickets.Inbound, Kind: tickets.KindReply, AuthorID: &mo.ID,
			MessageID: "mo-1@mail.desk.example", FromAddress: mo.Email, ToAddresses: []string{"support+x@desk.example"},
			TextBody:  "Unplug it and call facilities.\nÜberhitzung ist gefährlich.\n\n> quoted",
			ReplyText: "Unplug it and call facilities.\nÜberhitzung ist gefährlich.",
		})
		if err != nil {
			return err
		}
		return f.n.StaffReply(f.ctx, st, "mail-mo-1", modMsg.ID)
	})
	f.deliver(snd)
	sk.waitFor(4)

	f.tx(func(st *tickets.Store) error {
		if _, err := st.SetStatus(f.ctx, tk.ID, tickets.StatusCompleted, tickets.Actor{UserID: &mo.ID, Channel: tickets.ChannelMail}); err != nil {
			return err
		}
		return f.n.Completion(f.ctx, st, "completed-1", tk.ID)
	})
	f.deliver(snd)
	got := byMessageID(t, sk.waitFor(5))

	rows := f.mails(tk.ID)
	if len(rows) != 5 || len(got) != 5 {
		t.Fatalf("%d mails queued and %d received, want 5 and 5", len(rows), len(got))
	}
	// Each mail by kind and recipient.
	mails := map[string]parsed{}
	ids := map[string]string{}
	for _, r := range rows {
		if r.Status != tickets.MailSent || r.SentAt == nil {
			t.Errorf("%s mail is %s, want sent", r.Kind, r.Status)
		}
		k := r.Kind + " " + r.Recipients[0]
		mails[k], ids[k] = got[r.MessageID], r.MessageID
	}
	ack, asg := "acknowledgement "+ann.Email, "assignment "+mo.Email
	replyAnn, replyBob := "reply "+ann.Email, "reply "+bob.Email
	done := "completion " + ann.Email

	type want struct {
		to, fromName string
		auto         string
		refs         []string // In-Reply-To is the last
		user         tickets.User
		text         []string
	}
	for _, tc := range []struct {
		name string
		key  string
		want want
	}{
		{"acknowledgement to the requester", ack, want{ann.Email, "Support", "auto-replied",
			[]string{opening}, ann, []string{"ticket #", "Please unplug the printer.", "Reply to this mail"}}},
		{"assignment to the moderator", asg, want{mo.Email, "Support", "auto-generated",
			[]string{opening}, mo, []string{"is assigned to you", "Check the fuser.", "matched skills: hardware",
				"The printer on floor 2 is on fire.", "status: completed", "priority: high", "assign: me", "#status done"}}},
		{"staff reply to the requester", replyAnn, want{ann.Email, "Mo Moderator via Support", "",
			[]string{opening, ids[ack]}, ann, []string{"Unplug it and call facilities.\nÜberhitzung ist gefährlich."}}},
		{"staff reply to the CC", replyBob, want{bob.Email, "Mo Moderator via Support", "",
			[]string{opening}, bob, []string{"Überhitzung ist gefährlich."}}},
		{"completion to the requester", done, want{ann.Email, "Support", "auto-generated",
			[]string{opening, ids[ack], ids[replyAnn]}, ann, []string{"is completed", "reply to this mail"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := mails[tc.key]
			if !ok {
				t.Fatalf("no %s mail; have %v", tc.key, keys(mails))
			}
			w := tc.want
			for i, b := range p.raw {
				if b >= 0x80 {
					t.Fatalf("byte %d of the mail is not 7-bit: headers must be RFC 2047-encoded and bodies quoted-printable", i)
				}
			}
			if got := p.get(t, "Subject"); got != fmt.Sprintf("Re: [#%d] Printer on fire", tk.ID) {
				t.Errorf("Subject = %q", got)
			}
			if got := p.get(t, "Thread-Topic"); got != "Printer on fire" {
				t.Errorf("Thread-Topic = %q", got)
			}
			from := p.addr(t, "From")
			if from.Address != support || from.Name != w.fromName {
				t.Errorf("From = %q <%s>, want %q <%s>", from.Name, from.Address, w.fromName, support)
			}
			to := p.addr(t, "To")
			if to.Address != w.to || to.Name != w.user.Name {
				t.Errorf("To = %q <%s>, want %q <%s>", to.Name, to.Address, w.user.Name, w.to)
			}
			if w.user.ID == ann.ID && !strings.Contains(p.h.Get("To"), "=?utf-8?") {
				t.Errorf("To %q: a non-ASCII name must be RFC 2047-encoded", p.h.Get("To"))
			}
			id, _ := p.h.MessageID()
			if !regexp.MustCompile(fmt.Sprintf(`^ticket-%d\.[a-z2-7]{16}@desk\.example$`, tk.ID)).MatchString(id) {
				t.Errorf("Message-ID = %q", id)
			}
			if diff := cmp.Diff(w.refs, p.ids(t, "References")); diff != "" {
				t.Errorf("References (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(w.refs[len(w.refs)-1:], p.ids(t, "In-Reply-To")); diff != "" {
				t.Errorf("In-Reply-To (-want +got):\n%s", diff)
			}
			if got := p.h.Get("Auto-Submitted"); got != w.auto {
				t.Errorf("Auto-Submitted = %q, want %q", got, w.auto)
			}
			wantSuppress := ""
			if w.auto != "" {
				wantSuppress = "All"
			}
			if got := p.h.Get("X-Auto-Response-Suppress"); got != wantSuppress {
				t.Errorf("X-Auto-Response-Suppress = %q, want %q", got, wantSuppress)
			}
			if p.h.Get("MIME-Version") != "1.0" {
				t.Errorf("MIME-Version = %q", p.h.Get("MIME-Version"))
			}
			if d, err := p.h.Date(); err != nil || time.Since(d) > time.Hour {
				t.Errorf("Date = %q: %v", p.h.Get("Date"), err)
			}
			// The reply address is signed for this recipient and ticket.
			rt := p.addr(t, "Reply-To")
			token, ok := signing.TokenFromAddress(support, rt.Address)
			if !ok {
				t.Fatalf("Reply-To %s is not a signed sub-address of %s", rt.Address, support)
			}
			c, err := f.keys.Verify(signing.PurposeReply, token, time.Now())
			if err != nil || c.TicketID != tk.ID || c.UserID != w.user.ID {
				t.Errorf("Reply-To token: %+v, %v; want ticket %d, user %d", c, err, tk.ID, w.user.ID)
			}
			if exp := time.Until(c.Expires); exp < 89*24*time.Hour || exp > 91*24*time.Hour {
				t.Errorf("Reply-To token expires in %v, want 90 days", exp)
			}
			// And the signed link to the ticket page.
			link := regexp.MustCompile(`https://desk\.example/tickets/(\d+)\?token=([a-z2-7]+)`).FindStringSubmatch(p.text)
			if link == nil {
				t.Fatalf("no ticket link in the text:\n%s", p.text)
			}
			lc, err := f.keys.Verify(signing.PurposeLink, link[2], time.Now())
			if err != nil || lc.TicketID != tk.ID || lc.UserID != w.user.ID || link[1] != fmt.Sprint(tk.ID) {
				t.Errorf("link token: %+v, %v", lc, err)
			}
			for _, s := range w.text {
				if !strings.Contains(p.text, s) {
					t.Errorf("text lacks %q:\n%s", s, p.text)
				}
				if !strings.Contains(p.html, strings.ReplaceAll(s, "\n", "<br>\n")) {
					t.Errorf("html lacks %q:\n%s", s, p.html)
				}
			}
			if strings.Contains(p.text, "> quoted") {
				t.Errorf("the moderator's quoted history was sent:\n%s", p.text)
			}
		})
	}

	// Each person's copy is addressed to them alone and names nobody else;
	// the moderator's mail stays the thread's one message of that reply
	// (no second, outbound copy of it), and answers to the copies thread by
	// the mail outbox.
	for key, other := range map[string]string{replyAnn: bob.Email, replyBob: ann.Email} {
		if p := mails[key]; p.h.Get("Cc") != "" || strings.Contains(string(p.raw), other) {
			t.Errorf("copy %s has Cc %q or names %s", key, p.h.Get("Cc"), other)
		}
	}
	msgs, err := f.st.Messages(f.ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []tickets.Message
	for _, m := range msgs {
		if m.Direction == tickets.Outbound {
			out = append(out, m)
		}
	}
	if len(out) != 0 {
		t.Errorf("outbound messages = %+v, want none: the moderator's mail is the reply", out)
	}
	if thread, err := f.st.ThreadMessageIDs(f.ctx, tk.ID); err != nil || !slices.Contains(thread, ids[replyAnn]) {
		t.Errorf("thread %v lacks the requester's copy %s (%v)", thread, ids[replyAnn], err)
	}
	// Every envelope goes to one recipient, from a return path of its own
	// that names the mail and that recipient.
	seen := map[string]bool{}
	for _, m := range sk.received() {
		if len(m.To) != 1 || seen[m.From] {
			t.Errorf("envelope %s -> %v", m.From, m.To)
			continue
		}
		seen[m.From] = true
		f.checkReturnPath(m.From, m.To[0])
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
