package inbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/mailparse"
	"ticketd/tickets"
)

// Re-processing: ticketd keeps every mail's raw bytes, so a parser fixed
// since can be applied to the past. A Reprocessor reads stored inbound
// mail again with the current parser (the code Deliver uses) and corrects
// what reading the mail produced: the message's subject, sender name,
// text, HTML, reply text, signature and automatic kind, the ticket's
// description when the message opened it, and its attachment rows. It
// never threads again, opens no ticket and queues no event or mail: what
// intake did with a mail stays done.

// Fields re-processing corrects, as ReprocessReport.ByField counts them.
const (
	FieldSubject     = "subject"
	FieldFromName    = "from_name"
	FieldTextBody    = "text_body"
	FieldHTMLBody    = "html_body"
	FieldReplyText   = "reply_text"
	FieldSignature   = "signature"
	FieldAutoKind    = "auto_kind"
	FieldDescription = "description" // the ticket's, when the message opened it
	FieldAttachments = "attachments"
)

// ReprocessOptions configure a Reprocessor.
type ReprocessOptions struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// Logger gets a line per changed message and per batch; nil discards.
	Logger *slog.Logger
	// MaxAttachmentBytes and MaxAttachments are intake's (Options): how
	// much of an attachment is kept, and how many are recorded.
	MaxAttachmentBytes int64
	MaxAttachments     int
	// BatchSize is how many messages are listed at a time; 0 means 100.
	// Each message is re-processed in a transaction of its own.
	BatchSize int
	// Now is the clock of the trace steps; nil means time.Now.
	Now func() time.Time
}

// Reprocessor re-reads stored inbound mail with the current parser.
type Reprocessor struct {
	opt ReprocessOptions
	log *slog.Logger
	now func() time.Time
}

// NewReprocessor returns a Reprocessor.
func NewReprocessor(o ReprocessOptions) *Reprocessor {
	r := &Reprocessor{opt: o, log: o.Logger, now: o.Now}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.opt.BatchSize <= 0 {
		r.opt.BatchSize = 100
	}
	return r
}

// ReprocessRange selects the messages to re-process: those whose raw mail
// was received at or after Since and before Until (zero: no end), after
// the message AfterID (to resume a run that stopped; 0: from the start).
type ReprocessRange struct {
	Since, Until time.Time
	AfterID      int64
	DryRun       bool // say what would change, change nothing
}

// ReprocessReport says what a run did, or with DryRun would do.
type ReprocessReport struct {
	DryRun    bool
	Examined  int
	Changed   int
	Unchanged int
	Skipped   int // not mail intake read: released from the quarantine by an admin
	Failed    int
	ByField   map[string]int
	Changes   []MessageChange  // the first maxReportedChanges
	Failures  []MessageFailure // the first maxReportedChanges
	LastID    int64            // the last message examined: AfterID to resume from
}

// MessageChange is what re-processing changed (or would change) in one
// message.
type MessageChange struct {
	MessageID int64
	TicketID  int64
	Fields    []FieldChange
}

// FieldChange is one corrected field, its values shortened for people.
type FieldChange struct {
	Field    string
	Old, New string
}

// MessageFailure is a message that could not be re-processed.
type MessageFailure struct {
	MessageID int64
	Err       string
}

const maxReportedChanges = 1000

// Run re-processes the messages of rg, one transaction per message, in
// message id order. A message that fails is counted and skipped; Run stops
// early only when ctx ends or the messages cannot be listed, and then
// returns the report so far with the error. Running it again changes
// nothing more: each message is compared with what the current parser
// makes of its mail, and only differences are written.
func (r *Reprocessor) Run(ctx context.Context, rg ReprocessRange) (ReprocessReport, error) {
	rep := ReprocessReport{DryRun: rg.DryRun, ByField: map[string]int{}, LastID: rg.AfterID}
	if r.opt.Pool == nil {
		return rep, errors.New("inbound: reprocess: options lack Pool")
	}
	st := tickets.NewStore(r.opt.Pool)
	for {
		ids, err := st.ReceivedMessages(ctx, rg.Since, rg.Until, rep.LastID, r.opt.BatchSize)
		if err != nil {
			return rep, fmt.Errorf("inbound: reprocess: %w", err)
		}
		if len(ids) == 0 {
			return rep, nil
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return rep, fmt.Errorf("inbound: reprocess: stopped after message %d: %w", rep.LastID, err)
			}
			ch, outcome, err := r.one(ctx, id, rg.DryRun)
			if err != nil && ctx.Err() != nil {
				// Stopped in the middle of this message, whose transaction
				// rolled back: a resumed run takes it again.
				return rep, fmt.Errorf("inbound: reprocess: stopped after message %d: %w", rep.LastID, ctx.Err())
			}
			rep.Examined++
			rep.LastID = id
			switch {
			case err != nil:
				rep.Failed++
				if len(rep.Failures) < maxReportedChanges {
					rep.Failures = append(rep.Failures, MessageFailure{MessageID: id, Err: err.Error()})
				}
				r.log.Error("re-processing a message failed", "message_id", id, "err", err)
			case outcome == outcomeSkipped:
				rep.Skipped++
			case outcome == outcomeUnchanged:
				rep.Unchanged++
			default:
				rep.Changed++
				for _, f := range ch.Fields {
					rep.ByField[f.Field]++
				}
				if len(rep.Changes) < maxReportedChanges {
					rep.Changes = append(rep.Changes, ch)
				}
				var names []string
				for _, f := range ch.Fields {
					names = append(names, f.Field)
				}
				r.log.Info("message re-processed", "message_id", id, "ticket_id", ch.TicketID,
					"fields", names, "dry_run", rg.DryRun)
			}
		}
		r.log.Info("re-processing batch done", "last_message_id", rep.LastID, "examined", rep.Examined,
			"changed", rep.Changed, "failed", rep.Failed)
	}
}

type outcome int

const (
	outcomeUnchanged outcome = iota
	outcomeChanged
	outcomeSkipped
)

// one re-processes a message in a transaction of its own: read-only for a
// dry run, else with the message locked.
func (r *Reprocessor) one(ctx context.Context, id int64, dryRun bool) (ch MessageChange, out outcome, err error) {
	defer func() {
		// A parser bug on one old mail must not stop the run.
		if v := recover(); v != nil {
			r.log.Error("re-processing panicked", "message_id", id, "err", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error: %v", v)
		}
	}()
	opts := pgx.TxOptions{}
	if dryRun {
		opts.AccessMode = pgx.ReadOnly
	}
	err = pgx.BeginTxFunc(ctx, r.opt.Pool, opts, func(tx pgx.Tx) error {
		var err error
		ch, out, err = r.reread(ctx, tickets.On(tx), id, dryRun)
		return err
	})
	if err != nil {
		return MessageChange{}, 0, fmt.Errorf("reprocess message %d: %w", id, err)
	}
	return ch, out, nil
}

// reread compares a message with what the current parser makes of its
// mail and, unless dryRun, writes the differences and a trace step.
func (r *Reprocessor) reread(ctx context.Context, st *tickets.Store, id int64, dryRun bool) (MessageChange, outcome, error) {
	var m tickets.Message
	var err error
	if dryRun {
		m, err = st.Message(ctx, id)
	} else {
		m, err = st.MessageForUpdate(ctx, id)
	}
	if err != nil {
		return MessageChange{}, 0, err
	}
	ch := MessageChange{MessageID: m.ID, TicketID: m.TicketID}
	if m.RawMessageID == nil || m.ThreadRule == RuleQuarantine {
		// Released from the quarantine by an admin: the release, not
		// intake, wrote this message.
		return ch, outcomeSkipped, nil
	}
	raw, err := st.RawMessage(ctx, *m.RawMessageID)
	if err != nil {
		return MessageChange{}, 0, err
	}
	src := Source{Kind: raw.Source, RcptTo: raw.RcptTo}
	if raw.MailFrom != nil {
		src.MailFrom = *raw.MailFrom
	} else if src.Kind == "smtp" {
		src.Kind = "" // the envelope sender is unknown: do not take it for the null sender
	}
	pm, sender := parseMail(raw.Data, src, r.opt.MaxAttachmentBytes, r.opt.MaxAttachments)

	staff, err := r.staffPath(ctx, st, m)
	if err != nil {
		return MessageChange{}, 0, err
	}
	want := tickets.ParsedFields{
		Subject:   clean(pm.Subject),
		FromName:  m.FromName,
		TextBody:  clean(pm.Text),
		HTMLBody:  clean(pm.HTML),
		Signature: clean(pm.Signature),
	}
	if tickets.NormalizeEmail(sender.Address) == tickets.NormalizeEmail(m.FromAddress) {
		// Only the name of the same person: a sender read differently
		// now is not who the message is from.
		want.FromName = sender.Name
	}
	kind := pm.Auto.Kind
	if kind == "" {
		kind = mailparse.KindNone
	}
	why, err := answersOwnMail(ctx, st, pm, kind, m.ThreadRule)
	if err != nil {
		return MessageChange{}, 0, err
	}
	if why != "" {
		kind = mailparse.KindAutoReply
	}
	switch {
	case staff:
		// A staff member's authorised reply or note: its text is the
		// new part without commands or the note marker (staffReply).
		body, _ := internalMarker(pm.Body)
		want.ReplyText = clean(strings.TrimSpace(body))
		want.TextBody, want.HTMLBody = want.ReplyText, ""
		kind = mailparse.KindNone
	case m.Kind == tickets.KindOpening:
		want.ReplyText = clean(openingText(pm))
	default:
		want.ReplyText = clean(pm.Reply)
	}
	want.AutoKind = string(kind)

	have := tickets.ParsedFields{Subject: m.Subject, FromName: m.FromName, TextBody: m.TextBody, HTMLBody: m.HTMLBody,
		ReplyText: m.ReplyText, Signature: m.Signature, AutoKind: m.AutoKind}
	for _, f := range []struct {
		name       string
		have, want string
	}{
		{FieldSubject, have.Subject, want.Subject},
		{FieldFromName, have.FromName, want.FromName},
		{FieldTextBody, have.TextBody, want.TextBody},
		{FieldHTMLBody, have.HTMLBody, want.HTMLBody},
		{FieldReplyText, have.ReplyText, want.ReplyText},
		{FieldSignature, have.Signature, want.Signature},
		{FieldAutoKind, have.AutoKind, want.AutoKind},
	} {
		if f.have != f.want {
			ch.Fields = append(ch.Fields, FieldChange{Field: f.name, Old: shorten(f.have), New: shorten(f.want)})
		}
	}

	// The ticket's description is the opening message's text, unless
	// someone changed it since.
	var describe bool
	if m.Kind == tickets.KindOpening && have.ReplyText != want.ReplyText {
		t, err := st.Ticket(ctx, m.TicketID)
		if err != nil {
			return MessageChange{}, 0, err
		}
		if t.Description == have.ReplyText {
			describe = true
			ch.Fields = append(ch.Fields, FieldChange{Field: FieldDescription, Old: shorten(have.ReplyText), New: shorten(want.ReplyText)})
		}
	}

	stale, missing, err := attachmentDiff(ctx, st, m.ID, pm.Attachments)
	if err != nil {
		return MessageChange{}, 0, err
	}
	if len(stale) > 0 || len(missing) > 0 {
		ch.Fields = append(ch.Fields, FieldChange{Field: FieldAttachments,
			Old: fmt.Sprintf("%d removed", len(stale)), New: fmt.Sprintf("%d added", len(missing))})
	}

	if len(ch.Fields) == 0 {
		return ch, outcomeUnchanged, nil
	}
	if dryRun {
		return ch, outcomeChanged, nil
	}
	if err := st.UpdateParsedFields(ctx, m.ID, want); err != nil {
		return MessageChange{}, 0, err
	}
	if describe {
		if _, err := st.ReplaceDescription(ctx, m.TicketID, have.ReplyText, want.ReplyText); err != nil {
			return MessageChange{}, 0, err
		}
	}
	for _, a := range stale {
		if err := st.DeleteAttachment(ctx, a.ID); err != nil {
			return MessageChange{}, 0, err
		}
	}
	for _, a := range missing {
		if _, err := st.InsertAttachment(ctx, storedAttachment(m.ID, a)); err != nil {
			return MessageChange{}, 0, err
		}
	}
	if err := st.RecordTrace(ctx, r.traceStep(m, raw, ch)); err != nil {
		return MessageChange{}, 0, err
	}
	return ch, outcomeChanged, nil
}

// staffPath reports whether intake stored the message as a staff member's
// authorised reply or note, whose text it takes differently: notes are
// always, and a reply is exactly when intake queued no ticket.replied for
// it (it does for every other reply).
func (r *Reprocessor) staffPath(ctx context.Context, st *tickets.Store, m tickets.Message) (bool, error) {
	switch m.Kind {
	case tickets.KindNote:
		return true, nil
	case tickets.KindReply:
		replied, err := st.HasRepliedEvent(ctx, m.TicketID, m.ID)
		return !replied, err
	}
	return false, nil
}

func (r *Reprocessor) traceStep(m tickets.Message, raw tickets.RawMessage, ch MessageChange) tickets.Trace {
	tr := &tracer{now: r.now}
	var names []string
	var fields []tickets.TraceField
	for _, f := range ch.Fields {
		names = append(names, f.Field)
		fields = append(fields, kv(f.Field, f.Old+" → "+f.New))
	}
	tr.add(StepReprocessed, "read again by the current parser: "+strings.Join(names, ", ")+" changed; nothing else was done again", fields...)
	ticketID := m.TicketID
	return tickets.Trace{RawMessageID: raw.ID, MessageID: m.MessageID, TicketID: &ticketID, Source: raw.Source, Steps: tr.steps}
}

// attachmentKey is what makes two attachment records the same.
func attachmentKey(filename, contentType, contentID string, inline bool, size int64, sum []byte) string {
	return strings.Join([]string{filename, contentType, contentID, strconv.FormatBool(inline),
		strconv.FormatInt(size, 10), hex.EncodeToString(sum)}, "\x00")
}

func storedAttachment(messageID int64, a mailparse.Attachment) tickets.Attachment {
	sum, err := hex.DecodeString(a.SHA256)
	if err != nil || len(sum) != sha256.Size {
		s := sha256.Sum256(a.Data)
		sum = s[:]
	}
	ct := clean(a.ContentType)
	if ct == "" {
		ct = "application/octet-stream" // as InsertAttachment stores it
	}
	return tickets.Attachment{MessageID: messageID, Filename: clean(a.Filename), ContentType: ct,
		ContentID: clean(a.ContentID), Inline: a.Inline, Size: a.Size, SHA256: sum, Data: a.Data}
}

// attachmentDiff compares a message's attachment rows with the
// attachments the parser finds now: stale rows match none of them, missing
// ones match no row. Rows that match stay, with their ids.
func attachmentDiff(ctx context.Context, st *tickets.Store, messageID int64, now []mailparse.Attachment) (stale []tickets.AttachmentInfo, missing []mailparse.Attachment, err error) {
	rows, err := st.MessageAttachments(ctx, messageID)
	if err != nil {
		return nil, nil, err
	}
	have := map[string][]tickets.AttachmentInfo{}
	for _, a := range rows {
		k := attachmentKey(a.Filename, a.ContentType, a.ContentID, a.Inline, a.Size, a.SHA256)
		have[k] = append(have[k], a)
	}
	for _, a := range now {
		s := storedAttachment(messageID, a)
		k := attachmentKey(s.Filename, s.ContentType, s.ContentID, s.Inline, s.Size, s.SHA256)
		if len(have[k]) > 0 {
			have[k] = have[k][1:]
			continue
		}
		missing = append(missing, a)
	}
	for _, left := range have {
		stale = append(stale, left...)
	}
	slices.SortFunc(stale, func(a, b tickets.AttachmentInfo) int { return int(a.ID - b.ID) })
	return stale, missing, nil
}

// shorten shows a value to people: quoted, on one line, at most 60
// characters, with its length when cut.
func shorten(s string) string {
	one := strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(one) <= 60 {
		return strconv.Quote(one)
	}
	r := []rune(one)
	return strconv.Quote(string(r[:57])+"…") + fmt.Sprintf(" (%d characters)", utf8.RuneCountInString(s))
}

// WriteReprocessReport prints a report as `ticketd reprocess` shows it.
func WriteReprocessReport(w io.Writer, rep ReprocessReport) error {
	var b strings.Builder
	verb := "changed"
	if rep.DryRun {
		verb = "would change"
		b.WriteString("Dry run: nothing was written.\n")
	}
	fmt.Fprintf(&b, "examined %d, %s %d, unchanged %d, skipped %d, failed %d\n",
		rep.Examined, verb, rep.Changed, rep.Unchanged, rep.Skipped, rep.Failed)
	if len(rep.ByField) > 0 {
		var parts []string
		for _, f := range []string{FieldSubject, FieldFromName, FieldTextBody, FieldHTMLBody, FieldReplyText,
			FieldSignature, FieldAutoKind, FieldDescription, FieldAttachments} {
			if n := rep.ByField[f]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", f, n))
			}
		}
		fmt.Fprintf(&b, "%s by field: %s\n", verb, strings.Join(parts, ", "))
	}
	for _, c := range rep.Changes {
		fmt.Fprintf(&b, "message #%d of ticket #%d:\n", c.MessageID, c.TicketID)
		for _, f := range c.Fields {
			fmt.Fprintf(&b, "  %s: %s → %s\n", f.Field, f.Old, f.New)
		}
	}
	if n := rep.Changed - len(rep.Changes); n > 0 {
		fmt.Fprintf(&b, "… and %d more messages\n", n)
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(&b, "message #%d failed: %s\n", f.MessageID, f.Err)
	}
	if rep.Examined > 0 {
		fmt.Fprintf(&b, "last message examined: #%d\n", rep.LastID)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
