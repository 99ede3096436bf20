package outbound_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/outbound"
	"ticketd/pgtest"
	"ticketd/signing"
	"ticketd/testlog"
	"ticketd/tickets"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const support = "support@desk.example"

type fixture struct {
	t    testing.TB
	ctx  context.Context
	pool *pgxpool.Pool
	st   *tickets.Store
	keys *signing.Keys
	n    *outbound.Notifier
	log  *slog.Logger
}

func newFixture(t testing.TB, mod func(*outbound.NotifierOptions)) *fixture {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		tt.Parallel()
	}
	keys, err := signing.NewKeys("a test secret of enough length")
	if err != nil {
		t.Fatal(err)
	}
	pool := pgtest.New(t)
	f := &fixture{t: t, ctx: context.Background(), pool: pool, st: tickets.NewStore(pool), keys: keys, log: testlog.New(t)}
	o := outbound.NotifierOptions{
		SupportAddress: support,
		Aliases:        []string{"help@desk.example"},
		FromName:       "Support",
		Keys:           keys,
		BaseURL:        "https://desk.example/",
		Logger:         f.log,
	}
	if mod != nil {
		mod(&o)
	}
	f.n = outbound.NewNotifier(o)
	return f
}

func (f *fixture) user(email, name string, role tickets.Role, skills ...string) tickets.User {
	f.t.Helper()
	u, err := f.st.CreateUser(f.ctx, tickets.NewUser{Email: email, Name: name, Role: role, Skills: skills})
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// ticket opens a ticket the way intake does: the ticket, its CC
// participants and the opening message.
func (f *fixture) ticket(req tickets.User, subject, text, openingID string, cc ...tickets.User) tickets.Ticket {
	f.t.Helper()
	tk, err := f.st.CreateTicket(f.ctx, tickets.NewTicket{Subject: subject, Description: text, RequesterID: req.ID})
	if err != nil {
		f.t.Fatal(err)
	}
	var ccAddrs []string
	for _, u := range cc {
		if err := f.st.AddParticipant(f.ctx, tk.ID, u.ID); err != nil {
			f.t.Fatal(err)
		}
		ccAddrs = append(ccAddrs, u.Email)
	}
	_, err = f.st.InsertMessage(f.ctx, tickets.Message{
		TicketID: tk.ID, Direction: tickets.Inbound, Kind: tickets.KindOpening, AuthorID: &req.ID,
		MessageID: openingID, FromAddress: req.Email, FromName: req.Name, ToAddresses: []string{support},
		CcAddresses: ccAddrs, Subject: subject, TextBody: text, ReplyText: text, ThreadRule: "new",
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return tk
}

// checkReturnPath checks the envelope sender of a mail to rcpt: a return
// path of its own, bounces+<token>@desk.example, whose token names the
// outbox row of that mail to that recipient.
func (f *fixture) checkReturnPath(from, rcpt string) {
	f.t.Helper()
	tok, ok := signing.TokenFromAddress("bounces@desk.example", from)
	if !ok {
		f.t.Errorf("envelope sender %q is not a return path on bounces@desk.example", from)
		return
	}
	c, err := f.keys.Verify(signing.PurposeBounce, tok, time.Now())
	if err != nil {
		f.t.Errorf("return path %q: %v", from, err)
		return
	}
	var rcpts []string
	var envelope string
	if err := f.pool.QueryRow(f.ctx, `SELECT recipients, envelope_from FROM mail_outbox WHERE id = $1`, c.MailID).Scan(&rcpts, &envelope); err != nil {
		f.t.Errorf("return path %q names mail %d: %v", from, c.MailID, err)
		return
	}
	if len(rcpts) != 1 || rcpts[0] != rcpt || envelope != from {
		f.t.Errorf("return path %q names mail %d to %v from %q, want the mail to %s", from, c.MailID, rcpts, envelope, rcpt)
	}
}

func (f *fixture) tx(fn func(st *tickets.Store) error) {
	f.t.Helper()
	if err := f.st.InTx(f.ctx, fn); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) mails(ticketID int64) []tickets.OutboxMail {
	f.t.Helper()
	m, err := f.st.TicketMails(f.ctx, ticketID)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *fixture) relay(s *sink, mod func(*outbound.RelayOptions)) *outbound.Relay {
	f.t.Helper()
	o := outbound.RelayOptions{URL: s.url("smtp", ""), HeloName: "ticketd.test", Logger: f.log}
	if mod != nil {
		mod(&o)
	}
	r, err := outbound.NewRelay(o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { r.Close() })
	return r
}

func (f *fixture) sender(tr outbound.Transport, mod func(*outbound.SenderOptions)) *outbound.Sender {
	o := outbound.SenderOptions{Pool: f.pool, Transport: tr, Logger: f.log}
	if mod != nil {
		mod(&o)
	}
	return outbound.NewSender(o)
}

// run starts the sender until the test ends.
func (f *fixture) run(s *outbound.Sender) {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("sender: %v", err)
		}
	})
}

func (f *fixture) deliver(s *outbound.Sender) {
	f.t.Helper()
	if _, err := s.DeliverDue(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// parsed is a received mail taken apart again with go-message.
type parsed struct {
	h          mail.Header
	text, html string
	files      []parsedFile
	raw        []byte
}

// parsedFile is an attachment of a parsed mail.
type parsedFile struct {
	name, contentType, contentID string
	data                         []byte
}

func parse(t testing.TB, data []byte) parsed {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse mail: %v", err)
	}
	p := parsed{h: r.Header, raw: data}
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("parse mail part: %v", err)
		}
		b, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatalf("read mail part: %v", err)
		}
		if h, ok := part.Header.(*mail.AttachmentHeader); ok {
			name, _ := h.Filename()
			typ, _, _ := h.ContentType()
			p.files = append(p.files, parsedFile{name: name, contentType: typ, contentID: h.Get("Content-Id"), data: b})
			continue
		}
		if h, ok := part.Header.(*mail.InlineHeader); ok {
			typ, params, _ := h.ContentType()
			if params["charset"] != "utf-8" {
				t.Errorf("part %s has charset %q, want utf-8", typ, params["charset"])
			}
			if enc := h.Get("Content-Transfer-Encoding"); enc != "quoted-printable" {
				t.Errorf("part %s has Content-Transfer-Encoding %q, want quoted-printable", typ, enc)
			}
			// Quoted-printable carries CRLF line breaks (RFC 2045 6.7).
			text := strings.ReplaceAll(string(b), "\r\n", "\n")
			switch typ {
			case "text/plain":
				p.text = text
			case "text/html":
				p.html = text
			}
		}
	}
	return p
}

func (p parsed) get(t testing.TB, key string) string {
	t.Helper()
	v, err := p.h.Text(key)
	if err != nil {
		t.Fatalf("header %s: %v", key, err)
	}
	return v
}

func (p parsed) ids(t testing.TB, key string) []string {
	t.Helper()
	ids, err := p.h.MsgIDList(key)
	if err != nil {
		t.Fatalf("header %s: %v", key, err)
	}
	return ids
}

func (p parsed) addr(t testing.TB, key string) *mail.Address {
	t.Helper()
	l, err := p.h.AddressList(key)
	if err != nil || len(l) != 1 {
		t.Fatalf("header %s = %q: %v", key, p.h.Get(key), err)
	}
	return l[0]
}

// byMessageID pairs each received mail with its outbox row.
func byMessageID(t testing.TB, got []sunk) map[string]parsed {
	t.Helper()
	out := make(map[string]parsed)
	for _, m := range got {
		p := parse(t, m.Data)
		id, err := p.h.MessageID()
		if err != nil || id == "" {
			t.Fatalf("received mail without Message-ID: %v", err)
		}
		if _, dup := out[id]; dup {
			t.Errorf("mail %s received twice", id)
		}
		out[id] = p
	}
	return out
}

// eventually polls cond until it holds, failing after a generous timeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
