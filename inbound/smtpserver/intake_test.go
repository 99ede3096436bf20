package smtpserver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound"
	"ticketd/inbound/smtpserver"
	"ticketd/pgtest"
	"ticketd/signing"
	"ticketd/tickets"
)

// refusingNotifier fails any notification: mail from requesters, which is
// all these tests send, causes none inside intake.
type refusingNotifier struct{}

func (refusingNotifier) StaffReply(context.Context, *tickets.Store, string, int64) error {
	return errors.New("test: unexpected staff reply")
}

func (refusingNotifier) CommandReceipt(context.Context, *tickets.Store, string, int64, tickets.User, string, []inbound.ReceiptLine) error {
	return errors.New("test: unexpected command receipt")
}

func (refusingNotifier) ReplyAddressUsed(context.Context, *tickets.Store, string, int64, tickets.User, string, []inbound.ReceiptLine) error {
	return errors.New("test: unexpected reply address notice")
}

// intakeOptions wires the server to ticketd's intake the way main does.
func intakeOptions(pool *pgxpool.Pool, log *slog.Logger) (smtpserver.Options, error) {
	keys, err := signing.NewKeys("a test secret of enough length")
	if err != nil {
		return smtpserver.Options{}, err
	}
	in := inbound.New(inbound.Options{Pool: pool, Logger: log, SupportAddress: "support@example.test",
		Keys: keys, Notifier: refusingNotifier{}})
	return smtpserver.Options{
		Accepts: in.Accepts,
		Deliver: func(ctx context.Context, raw []byte, env smtpserver.Envelope) error {
			_, err := in.Deliver(ctx, raw, inbound.Source{Kind: "smtp", RemoteAddr: env.RemoteAddr,
				MailFrom: env.MailFrom, RcptTo: env.RcptTo})
			return err
		},
		IsPermanent: func(err error) bool { return errors.Is(err, inbound.ErrRejected) },
		Logger:      log,
	}, nil
}

// messagesWithID counts the thread messages stored for a Message-ID.
func messagesWithID(t testing.TB, pool *pgxpool.Pool, id string) (messages, tickets int) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT ticket_id) FROM messages
		WHERE direction = 'inbound' AND message_id = $1`, id).Scan(&messages, &tickets)
	if err != nil {
		t.Fatalf("count messages %s: %v", id, err)
	}
	return messages, tickets
}

// TestIntakeThroughSMTP sends mail through the server into ticketd's real
// intake: new tickets, a reply threaded to its ticket, a resend stored
// once, foreign recipients refused and an empty mail rejected for good.
func TestIntakeThroughSMTP(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	opt, err := intakeOptions(pool, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, addr := start(t, opt)
	to := []string{"support@example.test"}

	for i := 0; i < 3; i++ {
		if err := send(addr, "ann@client.test", to, mail(fmt.Sprintf("intake-%d", i), 800)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// The same mail again, as a client whose 250 got lost would.
	if err := send(addr, "ann@client.test", to, mail("intake-0", 800)); err != nil {
		t.Fatalf("resend: %v", err)
	}
	reply := "From: Ann Example <ann@client.test>\r\nTo: support@example.test\r\nSubject: Re: printer on fire intake-1\r\n" +
		"Message-ID: <intake-reply@client.test>\r\nIn-Reply-To: <intake-1@client.test>\r\n\r\nIt is still burning.\r\n"
	if err := send(addr, "ann@client.test", to, []byte(reply)); err != nil {
		t.Fatalf("send reply: %v", err)
	}
	if err := send(addr, "ann@client.test", []string{"someone@elsewhere.test"}, mail("relay", 100)); code(err) != 550 {
		t.Errorf("foreign recipient: %v, want 550", err)
	}
	c := dialRaw(t, addr)
	c.reply()
	c.cmd("EHLO client.test")
	c.cmd("MAIL FROM:<ann@client.test>")
	c.cmd("RCPT TO:<support@example.test>")
	c.cmd("DATA")
	if r := c.cmd("."); !strings.HasPrefix(r, "554 5.6.0") {
		t.Errorf("empty message: %q, want 554 5.6.0", r)
	}

	var nTickets, nMessages int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM messages)`).
		Scan(&nTickets, &nMessages); err != nil {
		t.Fatal(err)
	}
	if nTickets != 3 || nMessages != 4 {
		t.Errorf("%d tickets and %d messages, want 3 and 4", nTickets, nMessages)
	}
	var replyTicket, openingTicket int64
	if err := pool.QueryRow(context.Background(), `SELECT
		(SELECT ticket_id FROM messages WHERE message_id = 'intake-reply@client.test'),
		(SELECT ticket_id FROM messages WHERE message_id = 'intake-1@client.test')`).Scan(&replyTicket, &openingTicket); err != nil {
		t.Fatal(err)
	}
	if replyTicket != openingTicket {
		t.Errorf("reply went to ticket %d, want %d", replyTicket, openingTicket)
	}
	var subject string
	if err := pool.QueryRow(context.Background(), `SELECT subject FROM tickets WHERE id = $1`, openingTicket).Scan(&subject); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(subject, "printer on fire intake-1") {
		t.Errorf("ticket subject %q", subject)
	}
}
