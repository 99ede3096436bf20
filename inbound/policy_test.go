package inbound_test

import (
	"context"
	"crypto"
	"errors"
	"strings"
	"testing"
	"time"

	"ticketd/inbound"
	"ticketd/mailauth"
	"ticketd/mailauth/dnstest"
	"ticketd/tickets"
)

// authEnv is intake behind real sender checks: a DNS server on loopback
// publishes staff.example (signed, p=reject), open.example (SPF for
// 127.0.0.10, no DMARC) and lists.example (p=none); the attacker sends
// from 127.0.0.66.
type authEnv struct {
	*staffEnv
	dns *dnstest.Server
	key crypto.Signer
}

func newAuthEnv(t *testing.T) *authEnv {
	d := dnstest.Start(t)
	d.SPF("staff.example", "v=spf1 ip4:127.0.0.10 -all")
	d.DMARC("staff.example", "v=DMARC1; p=reject")
	key := d.DKIMKey("staff.example", "s1")
	d.SPF("open.example", "v=spf1 ip4:127.0.0.10 -all")
	d.SPF("lists.example", "v=spf1 ip4:127.0.0.20 -all")
	d.DMARC("lists.example", "v=DMARC1; p=none")
	d.SPF("evil.example", "v=spf1 ip4:127.0.0.66 -all")
	r, err := mailauth.NewResolver(mailauth.ResolverOptions{Server: d.Addr})
	if err != nil {
		t.Fatal(err)
	}
	checker := mailauth.NewChecker(r, "mx.ticketd.test", 10*time.Second)
	s := newStaffEnv(t)
	s.opt.Authenticator = checker
	s.opt.AllowUnauthenticatedCommands = false
	s.in = inbound.New(s.opt)
	return &authEnv{staffEnv: s, dns: d, key: key}
}

// send delivers raw as the SMTP receiver would, from ip.
func (a *authEnv) send(raw []byte, ip, mailFrom string) (inbound.Result, error) {
	return a.in.Deliver(context.Background(), raw, inbound.Source{Kind: "smtp", RemoteAddr: ip + ":40000",
		Helo: "mx.example", MailFrom: mailFrom, RcptTo: []string{support}})
}

func (a *authEnv) signed(raw []byte) []byte {
	return dnstest.Sign(raw, dnstest.Signature{Domain: "staff.example", Selector: "s1", Key: a.key})
}

func (a *authEnv) storedRaw(t *testing.T, r inbound.Result) string {
	t.Helper()
	var data string
	q := `SELECT convert_from(r.data, 'UTF8') FROM raw_messages r JOIN messages m ON m.raw_message_id = r.id WHERE m.id = $1`
	arg := r.MessageID
	if r.Quarantined {
		q = `SELECT convert_from(r.data, 'UTF8') FROM raw_messages r JOIN quarantine q ON q.raw_message_id = r.id ORDER BY q.id DESC LIMIT 1`
		if err := a.pool.QueryRow(context.Background(), q).Scan(&data); err != nil {
			t.Fatal(err)
		}
		return data
	}
	if err := a.pool.QueryRow(context.Background(), q, arg).Scan(&data); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestAuthenticatedCommandApplies: the moderator's DKIM-signed mail runs
// its command; the stored mail carries ticketd's verdict on top, and a
// forged field with ticketd's authserv-id is gone.
func TestAuthenticatedCommandApplies(t *testing.T) {
	a := newAuthEnv(t)
	to := a.replyAddress(a.ticket, a.mod.ID, time.Now().Add(time.Hour))
	raw := a.signed(mail{From: "Mod <mod@staff.example>", To: to, MessageID: "<ok@staff.example>",
		Headers: []string{"Authentication-Results: mx.ticketd.test; dmarc=fail header.from=staff.example"},
		Body:    "status: completed\n\nFixed it."}.bytes())
	r, err := a.send(raw, "127.0.0.66", "bounces@relay.example")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.env.ticket(a.ticket).Status; got != tickets.StatusCompleted {
		t.Fatalf("status %s after the moderator's signed command", got)
	}
	stored := a.storedRaw(t, r)
	if !strings.HasPrefix(stored, "Authentication-Results: mx.ticketd.test;") || strings.Count(stored, "mx.ticketd.test;") != 1 ||
		!strings.Contains(stored, "dmarc=pass") {
		t.Errorf("stored mail:\n%.600s", stored)
	}
	// The same bytes again, whatever DNS says now, are the same mail.
	a.dns.Outage(true)
	again, err := a.send(raw, "127.0.0.66", "bounces@relay.example")
	if err != nil || !again.Duplicate {
		t.Errorf("retry %+v %v", again, err)
	}
}

// TestSenderPolicy: what the verdict does to a mail.
func TestSenderPolicy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		from, ip   string
		mailFrom   string
		to         func(a *authEnv) string
		sign       bool
		quarantine bool
		held       string // a part of why the mail is held, "" when it is not
		unverified bool
		status     tickets.Status // the ticket's status afterwards; "" when no ticket is involved
	}{
		{name: "the moderator's From, p=reject, from the attacker's server", from: "Mod <mod@staff.example>", ip: "127.0.0.66", mailFrom: "x@evil.example",
			to: func(a *authEnv) string { return a.replyAddress(a.ticket, a.mod.ID, time.Now().Add(time.Hour)) }, quarantine: true, status: tickets.StatusTodo},
		{name: "the moderator's From upper-cased, p=reject", from: "MOD@STAFF.EXAMPLE", ip: "127.0.0.66", mailFrom: "x@evil.example",
			to: func(a *authEnv) string { return a.replyAddress(a.ticket, a.mod.ID, time.Now().Add(time.Hour)) }, quarantine: true, status: tickets.StatusTodo},
		{name: "a display name holding the moderator's address", from: `"mod@staff.example" <mallory@evil.example>`, ip: "127.0.0.66", mailFrom: "mallory@evil.example",
			to: func(a *authEnv) string { return a.replyAddress(a.ticket, a.mod.ID, time.Now().Add(time.Hour)) }, held: "not a participant", status: tickets.StatusTodo},
		{name: "the moderator's address plus-addressed", from: "mod+x@staff.example", ip: "127.0.0.10", mailFrom: "mod+x@staff.example", sign: true,
			to: func(a *authEnv) string { return a.replyAddress(a.ticket, a.mod.ID, time.Now().Add(time.Hour)) }, held: "not a participant", status: tickets.StatusTodo},
		{name: "two From addresses", from: "mod@staff.example, mallory@evil.example", ip: "127.0.0.10", mailFrom: "mod@staff.example", sign: true,
			to: func(a *authEnv) string { return a.replyAddress(a.ticket, a.mod.ID, time.Now().Add(time.Hour)) }, quarantine: true, status: tickets.StatusTodo},
		{name: "a customer without DMARC, SPF passes", from: "ann@open.example", ip: "127.0.0.10", mailFrom: "ann@open.example",
			to: func(*authEnv) string { return support }},
		{name: "a customer whose From fails p=none", from: "list@lists.example", ip: "127.0.0.66", mailFrom: "x@evil.example",
			to: func(*authEnv) string { return support }, unverified: true},
		{name: "a forged customer From, p=reject, opens nothing", from: "boss@staff.example", ip: "127.0.0.66", mailFrom: "x@evil.example",
			to: func(*authEnv) string { return support }, quarantine: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthEnv(t)
			raw := mail{From: tc.from, To: tc.to(a), Subject: "Printer", Body: "status: completed\n\nDone."}.bytes()
			if tc.sign {
				raw = a.signed(raw)
			}
			r, err := a.send(raw, tc.ip, tc.mailFrom)
			if err != nil {
				t.Fatal(err)
			}
			if r.Quarantined != tc.quarantine {
				t.Fatalf("quarantined %v, want %v (%+v)", r.Quarantined, tc.quarantine, r)
			}
			if tc.quarantine {
				var reason string
				if err := a.pool.QueryRow(context.Background(), `SELECT reason FROM quarantine ORDER BY id DESC LIMIT 1`).Scan(&reason); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(reason, "DMARC") && !strings.Contains(reason, "more than one From") {
					t.Errorf("quarantine reason %q", reason)
				}
				if stored := a.storedRaw(t, r); !strings.HasPrefix(stored, "Authentication-Results: mx.ticketd.test;") {
					t.Errorf("the raw mail is not kept as checked:\n%.300s", stored)
				}
			}
			if tc.status != "" {
				if got := a.env.ticket(a.ticket).Status; got != tc.status {
					t.Errorf("status %s, want %s", got, tc.status)
				}
			}
			if tc.held != "" {
				if m := a.message(r.MessageID); !strings.Contains(m.Held, tc.held) || !m.Internal {
					t.Errorf("message held %q internal %v, want held for %q", m.Held, m.Internal, tc.held)
				}
			}
			if !tc.quarantine && tc.to(a) == support {
				tk := a.env.ticket(r.TicketID)
				if r.Rule != inbound.RuleNew || tk.RequesterUnverified != tc.unverified {
					t.Errorf("rule %s, unverified %v, want a new ticket, unverified %v", r.Rule, tk.RequesterUnverified, tc.unverified)
				}
			}
		})
	}
}

// TestDNSOutageDefersCommands: while DNS does not answer, a moderator's
// command is answered with ErrDeferred and nothing is stored; the retry
// after the outage applies it once.
func TestDNSOutageDefersCommands(t *testing.T) {
	a := newAuthEnv(t)
	a.dns.Outage(true)
	to := a.replyAddress(a.ticket, a.mod.ID, time.Now().Add(time.Hour))
	raw := a.signed(mail{From: "mod@staff.example", To: to, MessageID: "<late@staff.example>", Body: "priority: high\n\nOn it."}.bytes())
	rawCount := a.count(`SELECT count(*) FROM raw_messages`)
	_, err := a.send(raw, "127.0.0.10", "mod@staff.example")
	if !errors.Is(err, inbound.ErrDeferred) || errors.Is(err, inbound.ErrRejected) {
		t.Fatalf("during the outage: %v, want ErrDeferred", err)
	}
	if n := a.count(`SELECT count(*) FROM raw_messages`); n != rawCount {
		t.Errorf("%d raw mails stored for a deferred mail", n-rawCount)
	}
	if p := a.env.ticket(a.ticket).Priority; p != tickets.PriorityMedium {
		t.Errorf("priority %s during the outage", p)
	}
	// A customer's mail is taken meanwhile: nothing to verify it for.
	if r, err := a.send(mail{From: "ann@open.example", Subject: "Hello"}.bytes(), "127.0.0.10", "ann@open.example"); err != nil || r.TicketID == 0 {
		t.Errorf("a customer's mail during the outage: %+v %v", r, err)
	}
	a.dns.Outage(false)
	for range 2 {
		if _, err := a.send(raw, "127.0.0.10", "mod@staff.example"); err != nil {
			t.Fatal(err)
		}
	}
	if p := a.env.ticket(a.ticket).Priority; p != tickets.PriorityHigh {
		t.Errorf("priority %s after the retry", p)
	}
	if n := a.count(`SELECT count(*) FROM audit_log WHERE action = 'priority' AND channel = 'mail'`); n != 1 {
		t.Errorf("%d priority changes, want 1", n)
	}
}
