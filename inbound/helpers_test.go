package inbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound"
	"ticketd/pgtest"
	"ticketd/signing"
	"ticketd/testlog"
	"ticketd/tickets"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const support = "support@ticketd.test"

// recordingNotifier queues its mails as mail_outbox rows inside the
// caller's transaction, the way outbound does, so tests see only what was
// committed. failStaffReply makes StaffReply fail.
type recordingNotifier struct {
	failStaffReply atomic.Bool
	seq            atomic.Int64
}

type sentReceipt struct {
	InReplyTo string                `json:"in_reply_to"`
	Lines     []inbound.ReceiptLine `json:"lines"`
}

func (n *recordingNotifier) queue(ctx context.Context, st *tickets.Store, kind, dedupe string, ticketID int64, to string, data []byte) error {
	_, err := st.DB().Exec(ctx, `INSERT INTO mail_outbox (ticket_id, kind, dedupe_key, message_id, recipients, data)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING`,
		ticketID, kind, dedupe, fmt.Sprintf("test-%d-%d@ticketd.test", time.Now().UnixNano(), n.seq.Add(1)),
		[]string{to}, data)
	return err
}

func (n *recordingNotifier) StaffReply(ctx context.Context, st *tickets.Store, dedupe string, messageID int64) error {
	if n.failStaffReply.Load() {
		return errors.New("relay composer broke")
	}
	m, err := st.Message(ctx, messageID)
	if err != nil {
		return err
	}
	t, err := st.Ticket(ctx, m.TicketID)
	if err != nil {
		return err
	}
	req, err := st.User(ctx, t.RequesterID)
	if err != nil {
		return err
	}
	return n.queue(ctx, st, "reply", dedupe, t.ID, req.Email, []byte(m.ReplyText))
}

func (n *recordingNotifier) CommandReceipt(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64, to tickets.User, inReplyTo string, lines []inbound.ReceiptLine) error {
	b, err := json.Marshal(sentReceipt{InReplyTo: inReplyTo, Lines: lines})
	if err != nil {
		return err
	}
	return n.queue(ctx, st, "receipt", dedupe, ticketID, to.Email, b)
}

func (n *recordingNotifier) ReplyAddressUsed(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64, owner tickets.User, who string, lines []inbound.ReceiptLine) error {
	b, err := json.Marshal(sentReceipt{InReplyTo: "used by " + who, Lines: lines})
	if err != nil {
		return err
	}
	return n.queue(ctx, st, "receipt", dedupe, ticketID, owner.Email, b)
}

// env is one test's database, keys and intake.
type env struct {
	t        *testing.T
	pool     *pgxpool.Pool
	st       *tickets.Store
	keys     *signing.Keys
	notifier *recordingNotifier
	in       *inbound.Intake
	opt      inbound.Options
}

func newEnv(t *testing.T, edit ...func(*inbound.Options)) *env {
	t.Helper()
	t.Parallel()
	pool := pgtest.New(t)
	keys, err := signing.NewKeys("a test secret of enough length")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, st: tickets.NewStore(pool), keys: keys, notifier: &recordingNotifier{}}
	e.opt = inbound.Options{
		Pool:               pool,
		Logger:             testlog.New(t),
		SupportAddress:     support,
		Aliases:            []string{"help@ticketd.test"},
		Keys:               keys,
		Notifier:           e.notifier,
		TrustedAuthServers: []string{"mx.ticketd.test"},
		// The moderators of most tests work tickets nobody was assigned
		// to yet; who may change what is admin's TestWhoMayChangeWhat.
		ModeratorsSeeUnassigned: true,
		// Mail here is not checked at an MX: the sender checks and what
		// they require are policy_test.go's.
		AllowUnauthenticatedCommands: true,
	}
	for _, f := range edit {
		f(&e.opt)
	}
	e.in = inbound.New(e.opt)
	return e
}

func (e *env) deliver(raw []byte, src ...inbound.Source) inbound.Result {
	e.t.Helper()
	s := inbound.Source{Kind: "smtp", RemoteAddr: "127.0.0.1:5000", MailFrom: "sender@example.com", RcptTo: []string{support}}
	if len(src) > 0 {
		s = src[0]
	}
	res, err := e.in.Deliver(context.Background(), raw, s)
	if err != nil {
		e.t.Fatalf("deliver: %v", err)
	}
	return res
}

func (e *env) user(email string, role tickets.Role) tickets.User {
	e.t.Helper()
	u, err := e.st.CreateUser(context.Background(), tickets.NewUser{Email: email, Name: strings.Split(email, "@")[0], Role: role})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// replyAddress is the signed reply address of ticketID for userID.
func (e *env) replyAddress(ticketID, userID int64, expires time.Time) string {
	return signing.ReplyAddress(support, e.keys.Sign(signing.Claims{
		Purpose: signing.PurposeReply, TicketID: ticketID, UserID: userID, Expires: expires}))
}

// returnPath is the return path of outbox mail mailID to userID on ticket
// ticketID, as outbound makes it.
func (e *env) returnPath(ticketID, userID, mailID int64) string {
	return signing.ReturnPath(signing.BounceMailbox(support), e.keys.Sign(signing.Claims{
		Purpose: signing.PurposeBounce, TicketID: ticketID, UserID: userID, MailID: mailID,
		Expires: time.Now().Add(time.Hour)}))
}

func (e *env) ticket(id int64) tickets.Ticket {
	e.t.Helper()
	t, err := e.st.Ticket(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

func (e *env) message(id int64) tickets.Message {
	e.t.Helper()
	m, err := e.st.Message(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// events lists the event outbox as "name ticket_id" lines, oldest first.
func (e *env) events() []string {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT name, coalesce(ticket_id, 0) FROM event_outbox ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		var id int64
		if err := rows.Scan(&name, &id); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d", name, id))
	}
	return out
}

type queued struct {
	Kind       string
	Recipients []string
	Data       string
}

// outbox lists the mails queued, oldest first.
func (e *env) outbox() []queued {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT kind, recipients, convert_from(data, 'UTF8') FROM mail_outbox ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []queued
	for rows.Next() {
		var q queued
		if err := rows.Scan(&q.Kind, &q.Recipients, &q.Data); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, q)
	}
	return out
}

// receipts returns the command receipts queued, by recipient.
func (e *env) receipts() map[string][]inbound.ReceiptLine {
	out := map[string][]inbound.ReceiptLine{}
	for _, q := range e.outbox() {
		if q.Kind != "receipt" {
			continue
		}
		var r sentReceipt
		if err := json.Unmarshal([]byte(q.Data), &r); err != nil {
			e.t.Fatal(err)
		}
		out[q.Recipients[0]] = append(out[q.Recipients[0]], r.Lines...)
	}
	return out
}

// mail builds a small RFC 5322 message.
type mail struct {
	From, To, Cc, Subject, MessageID, InReplyTo, References string
	Headers                                                 []string
	Body                                                    string
}

var mailSeq atomic.Int64

func (m mail) bytes() []byte {
	var b strings.Builder
	w := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	if m.From == "" {
		m.From = "Ann Example <ann@example.com>"
	}
	if m.To == "" {
		m.To = support
	}
	if m.MessageID == "" {
		m.MessageID = fmt.Sprintf("<m%d.%d@example.com>", time.Now().UnixNano(), mailSeq.Add(1))
	}
	if m.Subject == "" {
		m.Subject = "Printer on fire"
	}
	if m.Body == "" {
		m.Body = "Hello,\r\n\r\nthe printer on floor 3 is on fire.\r\n\r\nAnn\r\n"
	}
	w("From", m.From)
	w("To", m.To)
	w("Cc", m.Cc)
	w("Subject", m.Subject)
	w("Date", "Mon, 02 Mar 2026 10:00:00 +0100")
	w("Message-ID", m.MessageID)
	w("In-Reply-To", m.InReplyTo)
	w("References", m.References)
	for _, h := range m.Headers {
		b.WriteString(h + "\r\n")
	}
	if !strings.Contains(strings.ToLower(strings.Join(m.Headers, "\n")), "content-type:") {
		b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n"))
	return []byte(b.String())
}
