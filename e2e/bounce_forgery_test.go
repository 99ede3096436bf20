package e2e

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ticketd/signing"
)

// dsnTo is a delivery status notification (RFC 3464) reporting that mail
// to rcpt failed, sent to returnPath.
func dsnTo(id, returnPath, rcpt string) string {
	return fmt.Sprintf(`From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>
To: %s
Subject: Undelivered Mail Returned to Sender
Message-ID: <%s>
Date: Thu, 26 Nov 2026 11:00:00 +0000
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="r"

--r
Content-Type: text/plain

Your message could not be delivered to %s.

--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.test

Final-Recipient: rfc822; %s
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <%s>: Recipient address rejected

--r--
`, returnPath, id, rcpt, rcpt, rcpt)
}

var nonceRe = regexp.MustCompile(`name="nonce" value="([^"]+)"`)

// TestAttackForgedBounces replays the bounce attacks against the whole
// stack. Reports forged in every way (X-Failed-Recipients, a report sent to
// the support address, another recipient's return path, a tampered token,
// a sender that is not the null one) mark nobody, and are each kept. The
// report that comes back to the return path of ticketd's mail to Ann marks
// her: her sign-in link is held back, and a moderator whose assignment
// bounced is assigned no more. A later delivery to Ann clears her mark, an
// admin clears it on the People page, and a replay of an old report does
// not set it again. No token reaches the log.
func TestAttackForgedBounces(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.ticketd(adminPassword+"\n", "user", "add", "--email", "admin@example.com", "--role", "admin", "--name", "Ada Admin", "--password-stdin")
	s.ticketd("", "user", "add", "--email", "alice@example.com", "--role", "moderator", "--name", "Alice", "--skills", "postgres,database")

	s.sendSMTP("ann@customer.test", []string{supportAddr}, `From: Ann <ann@customer.test>
To: support@example.com
Subject: Production postgres refuses connections
Message-ID: <ann-1@customer.test>

Since 9am our production postgres database refuses every connection.
`)
	s.sendSMTP("bob@customer.test", []string{supportAddr}, `From: Bob <bob@customer.test>
To: support@example.com
Subject: Invoice question
Message-ID: <bob-1@customer.test>

Why was I billed twice?
`)
	var annAck, bobAck captured
	s.eventually("both acknowledgements at the relay", 90*time.Second, func() error {
		a, b := s.sink.to("ann@customer.test"), s.sink.to("bob@customer.test")
		if len(a) == 0 || len(b) == 0 {
			return fmt.Errorf("ann %d, bob %d mails", len(a), len(b))
		}
		annAck, bobAck = a[0], b[0]
		return nil
	})
	s.settle()
	for _, m := range []captured{annAck, bobAck} {
		if _, ok := signing.TokenFromAddress("bounces@example.com", m.From); !ok {
			t.Fatalf("the mail to %v went out from %q, not from a return path of its own", m.To, m.From)
		}
	}
	if annAck.From == bobAck.From {
		t.Fatal("two mails share a return path")
	}
	bouncing := func(email string) bool {
		return s.count(`SELECT count(*) FROM users WHERE email = $1 AND bouncing_since IS NOT NULL`, email) == 1
	}
	tickets0 := s.count(`SELECT count(*) FROM tickets`)
	raw0 := s.count(`SELECT count(*) FROM raw_messages`)

	tampered := []byte(annAck.From)
	at := strings.IndexByte(annAck.From, '@')
	tampered[at-1] = map[bool]byte{true: 'b', false: 'a'}[tampered[at-1] == 'a']
	forged := []struct {
		name, mailFrom, rcpt, raw string
	}{
		{"X-Failed-Recipients to the support address", "", supportAddr, `From: Mail Delivery System <MAILER-DAEMON@evil.example>
To: support@example.com
Subject: Mail delivery failed: returning message to sender
Message-ID: <forged-1@evil.example>
X-Failed-Recipients: ann@customer.test
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.
A message that you sent could not be delivered to ann@customer.test.
`},
		{"a delivery report sent to the support address", "", supportAddr, dsnTo("forged-2@evil.example", supportAddr, "ann@customer.test")},
		{"bob's return path naming ann", "", bobAck.From, dsnTo("forged-3@evil.example", bobAck.From, "ann@customer.test")},
		{"a tampered return path", "", string(tampered), dsnTo("forged-4@evil.example", string(tampered), "ann@customer.test")},
		{"ann's return path from a real sender", "mallory@evil.example", annAck.From, dsnTo("forged-5@evil.example", annAck.From, "ann@customer.test")},
	}
	for _, f := range forged {
		s.sendSMTP(f.mailFrom, []string{f.rcpt}, f.raw)
	}
	s.eventually("the forged reports stored", 30*time.Second, func() error {
		if n := s.count(`SELECT count(*) FROM raw_messages`) - raw0; n != len(forged) {
			return fmt.Errorf("%d of %d stored", n, len(forged))
		}
		return nil
	})
	s.settle()
	if bouncing("ann@customer.test") || bouncing("bob@customer.test") {
		t.Fatal("a forged bounce marked an address bouncing")
	}
	if n := s.count(`SELECT count(*) FROM tickets`); n != tickets0 {
		t.Errorf("the forged reports opened %d tickets", n-tickets0)
	}

	// The real report, back at the return path of the mail to Ann.
	s.sendSMTP("", []string{annAck.From}, dsnTo("real-1@mx.customer.test", annAck.From, "ann@customer.test"))
	s.eventually("ann marked bouncing", 30*time.Second, func() error {
		if !bouncing("ann@customer.test") {
			return fmt.Errorf("not marked")
		}
		return nil
	})
	if bouncing("bob@customer.test") {
		t.Error("ann's bounce marked bob")
	}

	// Her sign-in links are held back while her address bounces.
	base := "http://" + s.httpAddr
	askLink := func() {
		jar, _ := cookiejar.New(nil)
		portal := &webClient{base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
		portal.post(t, "/portal/signin", portal.get(t, "/portal/signin"), url.Values{"email": {"ann@customer.test"}})
	}
	signInMails := func() int {
		n := 0
		for _, m := range s.sink.to("ann@customer.test") {
			if strings.HasPrefix(m.Hdr.Get("Subject"), "Sign in") {
				n++
			}
		}
		return n
	}
	askLink()
	s.settle()
	if n := signInMails(); n != 0 {
		t.Fatalf("%d sign-in links mailed to a bouncing address", n)
	}

	// A person's reply to Ann goes all the same; the relay takes it, and
	// that clears her mark.
	web := signInWeb(t, base, "admin@example.com", adminPassword)
	annTicket, err := s.ticketBySubject("Production postgres refuses connections")
	if err != nil {
		t.Fatal(err)
	}
	path := "/tickets/" + strconv.FormatInt(annTicket.ID, 10)
	page := web.get(t, path)
	nonce := nonceRe.FindStringSubmatch(page)
	if nonce == nil {
		t.Fatalf("no nonce on the ticket page")
	}
	web.post(t, path+"/reply", page, url.Values{"body": {"Please check max_connections."}, "nonce": {nonce[1]}})
	s.eventually("the reply at the relay and ann's mark cleared", 60*time.Second, func() error {
		if bouncing("ann@customer.test") {
			return fmt.Errorf("still bouncing; %d mails to ann", len(s.sink.to("ann@customer.test")))
		}
		return nil
	})
	annMails := s.sink.to("ann@customer.test")
	reply := annMails[len(annMails)-1]
	if !strings.Contains(reply.Text, "max_connections") {
		t.Fatalf("the last mail to ann is not the reply: %s", reply.Hdr.Get("Subject"))
	}

	// A late copy of the first report is older news than that delivery.
	s.sendSMTP("", []string{annAck.From}, dsnTo("real-1-late@mx.customer.test", annAck.From, "ann@customer.test"))
	// The reply bounces too: marked again.
	s.sendSMTP("", []string{reply.From}, dsnTo("real-2@mx.customer.test", reply.From, "ann@customer.test"))
	s.eventually("ann marked again by the bounce of the reply", 30*time.Second, func() error {
		if !bouncing("ann@customer.test") {
			return fmt.Errorf("not marked")
		}
		return nil
	})
	if n := s.count(`SELECT count(*) FROM bounces b JOIN users u ON u.id = b.user_id WHERE u.email = 'ann@customer.test'`); n != 2 {
		t.Errorf("%d reports believed, want the first and the reply's", n)
	}

	// An admin clears the mark on the People page; the sign-in link goes.
	people := web.get(t, "/people")
	if !strings.Contains(people, "ann@customer.test") || !strings.Contains(people, "real-2@mx.customer.test") {
		t.Fatalf("the People page does not list ann with the report:\n%.2000s", people)
	}
	var annID int64
	if err := s.pool.QueryRow(t.Context(), `SELECT id FROM users WHERE email = 'ann@customer.test'`).Scan(&annID); err != nil {
		t.Fatal(err)
	}
	web.post(t, fmt.Sprintf("/people/%d/clear-bouncing", annID), people, url.Values{})
	if bouncing("ann@customer.test") {
		t.Fatal("the admin's clearing left the mark")
	}
	s.sendSMTP("", []string{reply.From}, dsnTo("real-2-replayed@mx.customer.test", reply.From, "ann@customer.test"))
	askLink()
	s.eventually("the sign-in link at the relay", 60*time.Second, func() error {
		if signInMails() != 1 {
			return fmt.Errorf("%d sign-in links", signInMails())
		}
		return nil
	})
	s.settle()
	if bouncing("ann@customer.test") {
		t.Error("a replayed report marked ann again after the admin cleared her")
	}

	// A moderator whose assignment bounced is passed over.
	alice := s.sink.to("alice@example.com")
	if len(alice) == 0 {
		t.Fatal("alice got no assignment")
	}
	s.sendSMTP("", []string{alice[0].From}, dsnTo("alice-1@mx.example.com", alice[0].From, "alice@example.com"))
	s.eventually("alice marked bouncing", 30*time.Second, func() error {
		if !bouncing("alice@example.com") {
			return fmt.Errorf("not marked")
		}
		return nil
	})
	s.sendSMTP("carl@customer.test", []string{supportAddr}, `From: Carl <carl@customer.test>
To: support@example.com
Subject: Postgres replica lags behind
Message-ID: <carl-1@customer.test>

Our postgres database replica lags an hour behind the primary.
`)
	s.eventually("carl's ticket triaged", 90*time.Second, func() error {
		r, err := s.ticketBySubject("Postgres replica lags behind")
		if err != nil || r.Assignee == "" {
			return fmt.Errorf("%+v %v", r, err)
		}
		if r.Assignee == "alice@example.com" {
			t.Errorf("a moderator whose address bounces was assigned")
		}
		return nil
	})

	// Every report, forged or not, is kept raw; no token is in the log.
	if n := s.count(`SELECT count(*) FROM raw_messages WHERE position('real-2-replayed@mx.customer.test' IN convert_from(data, 'UTF8')) > 0`); n != 1 {
		t.Error("the replayed report is not kept")
	}
	logs, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.sink.all() {
		for _, addr := range []string{m.From, addrOf(m.Hdr.Get("Reply-To"))} {
			for _, base := range []string{"bounces@example.com", supportAddr} {
				if tok, ok := signing.TokenFromAddress(base, addr); ok && strings.Contains(strings.ToLower(string(logs)), tok) {
					t.Fatalf("the token of %s is in ticketd's log", addr)
				}
			}
		}
	}
}
