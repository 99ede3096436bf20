package e2e

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ticketd/signing"
)

// TestWholeStack is the scenario of a working day: three customers write
// (two by SMTP, one into the IMAP mailbox); each ticket is triaged and
// assigned by skill; a moderator completes one by mail; an admin reassigns
// another on the web; an auto-responder's reply and a bounce arrive and
// change nothing; every expected mail reaches the relay, threaded.
func TestWholeStack(t *testing.T) {
	s := startStack(t, stackOptions{})

	s.ticketd(adminPassword+"\n", "user", "add", "--email", "admin@example.com", "--role", "admin", "--name", "Ada Admin", "--password-stdin")
	s.ticketd("", "user", "add", "--email", "alice@example.com", "--role", "moderator", "--name", "Alice", "--skills", "postgres,database")
	s.ticketd("", "user", "add", "--email", "bob@example.com", "--role", "moderator", "--name", "Bob", "--skills", "networking,vpn")
	if out := s.ticketd("", "user", "list"); !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "networking,vpn") {
		t.Fatalf("user list:\n%s", out)
	}

	// Three customers write.
	s.sendSMTP("carol@customer.test", []string{supportAddr}, `From: Carol <carol@customer.test>
To: Support <support@example.com>
Subject: Production postgres refuses connections
Message-ID: <carol-1@customer.test>
Date: Thu, 26 Nov 2026 09:00:00 +0000

Since 9am our production postgres database refuses every connection.
The app is down for all our users. What should we check?
`)
	s.sendSMTP("dave@customer.test", []string{supportAddr}, `From: Dave <dave@customer.test>
To: support@example.com
Cc: Frank <frank@customer.test>
Subject: VPN tunnel drops every hour
Message-ID: <dave-1@customer.test>
Date: Thu, 26 Nov 2026 09:05:00 +0000

Our site-to-site vpn tunnel drops every hour and the networking team
cannot find why. Could someone look at it this week?
`)
	s.appendIMAP(`From: Erin <erin@customer.test>
To: support@example.com
Subject: How do I restore a database backup?
Message-ID: <erin-1@customer.test>
Date: Thu, 26 Nov 2026 09:10:00 +0000

Hello, how do I restore a postgres database backup into a new server?
Thanks, Erin
`)

	want := map[string]string{
		"Production postgres refuses connections": "alice@example.com",
		"VPN tunnel drops every hour":             "bob@example.com",
		"How do I restore a database backup?":     "alice@example.com",
	}
	tk := map[string]ticketRow{}
	for subject, assignee := range want {
		s.eventually("ticket "+subject+" triaged and assigned", 90*time.Second, func() error {
			r, err := s.ticketBySubject(subject)
			if err != nil {
				return err
			}
			if r.Status != "in_progress" || r.Assignee != assignee {
				return fmt.Errorf("ticket %+v, want in_progress for %s", r, assignee)
			}
			tk[subject] = r
			return nil
		})
	}
	carolTicket := tk["Production postgres refuses connections"]
	daveTicket := tk["VPN tunnel drops every hour"]
	if carolTicket.Priority != "high" {
		t.Errorf("an outage in production has priority %s", carolTicket.Priority)
	}
	if n := s.count(`SELECT count(*) FROM ai_decisions WHERE provider = 'openai' AND error = ''`); n != 3 {
		t.Errorf("%d triage decisions by the LLM, want 3", n)
	}
	if n := s.count(`SELECT count(*) FROM raw_messages WHERE source = 'imap'`); n != 1 {
		t.Errorf("%d mails came in by IMAP, want 1", n)
	}
	s.settle()

	// Each requester got one acknowledgement, each moderator their assignments.
	for _, who := range []string{"carol@customer.test", "dave@customer.test", "erin@customer.test"} {
		got := s.sink.to(who)
		if len(got) != 1 || got[0].Hdr.Get("Auto-Submitted") != "auto-replied" {
			t.Fatalf("%s received %d mails (want one acknowledgement): %v", who, len(got), subjects(got))
		}
	}
	if got := s.sink.to("alice@example.com"); len(got) != 2 {
		t.Fatalf("alice received %d mails, want 2 assignments: %v", len(got), subjects(got))
	}
	if got := s.sink.to("bob@example.com"); len(got) != 1 {
		t.Fatalf("bob received %d mails, want 1 assignment: %v", len(got), subjects(got))
	}

	// Alice completes Carol's ticket by answering her assignment mail.
	assignment := mailAbout(t, s.sink.to("alice@example.com"), carolTicket.ID)
	replyTo := addrOf(assignment.Hdr.Get("Reply-To"))
	if _, ok := signing.TokenFromAddress(supportAddr, replyTo); !ok {
		t.Fatalf("assignment Reply-To %q is not a signed reply address", replyTo)
	}
	s.sendSMTP("alice@example.com", []string{replyTo}, fmt.Sprintf(`From: Alice <alice@example.com>
To: %s
Subject: Re: %s
Message-ID: <alice-1@example.com>
In-Reply-To: %s
References: %s
Date: Thu, 26 Nov 2026 10:00:00 +0000

status: completed

The connection pooler had run out of slots; I restarted it and raised the limit.

On Thu, 26 Nov 2026 at 09:01, Support wrote:
> Ticket #%d is assigned to you.
`, replyTo, assignment.Hdr.Get("Subject"), assignment.Hdr.Get("Message-Id"), assignment.Hdr.Get("Message-Id"), carolTicket.ID))
	s.eventually("carol's ticket completed", 60*time.Second, func() error {
		r, _ := s.ticketBySubject(carolTicket.Subject)
		if r.Status != "completed" {
			return fmt.Errorf("status %s", r.Status)
		}
		return nil
	})

	// An admin reassigns Dave's ticket to Alice on the web.
	web := signInWeb(t, "http://"+s.httpAddr, "admin@example.com", adminPassword)
	var aliceID int64
	if err := s.pool.QueryRow(t.Context(), `SELECT id FROM users WHERE email = 'alice@example.com'`).Scan(&aliceID); err != nil {
		t.Fatal(err)
	}
	page := web.get(t, fmt.Sprintf("/tickets/%d", daveTicket.ID))
	if !strings.Contains(page, daveTicket.Subject) {
		t.Fatalf("ticket page lacks its subject:\n%.500s", page)
	}
	web.post(t, fmt.Sprintf("/tickets/%d/assign", daveTicket.ID), page, url.Values{"assignee_id": {strconv.FormatInt(aliceID, 10)}})
	s.eventually("dave's ticket reassigned", 30*time.Second, func() error {
		r, _ := s.ticketBySubject(daveTicket.Subject)
		if r.Assignee != "alice@example.com" {
			return fmt.Errorf("assignee %s", r.Assignee)
		}
		return nil
	})
	s.settle()

	before := struct{ tickets, mails int }{s.count(`SELECT count(*) FROM tickets`), len(s.sink.all())}

	// Carol's auto-responder answers the closure mail; a bounce comes back
	// for Dave's acknowledgement. Neither opens a ticket or causes a mail.
	carolMails := s.sink.to("carol@customer.test")
	closure := carolMails[len(carolMails)-1]
	s.sendSMTP("carol@customer.test", []string{addrOf(closure.Hdr.Get("Reply-To"))}, fmt.Sprintf(`From: Carol <carol@customer.test>
To: %s
Subject: Automatic reply: %s
Message-ID: <carol-ooo@customer.test>
In-Reply-To: %s
Auto-Submitted: auto-replied
X-Autoreply: yes
Date: Thu, 26 Nov 2026 10:05:00 +0000

I am out of the office until Monday.
`, closure.Hdr.Get("Reply-To"), closure.Hdr.Get("Subject"), closure.Hdr.Get("Message-Id")))
	// The bounce comes back to the return path of ticketd's newest mail to
	// Dave, from the null sender, as delivery reports do.
	daveMails := s.sink.to("dave@customer.test")
	daveAck := daveMails[len(daveMails)-1]
	s.sendSMTP("", []string{daveAck.From}, fmt.Sprintf(`From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>
To: `+daveAck.From+`
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.customer.test>
Date: Thu, 26 Nov 2026 10:06:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

This is the mail system at host mx.customer.test.
I'm sorry to have to inform you that your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.test

Final-Recipient: rfc822; dave@customer.test
Original-Recipient: rfc822; dave@customer.test
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <dave@customer.test>: Recipient address rejected

--b1
Content-Type: text/rfc822-headers

From: Support <support@example.com>
To: dave@customer.test
Subject: %s
Message-ID: %s

--b1--
`, daveAck.Hdr.Get("Subject"), daveAck.Hdr.Get("Message-Id")))
	s.eventually("the auto-reply and the bounce stored", 30*time.Second, func() error {
		if n := s.count(`SELECT count(*) FROM raw_messages WHERE source = 'smtp'`); n != 5 {
			return fmt.Errorf("%d mails by SMTP, want 5", n)
		}
		return nil
	})
	s.settle()
	if n := s.count(`SELECT count(*) FROM tickets`); n != before.tickets {
		t.Errorf("automatic mail opened tickets: %d, was %d", n, before.tickets)
	}
	if n := len(s.sink.all()); n != before.mails {
		t.Errorf("automatic mail caused %d mails", n-before.mails)
	}
	if r, _ := s.ticketBySubject(carolTicket.Subject); r.Status != "completed" {
		t.Errorf("an auto-reply reopened carol's ticket: %s", r.Status)
	}
	if n := s.count(`SELECT count(*) FROM users WHERE email = 'dave@customer.test' AND bouncing_since IS NOT NULL`); n != 1 {
		t.Error("the bounce did not mark dave's address as bouncing")
	}
	if n := s.count(`SELECT count(*) FROM messages WHERE kind = 'system' AND auto_kind IN ('auto-reply', 'bounce')`); n != 2 {
		t.Errorf("%d system notes for the auto-reply and the bounce, want 2", n)
	}

	// Every mail is in its ticket's thread.
	carolMails = s.sink.to("carol@customer.test")
	if len(carolMails) != 3 {
		t.Fatalf("carol received %v, want acknowledgement, alice's answer and the closure", subjects(carolMails))
	}
	if !strings.Contains(carolMails[1].Text, "restarted it and raised the limit") || strings.Contains(carolMails[1].Text, "status: completed") {
		t.Errorf("alice's answer as carol received it:\n%s", carolMails[1].Text)
	}
	checkThread(t, carolMails, "<carol-1@customer.test>", carolTicket.ID)
	checkThread(t, s.sink.to("dave@customer.test"), "<dave-1@customer.test>", daveTicket.ID)
	frank := s.sink.to("frank@customer.test")
	if len(frank) != 0 {
		t.Errorf("the CC'd participant received automatic mail: %v", subjects(frank))
	}
	aliceMails := s.sink.to("alice@example.com")
	var receipt, reassigned bool
	for _, m := range aliceMails {
		if strings.Contains(m.Text, "completed") && strings.Contains(strings.ToLower(m.Text), "in_progress") ||
			strings.Contains(m.Text, "In-Progress → Completed") || strings.Contains(m.Text, "in_progress → completed") {
			receipt = true
		}
		if strings.Contains(m.Hdr.Get("Subject"), fmt.Sprintf("[#%d]", daveTicket.ID)) {
			reassigned = true
		}
	}
	if !receipt {
		t.Errorf("alice got no receipt for her command; her mails: %v", subjects(aliceMails))
	}
	if !reassigned {
		t.Errorf("alice got no assignment mail for the reassigned ticket; her mails: %v", subjects(aliceMails))
	}
	for _, m := range s.sink.all() {
		t.Logf("relay got: to %v %q (%s)", m.To, m.Hdr.Get("Subject"), m.Hdr.Get("Auto-Submitted"))
		for _, r := range m.To {
			if strings.Contains(strings.ToLower(r), "mailer-daemon") || strings.HasPrefix(r, "support") {
				t.Errorf("a mail went to %s", r)
			}
		}
	}
}

func subjects(ms []captured) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Hdr.Get("Subject"))
	}
	return out
}

func mailAbout(t *testing.T, ms []captured, ticketID int64) captured {
	t.Helper()
	tag := fmt.Sprintf("[#%d]", ticketID)
	for _, m := range ms {
		if strings.Contains(m.Hdr.Get("Subject"), tag) {
			return m
		}
	}
	t.Fatalf("no mail about ticket %d among %v", ticketID, subjects(ms))
	return captured{}
}

func addrOf(h string) string {
	if i := strings.LastIndexByte(h, '<'); i >= 0 {
		return strings.TrimSuffix(h[i+1:], ">")
	}
	return strings.TrimSpace(h)
}

// checkThread asserts that a requester's mails form one thread rooted at
// their opening mail: RFC 5322 3.6.4 References starting with the root,
// In-Reply-To among the thread, the subject tagged with the ticket.
func checkThread(t *testing.T, ms []captured, root string, ticketID int64) {
	t.Helper()
	seen := map[string]bool{root: true}
	for i, m := range ms {
		refs := ids(m.Hdr, "References")
		irt := ids(m.Hdr, "In-Reply-To")
		if len(refs) == 0 || refs[0] != root {
			t.Errorf("mail %d (%s): References %v do not start with %s", i, m.Hdr.Get("Subject"), refs, root)
		}
		if len(irt) != 1 || !seen[irt[0]] {
			t.Errorf("mail %d (%s): In-Reply-To %v is not a mail of the thread", i, m.Hdr.Get("Subject"), irt)
		}
		if !strings.Contains(m.Hdr.Get("Subject"), fmt.Sprintf("[#%d]", ticketID)) {
			t.Errorf("mail %d: subject %q lacks the ticket tag", i, m.Hdr.Get("Subject"))
		}
		for _, id := range ids(m.Hdr, "Message-Id") {
			seen[id] = true
		}
		for _, id := range refs {
			seen[id] = true
		}
	}
}

// webClient is a browser without JavaScript: cookies, forms, CSRF tokens.
type webClient struct {
	base string
	c    *http.Client
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func signInWeb(t *testing.T, base, email, password string) *webClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	w := &webClient{base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	page := w.get(t, "/signin")
	w.post(t, "/signin", page, url.Values{"email": {email}, "password": {password}})
	if home := w.get(t, "/tickets"); !strings.Contains(home, email) && !strings.Contains(home, "Sign out") {
		t.Fatalf("not signed in as %s:\n%.500s", email, home)
	}
	return w
}

func (w *webClient) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := w.c.Get(w.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d\n%.500s", path, resp.StatusCode, b)
	}
	return string(b)
}

// post submits a form with the CSRF token of the page it is on.
func (w *webClient) post(t *testing.T, path, page string, form url.Values) {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page before POST %s", path)
	}
	form.Set("csrf_token", html.UnescapeString(m[1]))
	req, _ := http.NewRequest(http.MethodPost, w.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", w.base)
	resp, err := w.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		t.Fatalf("POST %s: %d\n%.500s", path, resp.StatusCode, b)
	}
}
