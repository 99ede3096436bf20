package workflows

import (
	"bytes"
	"context"
	netmail "net/mail"
	"strings"
	"testing"

	"ticketd/inbound"
	"ticketd/outbound"
	"ticketd/pgtest"
	"ticketd/signing"
	"ticketd/testlog"
	"ticketd/tickets"
)

// TestMailToTriage: a mail taken by intake (as the SMTP receiver hands it
// over) is triaged through the dev server and answered by the real
// Notifier: the requester's acknowledgement is threaded to their mail, the
// moderator with the skills gets the assignment.
func TestMailToTriage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys, err := signing.NewKeys("a test secret that is long enough")
	if err != nil {
		t.Fatal(err)
	}
	log := testlog.New(t)
	notifier := outbound.NewNotifier(outbound.NotifierOptions{SupportAddress: "support@desk.example", Keys: keys, Logger: log})
	pool := pgtest.New(t)
	s := newStack(t, stackOptions{notifier: notifier, pool: pool, log: log})
	p := seedPeople(t, s.store)
	intake := inbound.New(inbound.Options{Pool: pool, SupportAddress: "support@desk.example", Keys: keys, Notifier: notifier, Logger: log})

	raw := strings.ReplaceAll(`From: Ann Example <ann@example.org>
To: support@desk.example
Subject: Our VPN is down for the whole office
Date: Thu, 26 Nov 2026 09:00:00 +0000
Message-ID: <vpn-1@example.org>
Content-Type: text/plain; charset=utf-8

Hello,

since this morning nobody in the office can connect to the VPN, the firewall
seems to drop the tunnel. Please help, we cannot work.

Ann
`, "\n", "\r\n")
	res, err := intake.Deliver(ctx, []byte(raw), inbound.Source{Kind: "smtp", RemoteAddr: "127.0.0.1:4000",
		MailFrom: "ann@example.org", RcptTo: []string{"support@desk.example"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "triage of the mailed ticket", triaged(s.store, res.TicketID))

	tk, _ := s.store.Ticket(ctx, res.TicketID)
	if tk.Status != tickets.StatusInProgress || tk.Priority != tickets.PriorityHigh || tk.AssigneeID == nil || *tk.AssigneeID != p.pg.ID {
		t.Errorf("ticket: %s %s assignee %v", tk.Status, tk.Priority, tk.AssigneeID)
	}
	rows, err := pool.Query(ctx, `SELECT kind, recipients, data FROM mail_outbox WHERE ticket_id = $1 ORDER BY id`, res.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]*netmail.Message{}
	to := map[string][]string{}
	for rows.Next() {
		var kind string
		var rcpt []string
		var data []byte
		if err := rows.Scan(&kind, &rcpt, &data); err != nil {
			t.Fatal(err)
		}
		m, err := netmail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s mail does not parse: %v", kind, err)
		}
		got[kind], to[kind] = m, rcpt
	}
	ack, assign := got["acknowledgement"], got["assignment"]
	if ack == nil || assign == nil || len(got) != 2 {
		t.Fatalf("queued mails: %v", to)
	}
	// RFC 5322 3.6.4: the acknowledgement answers the requester's mail.
	if ack.Header.Get("In-Reply-To") != "<vpn-1@example.org>" || to["acknowledgement"][0] != "ann@example.org" {
		t.Errorf("acknowledgement to %v, In-Reply-To %q", to["acknowledgement"], ack.Header.Get("In-Reply-To"))
	}
	// RFC 3834 3.1.7: an automatic answer says so.
	if ack.Header.Get("Auto-Submitted") == "" {
		t.Error("the acknowledgement is not marked Auto-Submitted")
	}
	if to["assignment"][0] != "pg@example.com" {
		t.Errorf("assignment to %v", to["assignment"])
	}
}
