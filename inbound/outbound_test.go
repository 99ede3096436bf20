package inbound_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"ticketd/inbound"
	"ticketd/inbound/mailparse"
	"ticketd/outbound"
	"ticketd/tickets"
)

// outboxMail is a queued mail, parsed back.
type outboxMail struct {
	kind       string
	recipients []string
	msg        *mailparse.Message
	raw        string
}

func (e *env) parsedOutbox() []outboxMail {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT kind, recipients, data FROM mail_outbox ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxMail
	for rows.Next() {
		var m outboxMail
		var data []byte
		if err := rows.Scan(&m.kind, &m.recipients, &data); err != nil {
			e.t.Fatal(err)
		}
		m.msg, m.raw = mailparse.Parse(data, mailparse.Options{}), string(data)
		out = append(out, m)
	}
	return out
}

// newEnvWithNotifier is an intake with the real outbound Notifier, which
// it returns too.
func newEnvWithNotifier(t *testing.T) (*env, *outbound.Notifier) {
	t.Helper()
	var n *outbound.Notifier
	e := newEnv(t, func(o *inbound.Options) {
		n = outbound.NewNotifier(outbound.NotifierOptions{SupportAddress: support, Keys: o.Keys, Logger: o.Logger})
		o.Notifier = n
	})
	return e, n
}

// assignedWithNotifier is an intake with the real outbound Notifier and
// Ann's ticket "Printer on fire", assigned to a moderator.
func assignedWithNotifier(t *testing.T) (*env, tickets.User, inbound.Result) {
	t.Helper()
	e, _ := newEnvWithNotifier(t)
	ctx := context.Background()
	mod := e.user("mod@staff.example", tickets.RoleModerator)
	open := e.deliver(mail{From: "Ann <ann@example.com>", MessageID: "<open@example.com>", Subject: "Printer on fire"}.bytes())
	if err := e.st.InTx(ctx, func(st *tickets.Store) error {
		_, err := st.Assign(ctx, open.TicketID, mod.ID, "test", tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return e, mod, open
}

// TestWithOutboundNotifier runs a moderator's mailed reply with commands
// through the real Notifier: the requester gets the moderator's text in
// the ticket's thread, the moderator gets the receipt, and a forged copy
// of the same mail reaches nobody but the moderator, who is told who used
// their reply address.
func TestWithOutboundNotifier(t *testing.T) {
	e, mod, open := assignedWithNotifier(t)
	replyTo := e.replyAddress(open.TicketID, mod.ID, time.Now().Add(time.Hour))

	// Forged: someone else's From on the moderator's reply address.
	e.deliver(mail{From: "mallory@evil.example", To: replyTo, InReplyTo: "<open@example.com>",
		Body: "status: completed\n\nClosing this."}.bytes())
	// Genuine.
	e.deliver(mail{From: "Mod <mod@staff.example>", To: replyTo, MessageID: "<mod-reply@staff.example>",
		InReplyTo: "<open@example.com>", References: "<open@example.com>",
		Body: "status: completed\n\nAll fixed, Ann: the toner was empty."}.bytes())

	if s := e.ticket(open.TicketID).Status; s != tickets.StatusCompleted {
		t.Errorf("status %s", s)
	}
	out := e.parsedOutbox()
	var kinds []string
	for _, m := range out {
		kinds = append(kinds, m.kind+" "+strings.Join(m.recipients, ","))
		for _, r := range m.recipients {
			if strings.Contains(r, "evil.example") {
				t.Errorf("a mail went to the forger: %s", m.kind)
			}
		}
	}
	want := []string{"receipt mod@staff.example", "reply ann@example.com", "receipt mod@staff.example"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("queued %q, want %q", kinds, want)
	}
	forged, reply, receipt := out[0].msg, out[1].msg, out[2].msg
	if !strings.Contains(forged.Text, "Someone else, <mallory@evil.example>, wrote to your reply address") {
		t.Errorf("forged receipt does not say why:\n%s", forged.Text)
	}
	if !strings.Contains(reply.Text, "All fixed, Ann: the toner was empty.") || strings.Contains(reply.Text, "status: completed") {
		t.Errorf("reply to the requester:\n%s", reply.Text)
	}
	// RFC 5322 3.6.4: the reply is in the ticket's thread.
	if !slices.Contains(reply.References, "open@example.com") {
		t.Errorf("reply References %q lack the opening mail", reply.References)
	}
	if !strings.Contains(reply.Subject, "Printer on fire") {
		t.Errorf("reply subject %q", reply.Subject)
	}
	if !strings.Contains(receipt.Text, "Completed") || receipt.InReplyTo != "mod-reply@staff.example" {
		t.Errorf("receipt in reply to %q:\n%s", receipt.InReplyTo, receipt.Text)
	}
	if n := e.count(`SELECT count(*) FROM event_outbox WHERE name = 'ticket.completed'`); n != 1 {
		t.Errorf("%d ticket.completed events", n)
	}
}

// TestModeratorFilesReachRequester: a file a moderator attaches to their
// mailed reply reaches the requester with the reply, through the real
// Notifier in intake's transaction.
func TestModeratorFilesReachRequester(t *testing.T) {
	e, mod, open := assignedWithNotifier(t)
	raw := "From: Mod <mod@staff.example>\r\nTo: " + e.replyAddress(open.TicketID, mod.ID, time.Now().Add(time.Hour)) + "\r\n" +
		"Subject: Re: Printer on fire\r\nMessage-ID: <mod-files@staff.example>\r\nIn-Reply-To: <open@example.com>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe fixed driver is attached.\r\n" +
		"--b\r\nContent-Type: application/zip; name=\"driver.zip\"\r\nContent-Disposition: attachment; filename=\"driver.zip\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nUEsDBAoAAAAAAA==\r\n--b--\r\n"
	e.deliver([]byte(raw))
	var reply *mailparse.Message
	for _, m := range e.parsedOutbox() {
		if m.kind == "reply" {
			reply = m.msg
		}
	}
	if reply == nil {
		t.Fatal("no reply queued for the requester")
	}
	if !strings.Contains(reply.Text, "The fixed driver is attached.") || len(reply.Attachments) != 1 ||
		reply.Attachments[0].Filename != "driver.zip" || string(reply.Attachments[0].Data) != "PK\x03\x04\n\x00\x00\x00\x00\x00" {
		t.Fatalf("the requester's mail: %q with %+v", reply.Text, reply.Attachments)
	}
}
