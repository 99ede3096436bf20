package e2e

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"ticketd/mailauth/dnstest"
	"ticketd/signing"
	"ticketd/tickets"
)

// Attacks on who sent a mail, against the whole stack: ticketd serve with
// its sender checks asking a DNS server on loopback, mail sent by a real
// SMTP client from the loopback address of the server that sends it.
// staff.example's mail leaves from 127.0.0.10 DKIM-signed, and it
// publishes p=reject; the attacker sends from 127.0.0.66.

const (
	staffIP    = "127.0.0.10"
	attackerIP = "127.0.0.66"
)

type attackStack struct {
	*stack
	key    crypto.Signer
	mod    tickets.User
	keys   *signing.Keys
	ticket int64
}

func startAttackStack(t *testing.T) *attackStack {
	t.Helper()
	s := startStack(t, stackOptions{})
	s.dns.SPF("staff.example", "v=spf1 ip4:"+staffIP+" -all")
	s.dns.DMARC("staff.example", "v=DMARC1; p=reject")
	a := &attackStack{stack: s, key: s.dns.DKIMKey("staff.example", "s1")}
	s.dns.SPF("evil.example", "v=spf1 ip4:"+attackerIP+" -all")
	var err error
	if a.keys, err = signing.NewKeys(ticketdSecret); err != nil {
		t.Fatal(err)
	}
	s.ticketd("", "user", "add", "--email", "mod1@staff.example", "--role", "moderator", "--name", "Mod One")
	st := tickets.NewStore(s.pool)
	ctx := context.Background()
	if a.mod, err = st.UserByEmail(ctx, "mod1@staff.example"); err != nil {
		t.Fatal(err)
	}
	s.sendSMTP("ann@example.com", []string{supportAddr}, "From: Ann <ann@example.com>\nTo: "+supportAddr+
		"\nSubject: Printer on fire\nMessage-ID: <open-1@example.com>\n\nIt smokes.\n")
	s.eventually("the ticket", 30*time.Second, func() error {
		r, err := s.ticketBySubject("Printer on fire")
		a.ticket = r.ID
		return err
	})
	if err := st.InTx(ctx, func(tx *tickets.Store) error {
		_, err := tx.Assign(ctx, a.ticket, a.mod.ID, "test", tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.settle() // triage has run: what changes after this, a mail changed
	return a
}

// replyAddress is the reply address ticketd signs for user on the ticket.
func (a *attackStack) replyAddress(userID int64) string {
	return signing.ReplyAddress(supportAddr, a.keys.Sign(signing.Claims{Purpose: signing.PurposeReply,
		TicketID: a.ticket, UserID: userID, Expires: time.Now().Add(time.Hour)}))
}

// send hands raw to ticketd's SMTP receiver from the loopback address ip,
// as the server there would, and returns the SMTP answer to DATA.
func (a *attackStack) send(ip, helo, mailFrom, rcpt string, raw []byte) error {
	a.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", a.smtpAddr)
	if err != nil {
		a.t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		a.t.Fatal(err)
	}
	if err := c.Mail(mailFrom, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func (a *attackStack) mail(from, to, msgID, body string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Re: [#%d] Printer on fire\r\nMessage-ID: <%s>\r\n"+
		"Date: %s\r\n\r\n%s", from, to, a.ticket, msgID, time.Now().Format(time.RFC1123Z), strings.ReplaceAll(body, "\n", "\r\n")))
}

func (a *attackStack) signed(raw []byte) []byte {
	return dnstest.Sign(raw, dnstest.Signature{Domain: "staff.example", Selector: "s1", Key: a.key})
}

func (a *attackStack) state() string {
	var s string
	if err := a.pool.QueryRow(context.Background(), `SELECT status::text || ' ' || priority::text || ' ' || coalesce(assignee_id, 0)
		FROM tickets WHERE id = $1`, a.ticket).Scan(&s); err != nil {
		a.t.Fatal(err)
	}
	return s
}

// rawKept reports whether a mail with that Message-ID is stored, as raw
// bytes, for admins to read.
func (a *attackStack) rawKept(msgID string) bool {
	return a.count(`SELECT count(*) FROM raw_messages WHERE position($1 in convert_from(data, 'UTF8')) > 0`, "<"+msgID+">") == 1
}

// adminGet fetches a page as an admin, signed in with a password.
func (a *attackStack) adminGet(path string) string {
	a.t.Helper()
	a.ticketd(adminPassword+"\n", "user", "add", "--email", "admin@example.com", "--role", "admin", "--name", "Ada Admin", "--password-stdin")
	return signInWeb(a.t, "http://"+a.httpAddr, "admin@example.com", adminPassword).get(a.t, path)
}

// TestAttackForgedModeratorCommand replays the first attack: a requester
// mails the moderator's reply address with the moderator's From and
// commands. staff.example publishes p=reject: the mail goes to the
// quarantine, the ticket is unchanged, and the raw mail is there for
// admins. A forged Authentication-Results with ticketd's own authserv-id
// is removed.
func TestAttackForgedModeratorCommand(t *testing.T) {
	a := startAttackStack(t)
	before := a.state()
	raw := a.mail("Mod One <mod1@staff.example>", a.replyAddress(a.mod.ID), "forged-1@evil.example",
		"status: completed\npriority: low\nassign: nobody\n\nClosing this.\n")
	raw = append([]byte("Authentication-Results: example.com; dmarc=pass header.from=staff.example\r\n"), raw...)
	if err := a.send(attackerIP, "mx.evil.example", "ann@evil.example", a.replyAddress(a.mod.ID), raw); err != nil {
		t.Fatalf("the forged mail was not taken (it must be kept): %v", err)
	}
	a.settle()
	if got := a.state(); got != before {
		t.Errorf("the forged commands changed the ticket: %s -> %s", before, got)
	}
	if n := a.count(`SELECT count(*) FROM quarantine WHERE reason LIKE '%fails DMARC%'`); n != 1 {
		t.Errorf("%d quarantine entries for the forged mail", n)
	}
	if !a.rawKept("forged-1@evil.example") {
		t.Error("the forged mail's raw bytes are not kept")
	}
	var stored string
	if err := a.pool.QueryRow(context.Background(), `SELECT convert_from(data, 'UTF8') FROM raw_messages
		WHERE position('forged-1@evil.example' in convert_from(data, 'UTF8')) > 0`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Count(stored, "Authentication-Results: example.com;") != 1 || !strings.HasPrefix(stored, "Authentication-Results: example.com;\r\n\tspf=fail") &&
		!strings.HasPrefix(stored, "Authentication-Results: example.com;\r\n\tspf=pass") || !strings.Contains(stored, "dmarc=fail") {
		t.Errorf("stored mail:\n%.500s", stored)
	}
	if page := a.adminGet("/quarantine"); !strings.Contains(page, "fails DMARC") {
		t.Errorf("the quarantine page does not show the forged mail:\n%.2000s", page)
	}
	for _, m := range a.sink.all() {
		if strings.Contains(m.Text, "Closing this") {
			t.Errorf("the forged text went out to %v", m.To)
		}
	}
}

// TestAttackPositiveAndOutage: the moderator's DKIM-signed command
// applies; a customer whose domain has no DMARC but passes SPF opens a
// ticket; during a DNS outage the moderator's command is answered 451,
// nothing is stored, and the retry after it applies once.
func TestAttackPositiveAndOutage(t *testing.T) {
	a := startAttackStack(t)
	a.dns.SPF("open.example", "v=spf1 ip4:"+staffIP+" -all")
	if err := a.send(staffIP, "mx.open.example", "bea@open.example", supportAddr,
		[]byte("From: Bea <bea@open.example>\r\nTo: "+supportAddr+"\r\nSubject: Scanner jammed\r\nMessage-ID: <bea-1@open.example>\r\n\r\nPaper stuck.\r\n")); err != nil {
		t.Fatal(err)
	}
	a.eventually("Bea's ticket", 30*time.Second, func() error {
		_, err := a.ticketBySubject("Scanner jammed")
		return err
	})
	var unverified bool
	if err := a.pool.QueryRow(context.Background(), `SELECT requester_unverified FROM tickets WHERE subject = 'Scanner jammed'`).Scan(&unverified); err != nil || unverified {
		t.Errorf("Bea's ticket unverified %v %v", unverified, err)
	}

	a.dns.Outage(true)
	cmd := a.signed(a.mail("Mod One <mod1@staff.example>", a.replyAddress(a.mod.ID), "cmd-1@staff.example",
		"priority: high\n\nOn my way.\n"))
	err := a.send(staffIP, "mx.staff.example", "mod1@staff.example", a.replyAddress(a.mod.ID), cmd)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("during the outage: %v, want 451", err)
	}
	if a.rawKept("cmd-1@staff.example") {
		t.Error("a deferred mail was stored")
	}
	a.dns.Outage(false)
	for range 2 { // the sending server's retry, and a duplicate of it
		if err := a.send(staffIP, "mx.staff.example", "mod1@staff.example", a.replyAddress(a.mod.ID), cmd); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.state(); !strings.Contains(got, " high ") {
		t.Errorf("state %s after the moderator's signed command", got)
	}
	if n := a.count(`SELECT count(*) FROM audit_log WHERE action = 'priority' AND channel = 'mail'`); n != 1 {
		t.Errorf("%d priority changes by mail, want 1", n)
	}
	a.settle()
	var reply int
	for _, m := range a.sink.to("ann@example.com") {
		if strings.Contains(m.Text, "On my way.") {
			reply++
			if strings.Contains(m.Text, "priority: high") {
				t.Error("the requester got the command line")
			}
		}
	}
	if reply != 1 {
		t.Errorf("%d copies of the moderator's reply reached the requester", reply)
	}
	if n := a.count(`SELECT count(*) FROM messages WHERE ticket_id = $1 AND reply_text LIKE 'On my way.%'`, a.ticket); n != 1 {
		t.Errorf("the moderator's reply is %d messages in the thread, want 1", n)
	}
}
