package inbound_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ticketd/inbound"
	"ticketd/tickets"
)

// manyCc is an opening mail copied to n addresses, one line each, as a
// mail client folds a long Cc field.
func manyCc(n int) []byte {
	var cc strings.Builder
	for i := range n {
		if i > 0 {
			cc.WriteString(",\r\n ")
		}
		fmt.Fprintf(&cc, "person%05d@victims.example", i)
	}
	return mail{From: "Mallory <mallory@evil.example>", Cc: cc.String(), Subject: "Hello everyone"}.bytes()
}

// TestOpeningMailWithThousandsOfCcIsBounded: a 20,000-address mail (the
// 349 KB of the report) makes at most MAX_PARTICIPANTS people, creates no
// user for the rest, lists them on the ticket as not added, and keeps a
// bounded To/Cc with the message; the raw mail keeps all of them.
func TestOpeningMailWithThousandsOfCcIsBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	raw := manyCc(20000)
	if len(raw) < 340<<10 {
		t.Fatalf("the mail has %d bytes, want the size of the report", len(raw))
	}
	users := e.count(`SELECT count(*) FROM users`)
	res := e.deliver(raw)
	if res.TicketID == 0 {
		t.Fatalf("result %+v", res)
	}
	people, err := e.st.Participants(ctx, res.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	if len(people) != 20 || people[0].Email != "mallory@evil.example" || people[19].Email != "person00018@victims.example" {
		t.Fatalf("%d people, want the requester and the first 19 copied", len(people))
	}
	if n := e.count(`SELECT count(*) FROM users`) - users; n != 20 {
		t.Errorf("%d users made, want 20", n)
	}
	over, err := e.st.PeopleNotAddedTo(ctx, res.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	if over.Total != 20000-19 || len(over.Addresses) != 100 || over.Addresses[0] != "person00019@victims.example" || over.MaxPeople != 20 {
		t.Errorf("not added: %d, listed %d from %v, limit %d", over.Total, len(over.Addresses), over.Addresses[:1], over.MaxPeople)
	}
	if m := e.message(res.MessageID); len(m.CcAddresses) != 200 {
		t.Errorf("the message keeps %d Cc addresses, want 200", len(m.CcAddresses))
	}
	if n := e.count(`SELECT count(*) FROM raw_messages WHERE data = $1`, raw); n != 1 {
		t.Error("the raw mail is not kept whole")
	}
}

// TestMaxParticipantsCountsTheRequester: with a limit of 3, the requester
// and two copied people; duplicates, ticketd's own addresses and the
// requester copied on their own mail take no place.
func TestMaxParticipantsCountsTheRequester(t *testing.T) {
	e := newEnv(t, func(o *inbound.Options) { o.MaxParticipants = 3 })
	res := e.deliver(mail{From: "Ann <ann@example.com>", To: support + ", help@ticketd.test",
		Cc: "ann@example.com, b@example.com, B@Example.com, support+x@ticketd.test, c@example.com, d@example.com"}.bytes())
	people, err := e.st.Participants(context.Background(), res.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range people {
		got = append(got, p.Email)
	}
	if strings.Join(got, " ") != "ann@example.com b@example.com c@example.com" {
		t.Errorf("people %v", got)
	}
	over, _ := e.st.PeopleNotAddedTo(context.Background(), res.TicketID)
	if over.Total != 1 || over.Addresses[0] != "d@example.com" {
		t.Errorf("not added %+v", over)
	}
	if _, err := e.st.UserByEmail(context.Background(), "d@example.com"); err == nil {
		t.Error("a user was made for an address past the limit")
	}
}

// TestStaffReplyToTwoHundredCcIsBoundedAndDiscloseNobody: a moderator's
// reply on a ticket opened with 200 Cc goes to MAX_PARTICIPANTS-1 people
// besides the moderator, not 201, and each copy is addressed to its
// recipient alone, naming none of the others.
func TestStaffReplyToTwoHundredCcIsBoundedAndDisclosesNobody(t *testing.T) {
	e, _ := newEnvWithNotifier(t)
	ctx := context.Background()
	mod := e.user("mod@staff.example", tickets.RoleModerator)
	open := e.deliver(manyCc(200))
	if err := e.st.InTx(ctx, func(st *tickets.Store) error {
		_, err := st.Assign(ctx, open.TicketID, mod.ID, "test", tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before := len(e.parsedOutbox())
	e.deliver(mail{From: "Mo <mod@staff.example>", To: e.replyAddress(open.TicketID, mod.ID, time.Now().Add(time.Hour)),
		Subject: "Re: Hello everyone", Body: "We are on it.\r\n"}.bytes())
	var replies []outboxMail
	for _, m := range e.parsedOutbox()[before:] {
		if m.kind == "reply" {
			replies = append(replies, m)
		}
	}
	if len(replies) != 20 {
		t.Fatalf("the reply queued %d mails, want 20 (the requester and 19 copied)", len(replies))
	}
	for _, m := range replies {
		if len(m.recipients) != 1 || len(m.msg.To) != 1 || m.msg.To[0].Address != m.recipients[0] || len(m.msg.Cc) != 0 {
			t.Fatalf("a copy to %v is addressed To %v Cc %v", m.recipients, m.msg.To, m.msg.Cc)
		}
		if n := strings.Count(m.raw, "@victims.example"); n > 1 {
			t.Errorf("the copy to %s names %d of the people", m.recipients[0], n)
		}
	}
}
