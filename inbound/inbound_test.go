package inbound_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"ticketd/inbound"
	"ticketd/tickets"
)

func TestNewMailOpensTicket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	raw := mail{
		From:      `"Ann Example" <Ann@Example.com>`,
		Cc:        "Bob <bob@example.com>, help@ticketd.test, Support+x@ticketd.test, ann@example.com",
		Subject:   "Printer on fire",
		MessageID: "<open-1@example.com>",
		Body:      "Hello,\n\nthe printer on floor 3 is on fire.\n\n-- \nAnn Example\nACME\n",
	}.bytes()
	res := e.deliver(raw)
	if res.TicketID == 0 || res.MessageID == 0 || res.Duplicate || res.Quarantined || res.Rule != inbound.RuleNew {
		t.Fatalf("result %+v", res)
	}
	tk := e.ticket(res.TicketID)
	req, err := e.st.User(ctx, tk.RequesterID)
	if err != nil {
		t.Fatal(err)
	}
	got := struct{ Subject, Description, Status, AutoKind, Requester, Name string }{
		tk.Subject, tk.Description, string(tk.Status), tk.AutoKind, req.Email, req.Name}
	want := struct{ Subject, Description, Status, AutoKind, Requester, Name string }{
		"Printer on fire", "Hello,\n\nthe printer on floor 3 is on fire.", "todo", "none", "ann@example.com", "Ann Example"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ticket (-want +got):\n%s", diff)
	}

	parts, err := e.st.Participants(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, p := range parts {
		emails = append(emails, p.Email)
	}
	if diff := cmp.Diff([]string{"ann@example.com", "bob@example.com"}, emails); diff != "" {
		t.Errorf("participants: only the requester and Bob, never ticketd's own addresses (-want +got):\n%s", diff)
	}

	m := e.message(res.MessageID)
	if m.Kind != tickets.KindOpening || m.Direction != tickets.Inbound || m.MessageID != "open-1@example.com" ||
		m.ThreadRule != "new" || m.Internal || *m.AuthorID != req.ID || m.Signature == "" ||
		m.ReplyText != "Hello,\n\nthe printer on floor 3 is on fire." || !strings.Contains(m.TextBody, "ACME") {
		t.Errorf("message %+v", m)
	}
	var stored []byte
	if err := e.pool.QueryRow(ctx, `SELECT data FROM raw_messages WHERE id = $1`, *m.RawMessageID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, raw) {
		t.Error("raw message differs from what arrived")
	}
	if diff := cmp.Diff([]string{fmt.Sprintf("ticket.created %d", tk.ID)}, e.events()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	var data map[string]any
	var raw2 []byte
	if err := e.pool.QueryRow(ctx, `SELECT data FROM event_outbox`).Scan(&raw2); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw2, &data); err != nil || data["ticket_id"] != float64(tk.ID) {
		t.Errorf("event data %s", raw2)
	}
	trail, err := e.st.AuditTrail(ctx, tk.ID)
	if err != nil || len(trail) != 1 || trail[0].Action != "create" || trail[0].Channel != tickets.ChannelMail {
		t.Errorf("audit trail %+v, %v", trail, err)
	}
	if n := len(e.outbox()); n != 0 {
		t.Errorf("intake queued %d mails for a new ticket; the workflows answer it", n)
	}
}

func TestAttachmentsAndLimits(t *testing.T) {
	e := newEnv(t, func(o *inbound.Options) { o.MaxAttachmentBytes = 10 })
	raw := mail{
		Headers: []string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="b"`},
		Body: "--b\nContent-Type: text/plain\n\nSee the files.\n" +
			"--b\nContent-Type: text/plain; name=small.txt\nContent-Disposition: attachment; filename=small.txt\n\nsmall\n" +
			"--b\nContent-Type: application/octet-stream; name=big.bin\nContent-Disposition: attachment; filename=big.bin\nContent-Transfer-Encoding: base64\n\n" +
			"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n--b--\n",
	}.bytes()
	res := e.deliver(raw)
	rows, err := e.pool.Query(context.Background(), `SELECT filename, size, data IS NOT NULL, octet_length(sha256)
		FROM attachments WHERE message_id = $1 ORDER BY id`, res.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	type att struct {
		Name    string
		Size    int64
		HasData bool
		HashLen int
	}
	var got []att
	for rows.Next() {
		var a att
		if err := rows.Scan(&a.Name, &a.Size, &a.HasData, &a.HashLen); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	want := []att{{"small.txt", 5, true, 32}, {"big.bin", 32, false, 32}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attachments: content kept under the limit only (-want +got):\n%s", diff)
	}
}

// TestLargeMail: a mail and an attachment large enough to be sent in
// statements of their own are stored byte for byte, and the same bytes
// again are a duplicate.
func TestLargeMail(t *testing.T) {
	e := newEnv(t)
	data := make([]byte, 600<<10)
	for i := range data {
		data[i] = byte(i*7 + i/300)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	var body strings.Builder
	body.WriteString("--b\nContent-Type: text/plain\n\nThe log is attached.\n" +
		"--b\nContent-Type: application/octet-stream; name=log.bin\nContent-Disposition: attachment; filename=log.bin\nContent-Transfer-Encoding: base64\n\n")
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\n--b--\n")
	raw := mail{Headers: []string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="b"`}, Body: body.String()}.bytes()
	res := e.deliver(raw)
	ctx := context.Background()
	var stored, att, attSum []byte
	if err := e.pool.QueryRow(ctx, `SELECT r.data, a.data, a.sha256 FROM messages m
		JOIN raw_messages r ON r.id = m.raw_message_id JOIN attachments a ON a.message_id = m.id
		WHERE m.id = $1`, res.MessageID).Scan(&stored, &att, &attSum); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, raw) {
		t.Errorf("raw message of %d bytes stored as %d bytes", len(raw), len(stored))
	}
	if sum := sha256.Sum256(data); !bytes.Equal(att, data) || !bytes.Equal(attSum, sum[:]) {
		t.Errorf("attachment of %d bytes stored as %d bytes", len(data), len(att))
	}
	if again := e.deliver(raw); !again.Duplicate || again.MessageID != res.MessageID {
		t.Errorf("the same bytes again: %+v", again)
	}

	// A long text: the ticket's description, the message's texts.
	line := "2026-03-02 10:00:00 printer3 error 0x7f: paper jam in tray 2, retrying\n"
	text := strings.Repeat(line, (300<<10)/len(line))
	res = e.deliver(mail{Cc: "bob@example.com", References: "<elsewhere@example.com>", Body: text}.bytes())
	var desc, textBody, reply string
	var refs, cc []string
	if err := e.pool.QueryRow(ctx, `SELECT t.description, m.text_body, m.reply_text, m.refs, m.cc_addresses
		FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.id = $1`, res.MessageID).Scan(&desc, &textBody, &reply, &refs, &cc); err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(text)
	if strings.TrimSpace(desc) != want || strings.TrimSpace(textBody) != want || strings.TrimSpace(reply) != want {
		t.Errorf("texts of %d bytes stored as %d, %d and %d bytes", len(want), len(desc), len(textBody), len(reply))
	}
	if diff := cmp.Diff([]string{"elsewhere@example.com"}, refs); diff != "" {
		t.Errorf("refs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bob@example.com"}, cc); diff != "" {
		t.Errorf("cc (-want +got):\n%s", diff)
	}
}

func TestDuplicates(t *testing.T) {
	e := newEnv(t)
	first := mail{From: "ann@example.com", MessageID: "<same@example.com>", Body: "first"}
	raw := first.bytes()
	r1 := e.deliver(raw)

	// The same bytes again, by SMTP and by IMAP.
	for _, src := range []inbound.Source{
		{Kind: "smtp", MailFrom: "ann@example.com", RcptTo: []string{support}},
		{Kind: "imap", Mailbox: "imap://u@h/INBOX", UID: 7},
	} {
		r := e.deliver(raw, src)
		if diff := cmp.Diff(inbound.Result{TicketID: r1.TicketID, MessageID: r1.MessageID, Duplicate: true, Rule: "new"}, r); diff != "" {
			t.Errorf("same bytes by %s (-want +got):\n%s", src.Kind, diff)
		}
	}
	// Resent with other bytes (another relay added a header) and the same
	// Message-ID and sender: the same mail.
	resent := append([]byte("Received: from relay2.example.com\r\n"), raw...)
	if r := e.deliver(resent); !r.Duplicate || r.TicketID != r1.TicketID {
		t.Errorf("resend with the same Message-ID: %+v", r)
	}
	if n := e.count(`SELECT count(*) FROM raw_messages`); n != 1 {
		t.Errorf("%d raw messages, want 1", n)
	}

	// Another sender reusing the Message-ID is a different mail: kept, under
	// an id of its own, with the original header in the raw bytes.
	other := mail{From: "mallory@example.org", MessageID: "<same@example.com>", Body: "not ann"}.bytes()
	r2 := e.deliver(other)
	if r2.Duplicate || r2.TicketID == r1.TicketID {
		t.Fatalf("a different sender's mail with a reused Message-ID: %+v", r2)
	}
	m2 := e.message(r2.MessageID)
	if m2.MessageID == "same@example.com" || !strings.HasSuffix(m2.MessageID, "same@example.com") {
		t.Errorf("stored Message-ID %q: want a synthetic id of its own", m2.MessageID)
	}
	if m1 := e.message(r1.MessageID); m1.MessageID != "same@example.com" || m1.ReplyText != "first" {
		t.Errorf("the first mail was changed: %+v", m1)
	}
	var stored []byte
	if err := e.pool.QueryRow(context.Background(), `SELECT data FROM raw_messages WHERE id = $1`, *m2.RawMessageID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(stored, []byte("Message-ID: <same@example.com>")) {
		t.Error("raw bytes lost the Message-ID header")
	}
	// And that sender's own resend is a duplicate of their mail.
	if r := e.deliver(append([]byte("X-Resent: yes\r\n"), other...)); !r.Duplicate || r.MessageID != r2.MessageID {
		t.Errorf("resend by the second sender: %+v, want duplicate of %+v", r, r2)
	}
	if n := e.count(`SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets, want 2", n)
	}
	if n := e.count(`SELECT count(*) FROM event_outbox`); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

func TestMailWithoutMessageID(t *testing.T) {
	e := newEnv(t)
	raw := []byte("From: ann@example.com\r\nTo: support@ticketd.test\r\nSubject: no id\r\n\r\nhello\r\n")
	r1 := e.deliver(raw)
	r2 := e.deliver(raw)
	if r1.TicketID == 0 || !r2.Duplicate || r2.TicketID != r1.TicketID {
		t.Fatalf("first %+v, second %+v", r1, r2)
	}
	if id := e.message(r1.MessageID).MessageID; !strings.HasSuffix(id, "@ticketd.invalid") {
		t.Errorf("stored Message-ID %q", id)
	}
}

// TestOverlongMessageID: a Message-ID longer than a header line may be is
// no index's key; the mail is stored as one without a Message-ID, and the
// same bytes again are a duplicate.
func TestOverlongMessageID(t *testing.T) {
	e := newEnv(t)
	raw := mail{From: "ann@example.com", MessageID: "<" + strings.Repeat("7f", 2000) + "@example.com>"}.bytes()
	r1 := e.deliver(raw)
	r2 := e.deliver(raw)
	if r1.TicketID == 0 || !r2.Duplicate || r2.TicketID != r1.TicketID {
		t.Fatalf("first %+v, second %+v", r1, r2)
	}
	if id := e.message(r1.MessageID).MessageID; !strings.HasPrefix(id, "td-") || !strings.HasSuffix(id, "@ticketd.invalid") {
		t.Errorf("stored Message-ID %q", id)
	}
}

// TestHugeSubject: a subject of over a megabyte (hostile or broken mail)
// is cut on the ticket, kept whole in the message, and the ticket takes
// changes after: each builds its search document, which PostgreSQL caps
// at 1 MB.
func TestHugeSubject(t *testing.T) {
	s := newStaffEnv(t)
	var subject strings.Builder
	for i := 0; subject.Len() < 1_300_000; i++ {
		if i > 0 && i%300 == 0 {
			subject.WriteString("\r\n")
		}
		fmt.Fprintf(&subject, " w%x", i)
	}
	r := s.deliver(mail{From: "ann@example.com", MessageID: "<huge@example.com>", Subject: "x" + subject.String()}.bytes())
	tk := s.env.ticket(r.TicketID)
	if n := utf8.RuneCountInString(tk.Subject); n != tickets.MaxSubject || !strings.HasSuffix(tk.Subject, "…") {
		t.Errorf("ticket subject of %d characters ending %q, want %d ending …", n, tk.Subject[len(tk.Subject)-10:], tickets.MaxSubject)
	}
	if n := len(s.message(r.MessageID).Subject); n < 1_000_000 {
		t.Errorf("the message kept %d bytes of the subject, want it whole", n)
	}
	if _, err := s.pool.Exec(context.Background(), `UPDATE tickets SET subject = subject || $2 WHERE id = $1`,
		r.TicketID, subject.String()); err != nil {
		t.Fatalf("a ticket with a huge subject from before the bound: %v", err)
	}
	to := s.replyAddress(r.TicketID, s.mod.ID, time.Now().Add(time.Hour))
	s.deliver(mail{From: "mod@staff.example", To: to, Body: "priority: high\n\nLooking into it.\n"}.bytes())
	if got := s.env.ticket(r.TicketID).Priority; got != tickets.PriorityHigh {
		t.Errorf("priority %s after the moderator's command", got)
	}
}

func TestThreading(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	open := func(from, id string) inbound.Result {
		return e.deliver(mail{From: from, MessageID: "<" + id + ">", Subject: "Question " + id}.bytes())
	}
	a := open("ann@example.com", "a@example.com")
	b := open("bea@example.com", "b@example.com")
	ann, _ := e.st.UserByEmail(ctx, "ann@example.com")
	// A mail ticketd sent in ticket A's thread.
	if _, err := e.pool.Exec(ctx, `INSERT INTO mail_outbox (ticket_id, kind, message_id, recipients, data)
		VALUES ($1, 'acknowledgement', 'ack-a@ticketd.test', '{ann@example.com}', 'x')`, a.TicketID); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(24 * time.Hour)
	for _, tc := range []struct {
		name       string
		mail       mail
		rcpt       []string
		wantTicket int64 // 0: a new ticket
		wantRule   string
	}{
		{"signed reply address", mail{From: "ann@example.com", To: e.replyAddress(a.TicketID, ann.ID, future), Subject: "Re: anything"},
			nil, a.TicketID, "reply-address"},
		{"signed reply address only in the envelope", mail{From: "ann@example.com", Subject: "Re: anything"},
			[]string{e.replyAddress(a.TicketID, ann.ID, future)}, a.TicketID, "reply-address"},
		{"in-reply-to a received mail", mail{From: "ann@example.com", InReplyTo: "<a@example.com>"}, nil, a.TicketID, "in-reply-to"},
		{"in-reply-to a sent mail", mail{From: "ann@example.com", InReplyTo: "<ack-a@ticketd.test>"}, nil, a.TicketID, "in-reply-to"},
		{"references", mail{From: "ann@example.com", InReplyTo: "<unknown@x>", References: "<zzz@x> <a@example.com> <unknown@x>"}, nil, a.TicketID, "references"},
		{"a reply address for another ticket beats References", mail{From: "ann@example.com", To: e.replyAddress(b.TicketID, ann.ID, future),
			InReplyTo: "<a@example.com>", References: "<a@example.com>"}, nil, b.TicketID, "reply-address"},
		{"an expired reply address still names its ticket", mail{From: "ann@example.com", To: e.replyAddress(b.TicketID, ann.ID, time.Now().Add(-time.Hour))},
			nil, b.TicketID, "reply-address"},
		{"a tampered reply address is ignored", mail{From: "ann@example.com", To: tamper(e.replyAddress(b.TicketID, ann.ID, future)),
			InReplyTo: "<a@example.com>"}, nil, a.TicketID, "in-reply-to"},
		{"subject tag from the requester", mail{From: "ann@example.com", Subject: fmt.Sprintf("Re: [#%d] Question", a.TicketID)}, nil, a.TicketID, "subject-tag"},
		{"subject tag from a stranger opens a new ticket", mail{From: "eve@example.net", Subject: fmt.Sprintf("Re: [#%d] Question", a.TicketID)}, nil, 0, "new"},
		{"nothing known", mail{From: "ann@example.com", InReplyTo: "<nobody@x>"}, nil, 0, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := inbound.Source{Kind: "smtp", MailFrom: "ann@example.com", RcptTo: append([]string{support}, tc.rcpt...)}
			r := e.deliver(tc.mail.bytes(), src)
			if r.Rule != tc.wantRule {
				t.Errorf("rule %q, want %q", r.Rule, tc.wantRule)
			}
			if tc.wantTicket == 0 {
				if r.TicketID == a.TicketID || r.TicketID == b.TicketID {
					t.Errorf("threaded into ticket %d, want a new ticket", r.TicketID)
				}
				return
			}
			if r.TicketID != tc.wantTicket {
				t.Errorf("ticket %d, want %d", r.TicketID, tc.wantTicket)
			}
			m := e.message(r.MessageID)
			if m.Kind != tickets.KindReply || m.ThreadRule != tc.wantRule {
				t.Errorf("message kind %s rule %s", m.Kind, m.ThreadRule)
			}
		})
	}
}

// tamper changes one character of the token in a reply address.
func tamper(addr string) string {
	i := strings.IndexByte(addr, '@') - 3
	c := byte('a')
	if addr[i] == 'a' {
		c = 'b'
	}
	return addr[:i] + string(c) + addr[i+1:]
}

func TestReplyEvents(t *testing.T) {
	e := newEnv(t)
	a := e.deliver(mail{From: "ann@example.com", MessageID: "<a@example.com>"}.bytes())
	r := e.deliver(mail{From: "ann@example.com", InReplyTo: "<a@example.com>", Body: "status: completed\nAny news?"}.bytes())
	if r.TicketID != a.TicketID {
		t.Fatalf("reply went to %d", r.TicketID)
	}
	want := []string{fmt.Sprintf("ticket.created %d", a.TicketID), fmt.Sprintf("ticket.replied %d", a.TicketID)}
	if diff := cmp.Diff(want, e.events()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// A requester's command lines are text: kept, not run, not answered.
	if m := e.message(r.MessageID); m.ReplyText != "status: completed\nAny news?" {
		t.Errorf("reply text %q", m.ReplyText)
	}
	if s := e.ticket(a.TicketID).Status; s != tickets.StatusTodo {
		t.Errorf("a requester's command changed the status to %s", s)
	}
	if n := len(e.outbox()); n != 0 {
		t.Errorf("%d mails queued", n)
	}
}

func TestReopen(t *testing.T) {
	for _, tc := range []struct {
		name       string
		after      time.Duration
		clockAhead time.Duration
		wantLinked bool
	}{
		{"always reopen", 0, 400 * 24 * time.Hour, false},
		{"reopen within the window", 7 * 24 * time.Hour, 24 * time.Hour, false},
		{"new linked ticket after the window", 7 * 24 * time.Hour, 8 * 24 * time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *inbound.Options) {
				o.Reopen.NewTicketAfter = tc.after
				o.Now = func() time.Time { return time.Now().Add(tc.clockAhead) }
			})
			ctx := context.Background()
			a := e.deliver(mail{From: "ann@example.com", Cc: "bob@example.com", MessageID: "<a@example.com>"}.bytes())
			if err := e.st.InTx(ctx, func(st *tickets.Store) error {
				_, err := st.SetStatus(ctx, a.TicketID, tickets.StatusCompleted, tickets.Actor{Channel: tickets.ChannelSystem})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			// Bob, copied on the opening mail, answers.
			r := e.deliver(mail{From: "bob@example.com", InReplyTo: "<a@example.com>", Body: "It broke again."}.bytes())
			old := e.ticket(a.TicketID)
			if tc.wantLinked {
				if r.TicketID == a.TicketID || r.Rule != "linked" {
					t.Fatalf("result %+v, want a new linked ticket", r)
				}
				nt := e.ticket(r.TicketID)
				if nt.LinkedTicketID == nil || *nt.LinkedTicketID != a.TicketID || nt.Description != "It broke again." {
					t.Errorf("linked ticket %+v", nt)
				}
				if old.Status != tickets.StatusCompleted {
					t.Errorf("old ticket %s, want it left completed", old.Status)
				}
				if m := e.message(r.MessageID); m.Kind != tickets.KindOpening {
					t.Errorf("message kind %s", m.Kind)
				}
				return
			}
			if r.TicketID != a.TicketID || old.Status != tickets.StatusTodo || old.CompletedAt != nil {
				t.Errorf("result %+v, ticket %s completed_at %v: want reopened", r, old.Status, old.CompletedAt)
			}
			if n := e.count(`SELECT count(*) FROM event_outbox WHERE name = 'ticket.status_changed' AND data->>'to' = 'todo'`); n != 1 {
				t.Errorf("%d reopening events", n)
			}
		})
	}
}

func TestStrangerDoesNotReopen(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.deliver(mail{From: "ann@example.com", MessageID: "<a@example.com>"}.bytes())
	if err := e.st.InTx(ctx, func(st *tickets.Store) error {
		_, err := st.SetStatus(ctx, a.TicketID, tickets.StatusCompleted, tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// A stranger answering a mail ticketd sent (forwarded to them) joins
	// the ticket, and reopens nothing.
	if _, err := e.st.InsertMessage(ctx, tickets.Message{TicketID: a.TicketID, Direction: tickets.Outbound,
		Kind: tickets.KindReply, MessageID: "done-1@ticketd.test", FromAddress: support, Subject: "Done"}); err != nil {
		t.Fatal(err)
	}
	r := e.deliver(mail{From: "eve@example.net", InReplyTo: "<done-1@ticketd.test>"}.bytes())
	if r.TicketID != a.TicketID || r.Rule != inbound.RuleInReplyTo || e.ticket(a.TicketID).Status != tickets.StatusCompleted {
		t.Errorf("a non-participant's reply to ticketd's mail: %+v, status %s", r, e.ticket(a.TicketID).Status)
	}
}

// TestPlantedMessageID: the Message-ID of a mail ticketd received was chosen
// by its sender, who may have sent it to others first (a phishing mail,
// then the same Message-ID to support@). Someone not on that ticket who
// answers it opens a ticket of their own: their words and the moderator's
// answer do not go to the sender who chose the id.
func TestPlantedMessageID(t *testing.T) {
	e, _ := newEnvWithNotifier(t)
	mod := e.user("mod@staff.example", tickets.RoleModerator)
	planted := e.deliver(mail{From: "mallory@evil.example", MessageID: "<phish-1@evil.example>", Subject: "Your account is locked"}.bytes())
	victim := e.deliver(mail{From: "victim@corp.example", InReplyTo: "<phish-1@evil.example>", References: "<phish-1@evil.example>",
		Subject: "Re: Your account is locked", Body: "Is this real? My customer number is 4711."}.bytes())
	if victim.TicketID == planted.TicketID || victim.Rule != inbound.RuleNew {
		t.Fatalf("the victim's mail joined ticket #%d by %s; the planted ticket is #%d", victim.TicketID, victim.Rule, planted.TicketID)
	}
	e.deliver(mail{From: "mod@staff.example", To: e.replyAddress(victim.TicketID, mod.ID, time.Now().Add(time.Hour)),
		Body: "Dear customer 4711, here is your reset code: 993311"}.bytes())
	sent := false
	for _, m := range e.parsedOutbox() {
		if m.kind == "reply" && strings.Contains(m.msg.Text, "993311") {
			sent = true
			if diff := cmp.Diff([]string{"victim@corp.example"}, m.recipients); diff != "" {
				t.Errorf("the answer's recipients (-want +got):\n%s", diff)
			}
		}
	}
	if !sent {
		t.Error("the moderator's answer was not queued")
	}
	// The sender of the mail may follow it up.
	followUp := e.deliver(mail{From: "mallory@evil.example", InReplyTo: "<phish-1@evil.example>"}.bytes())
	if followUp.TicketID != planted.TicketID {
		t.Errorf("the sender's own follow-up opened ticket #%d, want #%d", followUp.TicketID, planted.TicketID)
	}
}

// TestRepliesFromPeopleOnTheThread: the people a requester wrote to or
// copied follow the ticket, and their replies join it; someone else
// answering a received mail still joins by a Message-ID ticketd made
// further up the References.
func TestRepliesFromPeopleOnTheThread(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.deliver(mail{From: "ann@example.com", To: support + ", carol@example.com", Cc: "bob@example.com",
		MessageID: "<open-1@example.com>"}.bytes())
	for _, who := range []string{"carol@example.com", "bob@example.com"} {
		r := e.deliver(mail{From: who, To: "ann@example.com, " + support, InReplyTo: "<open-1@example.com>",
			References: "<open-1@example.com>"}.bytes())
		if r.TicketID != a.TicketID {
			t.Errorf("%s's reply-all opened ticket #%d (%s), want #%d", who, r.TicketID, r.Rule, a.TicketID)
		}
	}
	if _, err := e.st.InsertMessage(ctx, tickets.Message{TicketID: a.TicketID, Direction: tickets.Outbound,
		Kind: tickets.KindReply, MessageID: "ack-2@ticketd.test", FromAddress: support, Subject: "Re"}); err != nil {
		t.Fatal(err)
	}
	e.deliver(mail{From: "ann@example.com", Cc: "dave@example.com", MessageID: "<r-2@example.com>",
		InReplyTo: "<ack-2@ticketd.test>", References: "<open-1@example.com> <ack-2@ticketd.test>"}.bytes())
	r := e.deliver(mail{From: "erin@example.com", InReplyTo: "<r-2@example.com>",
		References: "<open-1@example.com> <ack-2@ticketd.test> <r-2@example.com>"}.bytes())
	if r.TicketID != a.TicketID || r.Rule != inbound.RuleReferences {
		t.Errorf("a reply whose References hold ticketd's own mail: ticket #%d by %s, want #%d by references", r.TicketID, r.Rule, a.TicketID)
	}
}

func TestHTMLOnlyMail(t *testing.T) {
	e := newEnv(t)
	html := "<html><body><p>The <b>VPN</b> drops every hour.</p><p>Thanks</p></body></html>"
	r := e.deliver(mail{Headers: []string{"MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8"}, Body: html}.bytes())
	m := e.message(r.MessageID)
	if !strings.Contains(m.TextBody, "The VPN drops every hour.") || m.HTMLBody == "" || !strings.Contains(m.HTMLBody, "<b>VPN</b>") {
		t.Errorf("text %q html %q", m.TextBody, m.HTMLBody)
	}
	if d := e.ticket(r.TicketID).Description; !strings.Contains(d, "The VPN drops every hour.") || strings.Contains(d, "<p>") {
		t.Errorf("description %q", d)
	}
}

func TestBrokenMailStillBecomesTicket(t *testing.T) {
	for _, tc := range []struct {
		name     string
		raw      string
		src      inbound.Source
		wantFrom string
		wantText string
	}{
		{"bad base64, no closing boundary, NUL and invalid UTF-8",
			"From: Broken <broken@example.com>\r\nTo: support@ticketd.test\r\nSubject: caf\xe9 \x00broken\r\n" +
				"Content-Type: multipart/mixed; boundary=\"real\"\r\nX-Header-Without-Colon\r\n\r\n" +
				"--real\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8sIHRoZSBzZXJ2ZXIgaXMgZG93bi4*!!\r\n" +
				"--real\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbad \xff\xfe bytes \x00 here\r\n",
			inbound.Source{Kind: "smtp", MailFrom: "bounce-x@example.com"}, "broken@example.com", "Hello, the server is down."},
		{"no header at all, sender from the envelope",
			"just some text\r\nwithout any header\r\n",
			inbound.Source{Kind: "smtp", MailFrom: "bare@example.com"}, "bare@example.com", "just some text"},
		{"unreadable From, Reply-To used",
			"From: <<<>>>\r\nReply-To: Real <real@example.com>\r\nSubject: hi\r\n\r\nbody\r\n",
			inbound.Source{Kind: "imap", Mailbox: "imap://u@h/INBOX", UID: 1}, "real@example.com", "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.deliver([]byte(tc.raw), tc.src)
			if r.TicketID == 0 {
				t.Fatalf("result %+v", r)
			}
			m := e.message(r.MessageID)
			if m.FromAddress != tc.wantFrom || !strings.Contains(m.TextBody, tc.wantText) {
				t.Errorf("from %q text %q", m.FromAddress, m.TextBody)
			}
			var stored []byte
			if err := e.pool.QueryRow(context.Background(), `SELECT data FROM raw_messages WHERE id = $1`, *m.RawMessageID).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if string(stored) != tc.raw {
				t.Error("raw bytes not kept exactly")
			}
		})
	}
}

func TestMailWithoutSenderIsQuarantined(t *testing.T) {
	e := newEnv(t)
	r := e.deliver([]byte("Subject: who am I\r\n\r\ntext\r\n"), inbound.Source{Kind: "imap", Mailbox: "imap://u@h/INBOX", UID: 3})
	if !r.Quarantined || r.TicketID != 0 {
		t.Fatalf("result %+v", r)
	}
	if n := e.count(`SELECT count(*) FROM quarantine WHERE reason LIKE 'no usable sender%'`); n != 1 {
		t.Errorf("%d quarantine entries", n)
	}
}

func TestOwnMailIsQuarantined(t *testing.T) {
	e := newEnv(t)
	r := e.deliver(mail{From: "Support <support@ticketd.test>", Subject: "[#1] Your ticket"}.bytes())
	if !r.Quarantined || e.count(`SELECT count(*) FROM tickets`) != 0 || e.count(`SELECT count(*) FROM users`) != 0 {
		t.Errorf("mail from ticketd's own address: %+v", r)
	}
}

const dsn = "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n" +
	"To: support@ticketd.test\r\nSubject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n" +
	"%sMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"dsn\"\r\n\r\n" +
	"--dsn\r\nContent-Type: text/plain\r\n\r\nI could not deliver your message to gone@example.net.\r\n" +
	"--dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n" +
	"Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
	"--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@ticketd.test\r\nTo: gone@example.net\r\nSubject: Your ticket\r\n%s--dsn--\r\n"

func TestAutomaticMail(t *testing.T) {
	type want struct {
		Quarantined bool
		NewTicket   bool   // opened a ticket (with AutoKind)
		Kind        string // messages.kind when attached
		AutoKind    string
		Bouncing    bool // gone@example.net marked bouncing
		Rule        string
	}
	for _, tc := range []struct {
		name     string
		opt      func(*inbound.Options)
		threaded bool // sent In-Reply-To ticketd's mail
		// returnPath: sent to the return path of ticketd's mail to
		// gone@, rather than to the support address.
		returnPath bool
		raw        func(inReplyTo string) []byte
		mailFrom   string
		want       want
	}{
		{name: "auto-reply to our mail is a system note", threaded: true,
			raw: func(irt string) []byte {
				return mail{From: "ann@example.com", Subject: "Out of office", InReplyTo: irt, Headers: []string{"Auto-Submitted: auto-replied"}}.bytes()
			},
			want: want{Kind: "system", AutoKind: "auto-reply"}},
		{name: "auto-reply matching nothing is quarantined",
			raw: func(string) []byte {
				return mail{From: "ann@example.com", Subject: "Out of office", Headers: []string{"Auto-Submitted: auto-replied"}}.bytes()
			},
			want: want{Quarantined: true, AutoKind: "auto-reply"}},
		{name: "bounce of our mail sent to the support address is a system note and marks nobody", threaded: true, mailFrom: "",
			raw:  func(irt string) []byte { return []byte(fmt.Sprintf(dsn, "In-Reply-To: "+irt+"\r\n", "")) },
			want: want{Kind: "system", AutoKind: "bounce"}},
		{name: "bounce matching nothing is quarantined and marks nobody", mailFrom: "",
			raw:  func(string) []byte { return []byte(fmt.Sprintf(dsn, "", "Message-ID: <elsewhere@example.org>\r\n")) },
			want: want{Quarantined: true, AutoKind: "bounce"}},
		{name: "bounce returning the header of our mail is a system note", mailFrom: "",
			raw:  func(string) []byte { return []byte(fmt.Sprintf(dsn, "", "Message-ID: <ack@ticketd.test>\r\n")) },
			want: want{Kind: "system", AutoKind: "bounce", Rule: "report"}},
		{name: "bounce at the return path of our mail marks the address and is a system note", returnPath: true, mailFrom: "",
			raw:  func(string) []byte { return []byte(fmt.Sprintf(dsn, "", "")) },
			want: want{Kind: "system", AutoKind: "bounce", Bouncing: true, Rule: "return-path"}},
		{name: "an Exim bounce (X-Failed-Recipients) at the return path of our mail marks the address", returnPath: true, mailFrom: "",
			raw: func(string) []byte {
				return mail{From: "MAILER-DAEMON@mx.example.net", Subject: "Mail delivery failed", Headers: []string{"X-Failed-Recipients: gone@example.net", "Auto-Submitted: auto-replied"}}.bytes()
			},
			want: want{Kind: "system", AutoKind: "bounce", Bouncing: true, Rule: "return-path"}},
		{name: "delivery delay notice of our mail is a system note", threaded: true, mailFrom: "",
			raw: func(irt string) []byte {
				return []byte("From: MAILER-DAEMON@mx.example.net\r\nTo: support@ticketd.test\r\nSubject: Delivery delayed\r\nIn-Reply-To: " + irt + "\r\n" +
					"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"d\"\r\n\r\n" +
					"--d\r\nContent-Type: text/plain\r\n\r\nStill trying.\r\n--d\r\nContent-Type: message/delivery-status\r\n\r\n" +
					"Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; gone@example.net\r\nAction: delayed\r\nStatus: 4.4.1\r\n--d--\r\n")
			},
			want: want{Kind: "system", AutoKind: "delivery-status"}},
		{name: "complaint is quarantined",
			raw: func(string) []byte {
				return []byte("From: abuse@isp.example\r\nTo: support@ticketd.test\r\nSubject: Abuse report\r\nMIME-Version: 1.0\r\n" +
					"Content-Type: multipart/report; report-type=feedback-report; boundary=\"arf\"\r\n\r\n--arf\r\nContent-Type: text/plain\r\n\r\nAbuse.\r\n" +
					"--arf\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n--arf--\r\n")
			},
			want: want{Quarantined: true, AutoKind: "complaint"}},
		{name: "read receipt of our mail is a system note", threaded: true,
			raw: func(irt string) []byte {
				return []byte("From: ann@example.com\r\nTo: support@ticketd.test\r\nSubject: Read: Your ticket\r\nIn-Reply-To: " + irt + "\r\nMIME-Version: 1.0\r\n" +
					"Content-Type: multipart/report; report-type=disposition-notification; boundary=\"mdn\"\r\n\r\n--mdn\r\nContent-Type: text/plain\r\n\r\nDisplayed.\r\n" +
					"--mdn\r\nContent-Type: message/disposition-notification\r\n\r\nFinal-Recipient: rfc822; ann@example.com\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n--mdn--\r\n")
			},
			want: want{Kind: "system", AutoKind: "mdn"}},
		{name: "auto-generated answer to our mail counts as an auto-reply", threaded: true,
			raw: func(irt string) []byte {
				return mail{From: "ann@example.com", Subject: "Automatic reply: Your ticket", InReplyTo: irt, Headers: []string{"Auto-Submitted: auto-generated"}}.bytes()
			},
			want: want{Kind: "system", AutoKind: "auto-reply"}},
		{name: "no-reply notice in reply to our mail is a system note", threaded: true,
			raw: func(irt string) []byte {
				return mail{From: "Vendor <noreply@vendor.example>", Subject: "Re: Your ticket", InReplyTo: irt,
					Body: "We have received your message and will answer within 3 days.\r\n"}.bytes()
			},
			want: want{Kind: "system", AutoKind: "auto-reply"}},
		{name: "no-reply newsletter in reply to our mail is a system note", threaded: true,
			raw: func(irt string) []byte {
				return mail{From: "News <noreply@news.example>", Subject: "Re: Your ticket", InReplyTo: irt,
					Headers: []string{"List-Unsubscribe: <https://news.example/u>"}, Body: "Thanks for writing.\r\n"}.bytes()
			},
			want: want{Kind: "system", AutoKind: "auto-reply"}},
		{name: "unmonitored mailbox in reply to our mail is a system note", threaded: true,
			raw: func(irt string) []byte {
				return mail{From: "Accounts <accounts@vendor.example>", Subject: "Re: Your ticket", InReplyTo: irt,
					Body: "This mailbox is not monitored. Please use the portal.\r\n"}.bytes()
			},
			want: want{Kind: "system", AutoKind: "auto-reply"}},
		{name: "no-reply notice in reply to a mail ticketd never sent opens a ticket nobody answers",
			raw: func(string) []byte {
				return mail{From: "Vendor <noreply@vendor.example>", Subject: "Re: Your order", InReplyTo: "<order-77@shop.example>",
					Body: "Your order has shipped.\r\n"}.bytes()
			},
			want: want{NewTicket: true, AutoKind: "auto-generated"}},
		{name: "auto-generated mail naming our mail only in References is a system note", threaded: true,
			raw: func(irt string) []byte {
				return mail{From: "alerts@monitor.example", Subject: "RECOVERY: disk", InReplyTo: "<problem-1@monitor.example>", References: irt,
					Headers: []string{"Auto-Submitted: auto-generated"}}.bytes()
			},
			want: want{Kind: "system", AutoKind: "auto-reply"}},
		{name: "auto-generated alert opens a ticket nobody answers",
			raw: func(string) []byte {
				return mail{From: "nagios@monitor.example.com", Subject: "PROBLEM: disk full", Headers: []string{"Auto-Submitted: auto-generated"}}.bytes()
			},
			want: want{NewTicket: true, AutoKind: "auto-generated"}},
		{name: "auto-generated alert quarantined when configured", opt: func(o *inbound.Options) { o.QuarantineAutoGenerated = true },
			raw: func(string) []byte {
				return mail{From: "nagios@monitor.example.com", Subject: "PROBLEM: disk full", Headers: []string{"Auto-Submitted: auto-generated"}}.bytes()
			},
			want: want{Quarantined: true, AutoKind: "auto-generated"}},
		{name: "bulk mail opens a ticket nobody answers",
			raw: func(string) []byte {
				return mail{From: "news@list.example.com", Subject: "Weekly news", Headers: []string{"List-Id: News <news.list.example.com>", "Precedence: bulk"}}.bytes()
			},
			want: want{NewTicket: true, AutoKind: "bulk"}},
		{name: "bulk mail quarantined when configured", opt: func(o *inbound.Options) { o.QuarantineBulk = true },
			raw: func(string) []byte {
				return mail{From: "news@list.example.com", Subject: "Weekly news", Headers: []string{"Precedence: bulk"}}.bytes()
			},
			want: want{Quarantined: true, AutoKind: "bulk"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []func(*inbound.Options){}
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			e := newEnv(t, opts...)
			ctx := context.Background()
			a := e.deliver(mail{From: "ann@example.com", MessageID: "<a@example.com>"}.bytes())
			gone := e.user("gone@example.net", tickets.RoleUser)
			// ticketd wrote to gone@ once.
			var mailID int64
			if err := e.pool.QueryRow(ctx, `INSERT INTO mail_outbox (ticket_id, kind, message_id, recipients, data, status, sent_at)
				VALUES ($1, 'acknowledgement', 'ack@ticketd.test', '{gone@example.net}', 'x', 'sent', now()) RETURNING id`, a.TicketID).Scan(&mailID); err != nil {
				t.Fatal(err)
			}
			rcpt := support
			if tc.returnPath {
				rcpt = e.returnPath(a.TicketID, gone.ID, mailID)
			}
			before := e.events()
			irt := ""
			if tc.threaded {
				irt = "<ack@ticketd.test>"
			}
			r, err := e.in.Deliver(ctx, tc.raw(irt), inbound.Source{Kind: "smtp", MailFrom: tc.mailFrom, RcptTo: []string{rcpt}})
			if err != nil {
				t.Fatal(err)
			}
			var got want
			got.Quarantined = r.Quarantined
			switch {
			case r.Quarantined:
				if err := e.pool.QueryRow(ctx, `SELECT auto_kind FROM quarantine`).Scan(&got.AutoKind); err != nil {
					t.Fatal(err)
				}
			case r.TicketID != a.TicketID:
				got.NewTicket = true
				got.AutoKind = e.ticket(r.TicketID).AutoKind
				if m := e.message(r.MessageID); m.AutoKind != got.AutoKind {
					t.Errorf("message auto_kind %s, ticket %s", m.AutoKind, got.AutoKind)
				}
			default:
				m := e.message(r.MessageID)
				got.Kind, got.AutoKind = string(m.Kind), m.AutoKind
				if r.Rule == "report" || r.Rule == "return-path" {
					got.Rule = r.Rule
				}
				if !m.Internal {
					t.Error("system message not internal")
				}
			}
			u, err := e.st.User(ctx, gone.ID)
			if err != nil {
				t.Fatal(err)
			}
			got.Bouncing = u.BouncingSince != nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			after := e.events()
			if tc.want.NewTicket {
				if len(after) != len(before)+1 || !strings.HasPrefix(after[len(after)-1], "ticket.created") {
					t.Errorf("events %v", after)
				}
			} else if len(after) != len(before) {
				t.Errorf("automatic mail caused events %v", after[len(before):])
			}
			if n := len(e.outbox()); n != 1 {
				t.Errorf("automatic mail queued %d mails", n-1)
			}
		})
	}
}

func TestForgedBounceMarksNobody(t *testing.T) {
	e := newEnv(t)
	u := e.user("gone@example.net", tickets.RoleUser)
	// ticketd never wrote to gone@: the bounce is not about our mail.
	r := e.deliver([]byte(fmt.Sprintf(dsn, "", "")), inbound.Source{Kind: "smtp", RcptTo: []string{support}})
	if !r.Quarantined {
		t.Fatalf("result %+v", r)
	}
	if got, _ := e.st.User(context.Background(), u.ID); got.BouncingSince != nil {
		t.Error("a bounce about an address ticketd never wrote to marked it bouncing")
	}
}

func TestNothingSurvivesAFailure(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mod := e.user("mod@staff.example", tickets.RoleModerator)
	a := e.deliver(mail{From: "ann@example.com", MessageID: "<a@example.com>"}.bytes())
	counts := func() []int {
		var out []int
		for _, table := range []string{"raw_messages", "messages", "tickets", "event_outbox", "mail_outbox", "audit_log", "users", "quarantine"} {
			out = append(out, e.count(`SELECT count(*) FROM `+table))
		}
		return out
	}
	before := counts()

	// The notifier fails after the message, the status change and its
	// events were written in the transaction.
	e.notifier.failStaffReply.Store(true)
	raw := mail{From: "mod@staff.example", To: e.replyAddress(a.TicketID, mod.ID, time.Now().Add(time.Hour)),
		Body: "status: completed\n\nAll fixed."}.bytes()
	if _, err := e.in.Deliver(ctx, raw, inbound.Source{Kind: "smtp", MailFrom: "mod@staff.example"}); err == nil {
		t.Fatal("Deliver succeeded with a failing notifier")
	}
	if diff := cmp.Diff(before, counts()); diff != "" {
		t.Errorf("a failed delivery left rows (-want +got):\n%s", diff)
	}
	if s := e.ticket(a.TicketID).Status; s != tickets.StatusTodo {
		t.Errorf("status %s after a failed delivery", s)
	}

	// A cancelled context stores nothing either.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.in.Deliver(cctx, mail{From: "bea@example.com"}.bytes(), inbound.Source{Kind: "smtp"}); err == nil || errors.Is(err, inbound.ErrRejected) {
		t.Fatalf("cancelled delivery: %v, want a temporary error", err)
	}
	if diff := cmp.Diff(before, counts()); diff != "" {
		t.Errorf("a cancelled delivery left rows (-want +got):\n%s", diff)
	}

	// And the same mail, delivered again once the notifier works, is
	// applied whole.
	e.notifier.failStaffReply.Store(false)
	if _, err := e.in.Deliver(ctx, raw, inbound.Source{Kind: "smtp", MailFrom: "mod@staff.example"}); err != nil {
		t.Fatal(err)
	}
	if s := e.ticket(a.TicketID).Status; s != tickets.StatusCompleted {
		t.Errorf("status %s after the retry", s)
	}
}

func TestRejected(t *testing.T) {
	e := newEnv(t, func(o *inbound.Options) { o.MaxMessageBytes = 1000 })
	for _, tc := range []struct {
		name string
		raw  []byte
		src  inbound.Source
	}{
		{"empty", nil, inbound.Source{Kind: "smtp"}},
		{"too large", bytes.Repeat([]byte("x"), 1001), inbound.Source{Kind: "smtp"}},
		{"unknown source", []byte("Subject: x\r\n\r\ny"), inbound.Source{Kind: "pigeon"}},
		{"imap without mailbox", []byte("Subject: x\r\n\r\ny"), inbound.Source{Kind: "imap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.in.Deliver(context.Background(), tc.raw, tc.src); !errors.Is(err, inbound.ErrRejected) {
				t.Errorf("err %v, want ErrRejected", err)
			}
		})
	}
}

func TestMisconfiguredIntakeFailsTemporarily(t *testing.T) {
	in := inbound.New(inbound.Options{SupportAddress: support})
	_, err := in.Deliver(context.Background(), []byte("Subject: x\r\n\r\ny"), inbound.Source{Kind: "smtp"})
	if err == nil || errors.Is(err, inbound.ErrRejected) {
		t.Fatalf("err %v: want a temporary error, so the mail is offered again", err)
	}
}

func TestAccepts(t *testing.T) {
	in := inbound.New(inbound.Options{SupportAddress: "Support@TicketD.test", Aliases: []string{"help@ticketd.test", "billing@other.test"}})
	for rcpt, want := range map[string]bool{
		"support@ticketd.test":           true,
		"<SUPPORT@ticketd.test>":         true,
		"support+abc123@ticketd.test":    true,
		"support+anything@TICKETD.TEST":  true,
		"help@ticketd.test":              true,
		"billing@other.test":             true,
		"help+x@ticketd.test":            true,
		"support@other.test":             false,
		"supportx@ticketd.test":          false,
		"someone@ticketd.test":           false,
		"victim@example.com":             false,
		"support@ticketd.test@evil.test": false,
		"":                               false,
	} {
		if got := in.Accepts(rcpt); got != want {
			t.Errorf("Accepts(%q) = %v, want %v", rcpt, got, want)
		}
	}
}

func TestSameMailConcurrently(t *testing.T) {
	e := newEnv(t)
	raw := mail{From: "ann@example.com", MessageID: "<burst@example.com>", Cc: "bob@example.com"}.bytes()
	const n = 8
	results := make([]inbound.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.in.Deliver(context.Background(), raw, inbound.Source{Kind: "smtp", MailFrom: "ann@example.com"})
		}()
	}
	wg.Wait()
	dups := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("delivery %d: %v", i, errs[i])
		}
		if results[i].TicketID != results[0].TicketID || results[i].MessageID != results[0].MessageID {
			t.Errorf("delivery %d: %+v, delivery 0: %+v", i, results[i], results[0])
		}
		if results[i].Duplicate {
			dups++
		}
	}
	if dups != n-1 {
		t.Errorf("%d duplicates, want %d", dups, n-1)
	}
	for table, want := range map[string]int{"tickets": 1, "messages": 1, "raw_messages": 1, "event_outbox": 1, "users": 2} {
		if got := e.count(`SELECT count(*) FROM ` + table); got != want {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
}

// TestOutboxWakeUps: listeners on the outboxes' channels hear of what a
// delivery queued once it has committed, though intake's transaction does
// not NOTIFY itself (migration 0008), and hear nothing of a duplicate.
func TestOutboxWakeUps(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, ch := range []string{tickets.EventsChannel, tickets.MailOutboxChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Exec(context.Background(), "UNLISTEN *")
	heard := func() map[string]int {
		got := map[string]int{}
		for {
			wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			n, err := conn.Conn().WaitForNotification(wctx)
			cancel()
			if err != nil {
				return got
			}
			got[n.Channel]++
		}
	}

	mod := e.user("mod@staff.example", tickets.RoleModerator)
	raw := mail{From: "ann@example.com", MessageID: "<wake@example.com>"}.bytes()
	open := e.deliver(raw)
	if diff := cmp.Diff(map[string]int{tickets.EventsChannel: 1}, heard()); diff != "" {
		t.Errorf("a new ticket (-want +got):\n%s", diff)
	}
	e.deliver(raw)
	if diff := cmp.Diff(map[string]int{}, heard()); diff != "" {
		t.Errorf("a duplicate (-want +got):\n%s", diff)
	}
	to := e.replyAddress(open.TicketID, mod.ID, time.Now().Add(time.Hour))
	e.deliver(mail{From: "mod@staff.example", To: to, Body: "status: completed\n\nDone."}.bytes(),
		inbound.Source{Kind: "smtp", RcptTo: []string{to}})
	if diff := cmp.Diff(map[string]int{tickets.EventsChannel: 1, tickets.MailOutboxChannel: 1}, heard()); diff != "" {
		t.Errorf("a staff reply with a command (-want +got):\n%s", diff)
	}
	if n := e.count(`SELECT count(*) FROM mail_outbox`); n == 0 {
		t.Error("the staff reply queued no mail")
	}
}

// TestCopiedAddressesKeepTheirNames: whoever copies an address chooses its
// display name, so a Cc names only a new user; and ticketd's own address
// written fully qualified (support@ticketd.test.) is still ticketd's, never
// a participant mailed by it.
func TestCopiedAddressesKeepTheirNames(t *testing.T) {
	e, _ := newEnvWithNotifier(t)
	ctx := context.Background()
	mod, err := e.st.CreateUser(ctx, tickets.NewUser{Email: "mod@staff.example", Role: tickets.RoleModerator})
	if err != nil {
		t.Fatal(err)
	}
	r := e.deliver(mail{From: "mallory@evil.example",
		Cc: `"IT Security: send your password to evil.example" <mod@staff.example>, "Bob" <bob@example.com>, SUPPORT@ticketd.test.`}.bytes())
	if u, _ := e.st.User(ctx, mod.ID); u.Name != "" {
		t.Errorf("a copy named the moderator %q", u.Name)
	}
	if u, err := e.st.UserByEmail(ctx, "bob@example.com"); err != nil || u.Name != "Bob" {
		t.Errorf("a new user copied: %+v, %v", u, err)
	}
	people, err := e.st.Participants(ctx, r.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range people {
		if strings.HasPrefix(p.Email, "support@") {
			t.Errorf("ticketd's own address %q is a participant", p.Email)
		}
	}
	// A requester's own mail fills in their empty name; a staff member's
	// From does not rename them.
	e.deliver(mail{From: `"Maybe Mo" <mod@staff.example>`, MessageID: "<mo-1@staff.example>"}.bytes())
	if u, _ := e.st.User(ctx, mod.ID); u.Name != "" {
		t.Errorf("mail from the moderator's address named them %q", u.Name)
	}
}

// TestForgedFromGetsNoAutomaticMail: a mail whose From a trusted server
// reports as failing DMARC of a domain that asks nothing (p=none) opens its
// ticket, but ticketd mails that
// address nothing automatically (it would be mailing a stranger's text,
// under ticketd's name, to an address of the stranger's choice). A DKIM
// failure alone, common in genuine mail through lists, changes nothing.
func TestForgedFromGetsNoAutomaticMail(t *testing.T) {
	e, n := newEnvWithNotifier(t)
	ctx := context.Background()
	for _, tc := range []struct {
		from, results string
		unverified    bool
	}{
		{"victim@bank.example", "mx.ticketd.test; spf=fail smtp.mailfrom=evil.example; dkim=none; dmarc=fail (p=none) header.from=bank.example", true},
		{"ann@lists.example", "mx.ticketd.test; dkim=fail header.d=lists.example; dmarc=pass header.from=lists.example", false},
		{"bob@other.example", "elsewhere.example; dmarc=fail header.from=other.example", false},
	} {
		r := e.deliver(mail{From: tc.from, Subject: "CHEAP PILLS at http://spam.example", Headers: []string{"Authentication-Results: " + tc.results}}.bytes(),
			inbound.Source{Kind: "imap", Mailbox: "support/INBOX", UID: 1})
		if got := e.ticket(r.TicketID).RequesterUnverified; got != tc.unverified {
			t.Errorf("%s: requester unverified %v, want %v", tc.from, got, tc.unverified)
		}
		if err := e.st.InTx(ctx, func(st *tickets.Store) error {
			return n.Acknowledgement(ctx, st, fmt.Sprint("ack-", r.TicketID), r.TicketID)
		}); err != nil {
			t.Fatal(err)
		}
		acked := false
		for _, m := range e.parsedOutbox() {
			if m.kind == "acknowledgement" && slices.Contains(m.recipients, tc.from) {
				acked = true
			}
		}
		if acked == tc.unverified {
			t.Errorf("%s: acknowledged %v", tc.from, acked)
		}
	}
}
