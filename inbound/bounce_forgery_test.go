package inbound_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ticketd/inbound"
	"ticketd/signing"
	"ticketd/tickets"
)

// report is a delivery status notification (RFC 3464) about rcpt.
func report(id, rcpt string) []byte {
	return []byte("From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n" +
		"To: whoever@example.net\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <" + id + ">\r\n" +
		"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"dsn\"\r\n\r\n" +
		"--dsn\r\nContent-Type: text/plain\r\n\r\nI could not deliver your message to " + rcpt + ".\r\n" +
		"--dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n" +
		"Final-Recipient: rfc822; " + rcpt + "\r\nAction: failed\r\nStatus: 5.1.1\r\n--dsn--\r\n")
}

// bounceFixture is a requester to whom ticketd sent one mail, with its
// return path.
type bounceFixture struct {
	e        *env
	ann, bob tickets.User
	ticketID int64
	mailID   int64 // the mail to ann, sent
	bobMail  int64 // a mail to bob, sent
}

func newBounceFixture(t *testing.T) *bounceFixture {
	e := newEnv(t)
	f := &bounceFixture{e: e}
	r := e.deliver(mail{From: "Ann <ann@example.com>"}.bytes())
	f.ticketID = r.TicketID
	var err error
	if f.ann, err = e.st.UserByEmail(context.Background(), "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	f.bob = e.user("bob@example.com", tickets.RoleUser)
	f.mailID = f.sent("ann@example.com", time.Minute)
	f.bobMail = f.sent("bob@example.com", time.Minute)
	return f
}

// sent records a mail to addr that the relay accepted ago.
func (f *bounceFixture) sent(addr string, ago time.Duration) int64 {
	f.e.t.Helper()
	var id int64
	if err := f.e.pool.QueryRow(context.Background(), `INSERT INTO mail_outbox (ticket_id, kind, message_id, recipients, data,
		status, sent_at) VALUES ($1, 'acknowledgement', $2, $3, 'x', 'sent', now() - make_interval(secs => $4)) RETURNING id`,
		f.ticketID, fmt.Sprintf("sent-%d@ticketd.test", time.Now().UnixNano()), []string{addr}, ago.Seconds()).Scan(&id); err != nil {
		f.e.t.Fatal(err)
	}
	return id
}

func (f *bounceFixture) bouncing(u tickets.User) bool {
	f.e.t.Helper()
	got, err := f.e.st.User(context.Background(), u.ID)
	if err != nil {
		f.e.t.Fatal(err)
	}
	return got.BouncingSince != nil
}

// TestForgedBouncesMarkNobody: whatever looks like a bounce and did not
// come back to the return path of a mail ticketd sent, from the null
// sender, naming that mail's recipient, changes no address; each is kept.
func TestForgedBouncesMarkNobody(t *testing.T) {
	for _, tc := range []struct {
		name     string
		raw      func(f *bounceFixture) []byte
		src      func(f *bounceFixture) inbound.Source
		whyTrace string
	}{
		{
			name: "X-Failed-Recipients to the support address",
			raw: func(*bounceFixture) []byte {
				return mail{From: "Mailer <MAILER-DAEMON@evil.example>", Subject: "Mail delivery failed",
					Headers: []string{"X-Failed-Recipients: ann@example.com", "Auto-Submitted: auto-replied"}}.bytes()
			},
			whyTrace: "did not come back to the return path",
		},
		{
			name:     "a delivery report sent to the support address",
			raw:      func(*bounceFixture) []byte { return report("r1@mx.example.net", "ann@example.com") },
			whyTrace: "did not come back to the return path",
		},
		{
			name: "a report to a return path whose token was changed",
			raw:  func(*bounceFixture) []byte { return report("r2@mx.example.net", "ann@example.com") },
			src: func(f *bounceFixture) inbound.Source {
				rp := f.e.returnPath(f.ticketID, f.ann.ID, f.mailID)
				at := strings.IndexByte(rp, '@')
				b := []byte(rp)
				if b[at-1] == 'a' {
					b[at-1] = 'b'
				} else {
					b[at-1] = 'a'
				}
				return inbound.Source{Kind: "smtp", RcptTo: []string{string(b)}}
			},
			whyTrace: "is not valid",
		},
		{
			name: "a report to a return path made with another key",
			raw:  func(*bounceFixture) []byte { return report("r3@mx.example.net", "ann@example.com") },
			src: func(f *bounceFixture) inbound.Source {
				other, _ := signing.NewKeys("somebody else's secret key")
				tok := other.Sign(signing.Claims{Purpose: signing.PurposeBounce, UserID: f.ann.ID, MailID: f.mailID,
					Expires: time.Now().Add(time.Hour)})
				return inbound.Source{Kind: "smtp", RcptTo: []string{signing.ReturnPath(signing.BounceMailbox(support), tok)}}
			},
			whyTrace: "is not valid",
		},
		{
			name: "a reply address used as a return path",
			raw:  func(*bounceFixture) []byte { return report("r4@mx.example.net", "ann@example.com") },
			src: func(f *bounceFixture) inbound.Source {
				tok := f.e.keys.Sign(signing.Claims{Purpose: signing.PurposeReply, TicketID: f.ticketID, UserID: f.ann.ID,
					Expires: time.Now().Add(time.Hour)})
				return inbound.Source{Kind: "smtp", RcptTo: []string{signing.ReturnPath(signing.BounceMailbox(support), tok)}}
			},
			whyTrace: "is not valid",
		},
		{
			name: "an expired return path",
			raw:  func(*bounceFixture) []byte { return report("r5@mx.example.net", "ann@example.com") },
			src: func(f *bounceFixture) inbound.Source {
				tok := f.e.keys.Sign(signing.Claims{Purpose: signing.PurposeBounce, UserID: f.ann.ID, MailID: f.mailID,
					Expires: time.Now().Add(-time.Minute)})
				return inbound.Source{Kind: "smtp", RcptTo: []string{signing.ReturnPath(signing.BounceMailbox(support), tok)}}
			},
			whyTrace: "expired",
		},
		{
			// Bob got a mail, so he knows its return path: he cannot
			// silence Ann with it.
			name: "the return path of a mail to bob, naming ann",
			raw:  func(*bounceFixture) []byte { return report("r6@mx.example.net", "ann@example.com") },
			src: func(f *bounceFixture) inbound.Source {
				return inbound.Source{Kind: "smtp", RcptTo: []string{f.e.returnPath(f.ticketID, f.bob.ID, f.bobMail)}}
			},
			whyTrace: "the report names ann@example.com",
		},
		{
			name: "a report from a real sender rather than the null reverse-path",
			raw:  func(*bounceFixture) []byte { return report("r7@mx.example.net", "ann@example.com") },
			src: func(f *bounceFixture) inbound.Source {
				return inbound.Source{Kind: "smtp", MailFrom: "mallory@evil.example",
					RcptTo: []string{f.e.returnPath(f.ticketID, f.ann.ID, f.mailID)}}
			},
			whyTrace: "null reverse-path",
		},
		{
			name: "a report of the web form",
			raw: func(f *bounceFixture) []byte {
				return []byte(strings.Replace(string(report("r8@mx.example.net", "ann@example.com")),
					"To: whoever@example.net", "To: "+f.e.returnPath(f.ticketID, f.ann.ID, f.mailID), 1))
			},
			src:      func(*bounceFixture) inbound.Source { return inbound.Source{Kind: "web"} },
			whyTrace: "not by the web",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newBounceFixture(t)
			raw := tc.raw(f)
			src := inbound.Source{Kind: "smtp", RcptTo: []string{support}}
			if tc.src != nil {
				src = tc.src(f)
			}
			res, err := f.e.in.Deliver(context.Background(), raw, src)
			if err != nil {
				t.Fatal(err)
			}
			if f.bouncing(f.ann) || f.bouncing(f.bob) {
				t.Fatal("a forged bounce marked an address bouncing")
			}
			if n := f.e.count(`SELECT count(*) FROM bounces`); n != 0 {
				t.Errorf("%d bounces recorded", n)
			}
			// Nothing lost: the raw mail is stored and classified, and no
			// ticket is opened for it.
			if n := f.e.count(`SELECT count(*) FROM raw_messages WHERE data = $1`, raw); n != 1 {
				t.Errorf("the raw report is stored %d times", n)
			}
			if res.TicketID != f.ticketID && !res.Quarantined {
				t.Errorf("the report opened ticket %d", res.TicketID)
			}
			var marked string
			if err := f.e.pool.QueryRow(context.Background(), `SELECT f->>'value' FROM mail_traces tr,
				jsonb_array_elements(tr.steps) s, jsonb_array_elements(s->'fields') f
				WHERE s->>'step' = 'classified' AND f->>'key' = 'marked_bouncing'`).Scan(&marked); err != nil {
				t.Fatalf("trace: %v", err)
			}
			if !strings.HasPrefix(marked, "none: ") || !strings.Contains(marked, tc.whyTrace) {
				t.Errorf("trace says marked_bouncing %q, want why: %q", marked, tc.whyTrace)
			}
		})
	}
}

// TestReturnedBounceIsBelieved: a report at the return path of the mail to
// ann, from the null sender, naming ann, marks ann (and nobody else), by
// SMTP or by IMAP, and lands on the mail's ticket.
func TestReturnedBounceIsBelieved(t *testing.T) {
	for _, kind := range []string{"smtp", "imap"} {
		t.Run(kind, func(t *testing.T) {
			f := newBounceFixture(t)
			rp := f.e.returnPath(f.ticketID, f.ann.ID, f.mailID)
			raw := []byte(strings.Replace(string(report("ok@mx.example.net", "ann@example.com")),
				"To: whoever@example.net", "To: "+rp, 1))
			src := inbound.Source{Kind: "smtp", MailFrom: "", RcptTo: []string{rp}}
			if kind == "imap" {
				raw = append([]byte("Return-Path: <>\r\n"), raw...)
				src = inbound.Source{Kind: "imap", Mailbox: "imap://u@h/INBOX", UID: 7}
			}
			res := f.e.deliver(raw, src)
			if res.TicketID != f.ticketID || res.Rule != inbound.RuleReturnPath {
				t.Errorf("result %+v, want a system note on ticket %d by its return path", res, f.ticketID)
			}
			if !f.bouncing(f.ann) || f.bouncing(f.bob) {
				t.Fatalf("ann bouncing %v, bob bouncing %v; want ann only", f.bouncing(f.ann), f.bouncing(f.bob))
			}
			var detail string
			var mailID int64
			if err := f.e.pool.QueryRow(context.Background(), `SELECT detail, mail_id FROM bounces WHERE user_id = $1`,
				f.ann.ID).Scan(&detail, &mailID); err != nil {
				t.Fatal(err)
			}
			if mailID != f.mailID || !strings.Contains(detail, "ok@mx.example.net") {
				t.Errorf("bounce recorded for mail %d with %q", mailID, detail)
			}
		})
	}
}

// TestBounceMarkClears: a later delivery clears the mark, and so does an
// admin; a report about a mail older than the clearing, replayed or late,
// is not believed again, while a report about a newer mail is.
func TestBounceMarkClears(t *testing.T) {
	f := newBounceFixture(t)
	ctx := context.Background()
	bounce := func(id string, mailID int64) {
		t.Helper()
		rp := f.e.returnPath(f.ticketID, f.ann.ID, mailID)
		f.e.deliver(report(id, "ann@example.com"), inbound.Source{Kind: "smtp", RcptTo: []string{rp}})
	}
	bounce("first@mx.example.net", f.mailID)
	if !f.bouncing(f.ann) {
		t.Fatal("the returned report did not mark ann")
	}

	// A later mail to ann, accepted by the relay, clears the mark.
	later := f.sent("ann@example.com", 0)
	if _, err := f.e.pool.Exec(ctx, `UPDATE mail_outbox SET status = 'pending', attempts = 1, sent_at = NULL WHERE id = $1`, later); err != nil {
		t.Fatal(err)
	}
	ok, cleared, err := f.e.st.MarkMailSent(ctx, later, 1)
	if err != nil || !ok || len(cleared) != 1 || cleared[0] != "ann@example.com" {
		t.Fatalf("MarkMailSent = %v, %v, %v; want ann cleared", ok, cleared, err)
	}
	if f.bouncing(f.ann) {
		t.Fatal("a later delivery did not clear the mark")
	}
	// The first report again, or a late one about the first mail: older
	// news than the delivery.
	bounce("first-again@mx.example.net", f.mailID)
	if f.bouncing(f.ann) {
		t.Fatal("a report about a mail older than a later delivery marked ann again")
	}

	// The later mail bounces too: marked again.
	bounce("second@mx.example.net", later)
	if !f.bouncing(f.ann) {
		t.Fatal("a report about the newest mail did not mark ann")
	}
	// An admin clears it; a replay of that report is then old news.
	admin := f.e.user("admin@staff.example", tickets.RoleAdmin)
	if ok, err := f.e.st.ClearBouncing(ctx, f.ann.ID, tickets.Actor{UserID: &admin.ID, Channel: tickets.ChannelWeb}); err != nil || !ok {
		t.Fatalf("ClearBouncing = %v, %v", ok, err)
	}
	if f.bouncing(f.ann) {
		t.Fatal("the admin's clearing did not clear the mark")
	}
	bounce("second-replayed@mx.example.net", later)
	if f.bouncing(f.ann) {
		t.Fatal("a replayed report marked ann again after an admin cleared her")
	}
	var open, closed int
	if err := f.e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE cleared_at IS NULL), count(*) FILTER (WHERE cleared_by = $1)
		FROM bounces WHERE user_id = $2`, admin.ID, f.ann.ID).Scan(&open, &closed); err != nil {
		t.Fatal(err)
	}
	if open != 0 || closed != 1 {
		t.Errorf("%d reports open, %d cleared by the admin; want 0 and 1", open, closed)
	}
}

// TestMailToReturnPathOpensNothing: a person's mail sent only to a return
// path is held, not opened as a ticket, and answered by nothing.
func TestMailToReturnPathOpensNothing(t *testing.T) {
	f := newBounceFixture(t)
	before := f.e.count(`SELECT count(*) FROM tickets`)
	rp := f.e.returnPath(f.ticketID, f.ann.ID, f.mailID)
	res := f.e.deliver(mail{From: "Carl <carl@example.org>", To: rp, Subject: "Hello?"}.bytes(),
		inbound.Source{Kind: "smtp", MailFrom: "carl@example.org", RcptTo: []string{rp}})
	if !res.Quarantined || f.e.count(`SELECT count(*) FROM tickets`) != before {
		t.Fatalf("result %+v: mail to a return path opened a ticket", res)
	}
	if n := len(f.e.outbox()); n != 2 {
		t.Errorf("%d mails queued, want only the two sent before", n)
	}
	// Mail from a return path is ticketd's own coming back.
	res = f.e.deliver(mail{From: rp, Subject: "loop"}.bytes())
	if !res.Quarantined {
		t.Errorf("mail from a return path: %+v", res)
	}
}
