package imappoller_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"

	"ticketd/inbound"
	"ticketd/inbound/imappoller"
	"ticketd/inbound/imappoller/dovecot"
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

// TestIntakeFromDovecot polls Dovecot into ticketd's real intake: N mails
// make N tickets, across a Dovecot restart and a mailbox rebuilt with the
// same mails under a new UIDVALIDITY, which intake recognises as stored.
func TestIntakeFromDovecot(t *testing.T) {
	t.Parallel()
	dc := startDovecot(t, dovecot.Options{})
	acct := account{addr: dc.Addr, user: "support", password: "pw"}
	acct.run(t, func(c *imapclient.Client) error { return c.Create("Support", nil).Wait() })
	pool := pgtest.New(t)
	logs := newLogs(t)
	keys, err := signing.NewKeys("a test secret of enough length")
	if err != nil {
		t.Fatal(err)
	}
	in := inbound.New(inbound.Options{Pool: pool, Logger: logs.logger(), SupportAddress: "support@example.test",
		Keys: keys, Notifier: refusingNotifier{}})
	var mu sync.Mutex
	results := map[string][]inbound.Result{}
	deliver := func(ctx context.Context, raw []byte, m imappoller.Mail) error {
		res, err := in.Deliver(ctx, raw, inbound.Source{Kind: "imap", Mailbox: m.Mailbox, UID: m.UID})
		if err == nil {
			mu.Lock()
			results[mailID(raw)] = append(results[mailID(raw)], res)
			mu.Unlock()
		}
		return err
	}
	calls := func(id string) int { mu.Lock(); defer mu.Unlock(); return len(results[id]) }

	acct.appendMails(t, "Support", ids("i", 0, 6)...)
	runPoller(t, imappoller.Options{URL: dovecotURL("imap+insecure", dc.Addr, "Support"), Pool: pool,
		Deliver: deliver, IsPermanent: func(err error) bool { return errors.Is(err, inbound.ErrRejected) },
		MinBackoff: 20 * time.Millisecond, IdleTimeout: 200 * time.Millisecond, Logger: logs.logger()})
	waitFor(t, "6 mails", func() bool { return calls("i-5") == 1 })

	if err := dc.Restart(context.Background()); err != nil {
		t.Fatalf("restart Dovecot: %v", err)
	}
	acct.appendMails(t, "Support", ids("j", 0, 3)...)
	waitFor(t, "3 more mails", func() bool { return calls("j-2") == 1 })

	// The mailbox is rebuilt from a backup: the same nine mails under a
	// new UIDVALIDITY, then one new mail.
	acct.recreate(t, "Support")
	acct.appendMails(t, "Support", append(ids("i", 0, 6), ids("j", 0, 3)...)...)
	acct.appendMails(t, "Support", "sentinel-2")
	waitFor(t, "the sentinel", func() bool { return calls("sentinel-2") == 1 })

	mu.Lock()
	defer mu.Unlock()
	for _, id := range append(ids("i", 0, 6), ids("j", 0, 3)...) {
		rs := results[id]
		if len(rs) != 2 || rs[0].Duplicate || !rs[1].Duplicate || rs[0].TicketID != rs[1].TicketID {
			t.Errorf("%s: results %+v, want a new ticket, then the same as a duplicate", id, rs)
		}
	}
	var nTickets int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM tickets`).Scan(&nTickets); err != nil {
		t.Fatal(err)
	}
	if nTickets != 10 {
		t.Errorf("%d tickets, want 10", nTickets)
	}
	var sources []string
	rows, _ := pool.Query(context.Background(), `SELECT DISTINCT source || ' ' || mailbox FROM raw_messages`)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		sources = append(sources, s)
	}
	if diff := cmp.Diff([]string{"imap imap://support@" + dc.Addr + "/Support"}, sources); diff != "" {
		t.Errorf("raw_messages source and mailbox (-want +got):\n%s", diff)
	}
}
