// Package inbound is the one way mail enters ticketd. Deliver parses a mail
// once, tells automatic mail apart, finds the ticket it belongs to, runs a
// moderator's commands, and writes everything — the raw bytes, the ticket or
// the reply, attachments, audit entries, events and the mails it causes — in
// one PostgreSQL transaction. Receivers (SMTP, IMAP, the web portal, the
// API) acknowledge a mail only after Deliver returns without error.
package inbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/mailparse"
	"ticketd/mailauth"
	"ticketd/metrics"
	"ticketd/signing"
	"ticketd/tickets"
)

// ErrRejected marks a mail that can never be delivered as it is (empty,
// too large, from an unknown kind of source): receivers answer it with a
// permanent failure (SMTP 5xx). Every other error of Deliver is temporary:
// nothing was stored, and the same mail may be delivered again.
var ErrRejected = errors.New("inbound: rejected")

// ErrDeferred marks a mail that carries a staff member's commands or reply
// while DNS could not tell whether its From is authenticated (temperror).
// Nothing was stored: the SMTP receiver answers 451 and the sending server
// tries again, when DNS may answer. It is temporary, like every error of
// Deliver but ErrRejected.
var ErrDeferred = errors.New("inbound: sender not verified yet")

// Source says how a mail reached ticketd.
type Source struct {
	Kind       string // smtp, imap, web or api
	RemoteAddr string // smtp: the client's address
	Helo       string // smtp: the name the client gave in EHLO or HELO
	MailFrom   string // smtp: the envelope sender (RFC 5321 MAIL FROM), "" for the null sender
	RcptTo     []string
	ConnID     string // smtp: the connection's id, as the receiver logs it under "cid"; "" when unknown
	Mailbox    string // imap: the mailbox's checkpoint key
	UID        uint32 // imap: the message's UID there
}

// Result is what Deliver made of a mail.
type Result struct {
	TicketID    int64 // 0 when quarantined
	MessageID   int64 // messages.id; 0 when quarantined
	Duplicate   bool  // the mail was delivered before; this is the earlier Result and nothing new was stored
	Quarantined bool  // held for an admin: automatic mail that matched no ticket, or mail without a usable sender
	Rule        string
}

// Thread rules, recorded in messages.thread_rule and Result.Rule.
const (
	RuleReplyAddress = "reply-address" // a signed reply address among the recipients
	RuleInReplyTo    = "in-reply-to"
	RuleReferences   = "references"
	RuleSubjectTag   = "subject-tag" // [#<id>] in the subject, from a participant
	RuleReport       = "report"      // an automatic report that quotes the Message-ID of a mail in the thread
	RuleReturnPath   = "return-path" // an automatic mail sent back to the return path of a mail of the ticket
	RuleNew          = "new"         // opened a ticket
	RuleLinked       = "linked"      // a reply to a ticket completed long ago opened a new ticket linked to it
	RuleQuarantine   = "quarantine"
)

// Notifier queues the mails intake causes, in intake's transaction (st runs
// on it). *outbound.Notifier satisfies it. The same dedupe key twice queues
// one mail.
type Notifier interface {
	// StaffReply sends a moderator's reply (message messageID) to the
	// requester and the ticket's CC participants.
	StaffReply(ctx context.Context, st *tickets.Store, dedupe string, messageID int64) error
	// CommandReceipt tells a moderator which of their commands were
	// applied and which were refused, in the ticket's thread.
	CommandReceipt(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64, to tickets.User, inReplyTo string, lines []ReceiptLine) error
	// ReplyAddressUsed tells a staff member that someone else, who, wrote
	// to their signed reply address of a ticket; the mail is held for
	// staff, and lines are its command lines, none of which ran.
	ReplyAddressUsed(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64, owner tickets.User, who string, lines []ReceiptLine) error
}

// ReopenPolicy decides what a requester's reply to a Completed ticket does.
type ReopenPolicy struct {
	// NewTicketAfter: a reply to a ticket completed longer ago than this
	// opens a new ticket linked to it; a newer one reopens the ticket.
	// 0 always reopens.
	NewTicketAfter time.Duration
}

// Options configure an Intake.
type Options struct {
	// Pool is the database everything is written to. Required.
	Pool *pgxpool.Pool
	// Logger gets one line per mail; nil discards.
	Logger *slog.Logger
	// Metrics counts mails by source and outcome; nil records nothing.
	Metrics *metrics.Metrics
	// SupportAddress is ticketd's address (support@example.com). Signed
	// reply addresses are its sub-addresses (support+<token>@example.com).
	// Required.
	SupportAddress string
	// Aliases are the other addresses that deliver to ticketd.
	Aliases []string
	// BounceAddress is the mailbox of the return paths of ticketd's mail
	// (bounces+<token>@domain, see outbound.NotifierOptions.BounceAddress);
	// default signing.BounceMailbox of SupportAddress. A delivery report
	// marks an address bouncing only when it comes back to one of them.
	BounceAddress string
	// Keys verify the tokens of signed reply addresses. Required.
	Keys *signing.Keys
	// Notifier queues staff replies and command receipts. Required.
	Notifier Notifier
	// Authenticator checks SPF, DKIM and DMARC of every mail taken by SMTP,
	// where ticketd is the MX; its verdict is stored with the mail and
	// written into it. nil checks nothing: such mail is not
	// authenticated.
	Authenticator *mailauth.Checker
	// TrustedAuthServers are the authserv-ids (RFC 8601) whose
	// Authentication-Results fields are believed for mail taken by IMAP:
	// the hosts in front of the mailbox that check DKIM and DMARC.
	TrustedAuthServers []string
	// AllowUnauthenticatedCommands lets mailed commands run without an
	// authenticated From (COMMANDS_REQUIRE_AUTH=false, for closed
	// networks): a valid reply address and the matching From suffice,
	// unless DMARC or DKIM fails for the From domain. By default a staff
	// member's mail needs DMARC to pass, or where the domain publishes no
	// DMARC record an aligned DKIM or SPF pass.
	AllowUnauthenticatedCommands bool
	// Reopen decides what a reply to a Completed ticket does.
	Reopen ReopenPolicy
	// QuarantineAutoGenerated and QuarantineBulk hold auto-generated
	// (monitoring alerts, forms) and bulk mail that matches no ticket in
	// the quarantine instead of opening a ticket for it.
	QuarantineAutoGenerated bool
	QuarantineBulk          bool
	// ModeratorsSeeUnassigned is the web's setting of the same name: a
	// moderator's mailed commands reach the tickets the web would let them
	// change (tickets.Permit).
	ModeratorsSeeUnassigned bool
	// MaxParticipants bounds the people of a ticket, its requester
	// included (default 20): the addresses of an opening mail past it
	// become neither users nor participants, and are listed on the ticket
	// as not added. Each participant gets every reply, so the mail one
	// message causes is bounded too.
	MaxParticipants int
	// MaxMessageBytes rejects larger mails permanently; 0: no limit here
	// (receivers have their own).
	MaxMessageBytes int64
	// MaxAttachmentBytes is the largest attachment whose content is kept in
	// the attachments table (larger ones keep size and hash; the raw mail
	// still holds them); 0 means 25 MiB. MaxAttachments bounds how many are
	// recorded; 0 means 100.
	MaxAttachmentBytes int64
	MaxAttachments     int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports what is missing from o, so that main fails at boot
// rather than at the first mail.
func (o Options) Validate() error {
	var missing []string
	if o.Pool == nil {
		missing = append(missing, "Pool")
	}
	if _, _, ok := strings.Cut(o.SupportAddress, "@"); !ok {
		missing = append(missing, "SupportAddress")
	}
	if o.Keys == nil {
		missing = append(missing, "Keys")
	}
	if o.Notifier == nil {
		missing = append(missing, "Notifier")
	}
	if len(missing) > 0 {
		return fmt.Errorf("inbound: options lack %s", strings.Join(missing, ", "))
	}
	return nil
}

// DefaultMaxParticipants is Options.MaxParticipants when it is not set.
const DefaultMaxParticipants = 20

// Intake delivers mail into ticketd.
type Intake struct {
	opt     Options
	err     error // from Validate: every delivery fails with it
	log     *slog.Logger
	support string   // normalized SupportAddress
	bounce  string   // normalized BounceAddress
	own     []string // normalized SupportAddress, Aliases and BounceAddress
	now     func() time.Time
}

// New returns an Intake. Options that fail Validate make every Deliver fail
// with a temporary error, so no mail is lost while ticketd is misconfigured.
func New(o Options) *Intake {
	in := &Intake{opt: o, err: o.Validate(), log: o.Logger, now: o.Now}
	if in.log == nil {
		in.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if in.now == nil {
		in.now = time.Now
	}
	if in.opt.MaxParticipants <= 0 {
		in.opt.MaxParticipants = DefaultMaxParticipants
	}
	in.support = tickets.NormalizeEmail(o.SupportAddress)
	in.bounce = tickets.NormalizeEmail(o.BounceAddress)
	if in.bounce == "" {
		in.bounce = signing.BounceMailbox(in.support)
	}
	in.own = append(in.own, in.support, in.bounce)
	for _, a := range o.Aliases {
		if a = tickets.NormalizeEmail(a); a != "" {
			in.own = append(in.own, a)
		}
	}
	return in
}

// Accepts reports whether ticketd takes mail for rcpt: the support address,
// an alias, the bounce mailbox, or a sub-address of one of them (which
// covers every signed reply address and return path, valid or not: an
// expired or tampered one is still received and kept, so its sender can be
// told why nothing happened, and nothing is lost). The SMTP
// receiver refuses every other recipient at RCPT (RFC 5321 3.3), so
// ticketd is never an open relay.
func (in *Intake) Accepts(rcpt string) bool {
	return in.isOwn(strings.Trim(strings.TrimSpace(rcpt), "<>"))
}

// isOwn reports whether addr is one of ticketd's addresses or a
// sub-address of one (local+detail@domain).
func (in *Intake) isOwn(addr string) bool {
	addr = tickets.NormalizeEmail(addr)
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return false
	}
	base := addr
	if plus := strings.IndexByte(addr[:at], '+'); plus > 0 {
		base = addr[:plus] + addr[at:]
	}
	for _, o := range in.own {
		if addr == o || base == o {
			return true
		}
	}
	return false
}

// public drops ticketd's sub-addresses from a list of recipients: a signed
// reply address is its owner's secret, and a message's To and Cc are shown
// to others.
func (in *Intake) public(list []string) []string {
	out := list[:0:0]
	for _, a := range list {
		if n := tickets.NormalizeEmail(a); in.isOwn(n) && !slices.Contains(in.own, n) {
			continue
		}
		out = append(out, a)
	}
	return out
}

var validSources = map[string]bool{"smtp": true, "imap": true, "web": true, "api": true}

// Deliver stores one mail and everything it causes in one transaction and
// returns after the commit. A mail delivered before (the same bytes, or the
// same Message-ID from the same sender) returns the earlier Result with
// Duplicate set and stores nothing. An error wrapping ErrRejected is
// permanent; any other error means nothing was stored and the mail should
// be offered again later. raw must not change until Deliver returns.
func (in *Intake) Deliver(ctx context.Context, raw []byte, src Source) (res Result, err error) {
	defer func() {
		// A bug must not take the receiver down with it: the mail is
		// not stored (the transaction rolled back) and is offered again.
		if r := recover(); r != nil {
			in.log.Error("delivery panicked", "err", r, "stack", string(debug.Stack()))
			res, err = Result{}, fmt.Errorf("inbound: deliver: internal error: %v", r)
		}
	}()
	if in.err != nil {
		return Result{}, in.err
	}
	if !validSources[src.Kind] {
		return Result{}, fmt.Errorf("%w: unknown source kind %q", ErrRejected, src.Kind)
	}
	if src.Kind == "imap" && src.Mailbox == "" {
		return Result{}, fmt.Errorf("%w: imap source without a mailbox", ErrRejected)
	}
	if len(raw) == 0 {
		return Result{}, fmt.Errorf("%w: empty message", ErrRejected)
	}
	if max := in.opt.MaxMessageBytes; max > 0 && int64(len(raw)) > max {
		return Result{}, fmt.Errorf("%w: message of %d bytes is over the limit of %d", ErrRejected, len(raw), max)
	}
	start := time.Now()
	d := in.prepare(ctx, raw, src)
	for attempt := 1; ; attempt++ {
		res, err = in.deliverTx(ctx, d)
		if err == nil || attempt == 3 || !retryable(err) || ctx.Err() != nil {
			break
		}
		in.log.Info("delivery conflicted with another, trying again", "err", err, "attempt", attempt)
	}
	if err != nil {
		in.log.Error("delivery failed", connAttrs(src, "header_message_id", d.headerID, "source", src.Kind, "err", err)...)
		return Result{}, fmt.Errorf("inbound: deliver %q: %w", d.headerID, err)
	}
	in.opt.Metrics.MailAccepted(src.Kind, res.outcome(), time.Since(start))
	if k := d.m.Auto.Kind; k != mailparse.KindNone && k != "" && !res.Duplicate {
		in.opt.Metrics.AutomaticMail(string(k))
	}
	in.log.Info("mail delivered", connAttrs(src, "ticket_id", res.TicketID, "message_id", res.MessageID,
		"header_message_id", d.headerID, "rule", res.Rule, "duplicate", res.Duplicate,
		"quarantined", res.Quarantined, "auto_kind", string(d.m.Auto.Kind), "source", src.Kind,
		"problems", len(d.m.Problems))...)
	return res, nil
}

// connAttrs adds the receiver's connection id to log attributes when there
// is one.
func connAttrs(src Source, args ...any) []any {
	if src.ConnID != "" {
		args = append(args, "cid", src.ConnID)
	}
	return args
}

// outcome names what happened, for metrics: ticket, reply, duplicate or
// quarantine.
func (r Result) outcome() string {
	switch {
	case r.Duplicate:
		return "duplicate"
	case r.Quarantined:
		return "quarantine"
	case r.Rule == RuleNew || r.Rule == RuleLinked:
		return "ticket"
	}
	return "reply"
}

// retryable reports errors that another try can get past: a lost
// serialization race or deadlock between two deliveries, or a unique key
// that a concurrent delivery took first.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", "40P01", "23505":
		return true
	}
	return false
}

// delivery is one mail, parsed, with everything known before touching the
// database.
type delivery struct {
	raw      []byte // as it arrived
	stored   []byte // what raw_messages keeps: raw with ticketd's Authentication-Results on top
	sum      [32]byte
	src      Source
	m        *mailparse.Message
	sender   mailparse.Address // From, or the best fallback; Address "" when none is usable
	headerID string            // the Message-ID field without <>, "" when missing
	altID    string            // the id stored when another sender used headerID before
	tokens   []replyToken      // signed reply addresses among the recipients
	verdict  *mailauth.Verdict // who sent it, by SPF, DKIM and DMARC; nil when not checked
	returned []returnToken     // return paths of ticketd's mail among the recipients
	now      time.Time
}

// maxMessageID is the longest Message-ID kept as the mail's own, in bytes.
const maxMessageID = 990

func (in *Intake) prepare(ctx context.Context, raw []byte, src Source) *delivery {
	d := &delivery{raw: raw, stored: raw, sum: sha256.Sum256(raw), src: src, now: in.now()}
	d.m, d.sender = parseMail(raw, src, in.opt.MaxAttachmentBytes, in.opt.MaxAttachments)
	from := clean(strings.TrimSpace(d.m.From.Address))
	switch {
	case src.Kind == "smtp" && in.opt.Authenticator != nil:
		host, _, err := net.SplitHostPort(src.RemoteAddr)
		if err != nil {
			host = src.RemoteAddr
		}
		v := in.opt.Authenticator.Check(ctx, raw, mailauth.Envelope{IP: net.ParseIP(host), Helo: src.Helo,
			MailFrom: src.MailFrom}, tickets.NormalizeEmail(from))
		d.verdict = &v
		// The stored mail says what was found, and no earlier field
		// may claim to (RFC 8601 5). The hash stays that of the bytes
		// as they came, so that a retry is recognised whatever DNS
		// answers it.
		d.stored = mailauth.Stamp(raw, v)
	case src.Kind == "imap":
		d.verdict = trustedVerdict(d.m.AuthenticationResults, in.opt.TrustedAuthServers, tickets.NormalizeEmail(from))
	}
	d.headerID = clean(d.m.MessageID)
	if len(d.headerID) > maxMessageID {
		// Longer than a header line may be (RFC 5322 2.1.1), and than
		// an index entry can hold: the mail is stored as one without a
		// Message-ID, under an id made from its bytes.
		d.headerID = ""
	}
	if d.headerID != "" {
		h := sha256.Sum256([]byte(tickets.NormalizeEmail(d.sender.Address)))
		d.altID = "td-" + hex.EncodeToString(h[:6]) + "-" + d.headerID
	}
	d.tokens = in.replyTokens(d)
	d.returned = in.returnTokens(d)
	return d
}

// parseMail reads a mail and picks its sender, the same way for Deliver and
// for re-processing.
func parseMail(raw []byte, src Source, maxAttachmentBytes int64, maxAttachments int) (*mailparse.Message, mailparse.Address) {
	opt := mailparse.Options{MaxAttachmentBytes: maxAttachmentBytes, MaxAttachments: maxAttachments}
	if src.Kind == "smtp" {
		// RFC 5321 4.5.5: bounces come from the null reverse-path.
		mf := src.MailFrom
		opt.EnvelopeFrom = &mf
	}
	m := mailparse.Parse(raw, opt)
	return m, pickSender(m, src)
}

// storedID is the Message-ID messages.message_id gets when nobody else used
// the mail's own: a mail without one gets an id made from its bytes, which
// a resend of the same bytes repeats.
func (d *delivery) storedID() string {
	if d.headerID != "" {
		return d.headerID
	}
	return "td-" + hex.EncodeToString(d.sum[:16]) + "@ticketd.invalid"
}

// pickSender chooses whose mail this is: From (RFC 5322 3.6.2), or when it
// is missing or unreadable Sender, Reply-To, Return-Path and the SMTP
// envelope sender, in that order.
func pickSender(m *mailparse.Message, src Source) mailparse.Address {
	cands := []mailparse.Address{m.From, m.Sender}
	cands = append(cands, m.ReplyTo...)
	cands = append(cands, mailparse.Address{Address: m.ReturnPath})
	if src.Kind == "smtp" {
		cands = append(cands, mailparse.Address{Address: src.MailFrom})
	}
	for _, c := range cands {
		if a := clean(strings.TrimSpace(c.Address)); plausibleAddress(a) {
			return mailparse.Address{Name: clean(c.Name), Address: tickets.NormalizeEmail(a)}
		}
	}
	return mailparse.Address{}
}

// byMail reports whether the mail came by mail (SMTP or IMAP), not written
// on the portal or through the API.
func (d *delivery) byMail() bool { return d.src.Kind == "smtp" || d.src.Kind == "imap" }

// senderIsFrom reports whether the sender was taken from the From field,
// not from one of pickSender's fallbacks.
func (d *delivery) senderIsFrom() bool {
	from := clean(strings.TrimSpace(d.m.From.Address))
	return d.sender.Address != "" && plausibleAddress(from) && tickets.NormalizeEmail(from) == d.sender.Address
}

// plausibleAddress accepts local@domain with no spaces or brackets: enough
// to mail it and to recognise it next time.
func plausibleAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 320 {
		return false
	}
	if strings.ContainsAny(a, " \t\r\n<>()[],;:\\\"") && !strings.HasPrefix(a, `"`) {
		return false
	}
	return strings.Contains(a[at+1:], ".") || a[at+1:] == "localhost"
}

// clean makes a string storable in PostgreSQL text: valid UTF-8 without NUL.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

func cleanAll(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s = clean(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func addresses(list []mailparse.Address) []string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		if s := clean(strings.TrimSpace(a.Address)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// deliverTx runs one delivery attempt in one transaction. The usual mail, a
// new ticket from a known sender, takes two round trips to PostgreSQL: one
// that begins the transaction, takes the mail's intake lock, looks for an
// earlier delivery and stores the raw bytes (tickets.BeginIntake), and one
// that writes the ticket, its message, audit entry, event and trace and
// commits.
func (in *Intake) deliverTx(ctx context.Context, d *delivery) (Result, error) {
	// Deliveries of the same mail take turns, so the second sees the
	// first's commit and becomes a duplicate.
	key := d.headerID
	if key == "" {
		key = hex.EncodeToString(d.sum[:])
	}
	q := tickets.IntakeStart{LockKey: key, Sender: d.sender.Address, Raw: d.rawRow(),
		ReserveMessage: d.sender.Address != "" && !in.isOwn(d.sender.Address), ReserveTicket: in.surelyOpens(d)}
	if d.headerID != "" {
		// The same Message-ID from the same sender is the same mail,
		// resent with other bytes (RFC 5322 3.6.4: a Message-ID names
		// one message): then nothing is stored.
		q.MessageID, q.AltID = d.headerID, d.altID
	}
	tx, got, err := tickets.BeginIntake(ctx, in.opt.Pool, q)
	if err != nil {
		return Result{}, err
	}
	defer tx.Rollback(ctx)
	res, err := in.deliverIn(ctx, tx, d, got)
	if err != nil {
		return Result{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return Result{}, err
	}
	return res, nil
}

// deliverIn does the rest of a delivery in its transaction.
func (in *Intake) deliverIn(ctx context.Context, tx *tickets.IntakeTx, d *delivery, got tickets.IntakeBegun) (Result, error) {
	st := tickets.On(tx)
	if got.Earlier != nil {
		return duplicate(*got.Earlier), in.traceDuplicate(ctx, st, d, *got.Earlier, 0)
	}
	msgID := d.storedID()
	if got.Taken {
		// Another sender used this Message-ID before: keep both mails,
		// this one under an id of its own; the raw message keeps the
		// header as it came.
		msgID = d.altID
	}
	rawID := got.RawID
	if rawID == 0 {
		// The same bytes arrived before.
		id, err := st.RawMessageBySHA256(ctx, d.sum[:])
		if err != nil {
			return Result{}, err
		}
		rec, err := st.IntakeOfRaw(ctx, id)
		if err == nil {
			return duplicate(rec), in.traceDuplicate(ctx, st, d, rec, id)
		}
		if !errors.Is(err, tickets.ErrNotFound) {
			return Result{}, err
		}
		// Raw bytes stored without an outcome (imported by hand):
		// process them now.
		rawID = id
	}
	p := &process{in: in, d: d, tx: tx, st: st, rawID: rawID, msgID: msgID, tr: newTracer(in, d),
		ids: reservedIDs{message: got.MessageID, event: got.EventID, ticket: got.TicketID}}
	if d.sender.Address != "" {
		p.sender, p.senderLooked = got.Sender, true
	}
	res, err := p.run(ctx)
	if err != nil {
		return Result{}, err
	}
	return res, p.record(ctx, res)
}

// surelyOpens reports whether a mail that is no duplicate opens a ticket
// whatever the database holds: a sender who is not ticketd, nothing that
// threads it (no signed reply address, In-Reply-To, References or subject
// tag), and a kind that opens tickets here. Its ticket id is then reserved
// in the first round trip.
func (in *Intake) surelyOpens(d *delivery) bool {
	if d.sender.Address == "" || in.isOwn(d.sender.Address) {
		return false
	}
	for i := range d.tokens {
		if d.tokens[i].authentic() {
			return false
		}
	}
	if clean(d.m.InReplyTo) != "" || len(cleanAll(d.m.References)) > 0 || subjectTag.MatchString(d.m.Subject) {
		return false
	}
	switch kind := d.m.Auto.Kind; {
	case !kind.OpensTicket(),
		kind == mailparse.KindAutoGenerated && in.opt.QuarantineAutoGenerated,
		kind == mailparse.KindBulk && in.opt.QuarantineBulk:
		return false
	}
	return true
}

func duplicate(rec tickets.IntakeRecord) Result {
	r := Result{TicketID: rec.TicketID, MessageID: rec.MessageID, Duplicate: true, Rule: rec.ThreadRule}
	if rec.QuarantineID != 0 {
		r.Quarantined, r.Rule = true, RuleQuarantine
	}
	return r
}

func (d *delivery) rawRow() tickets.NewRawMessage {
	r := tickets.NewRawMessage{SHA256: d.sum[:], Data: d.stored, Source: d.src.Kind, RcptTo: cleanAll(d.src.RcptTo)}
	if d.verdict != nil {
		r.Auth, _ = json.Marshal(d.verdict) // plain strings and bools: cannot fail
	}
	switch d.src.Kind {
	case "imap":
		mb, uid := clean(d.src.Mailbox), int64(d.src.UID)
		r.Mailbox, r.UID = &mb, &uid
	case "smtp":
		ra, mf := clean(d.src.RemoteAddr), clean(d.src.MailFrom)
		r.RemoteAddr, r.MailFrom = &ra, &mf
	}
	return r
}
