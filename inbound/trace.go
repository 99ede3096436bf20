package inbound

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"ticketd/inbound/mailparse"
	"ticketd/tickets"
)

// Trace steps, in the order intake takes them. Every mail's trace is
// written in the transaction that stores the mail, so it says exactly what
// was committed; a later duplicate delivery and a re-processing append
// their own steps to it.
const (
	StepReceived      = "received"      // how and from where the mail came
	StepParsed        = "parsed"        // subject, sender, attachments, what was malformed
	StepAuthenticated = "authenticated" // who sent it: SPF, DKIM and DMARC, when checked
	StepClassified    = "classified"    // automatic mail or not, and why
	StepThreaded      = "threaded"      // which ticket, by which rule, what matched; or new, linked, quarantine
	StepReopened      = "reopened"      // what a reply did to a Completed ticket
	StepCommands      = "commands"      // each command applied (old -> new) or refused, and why
	StepStored        = "stored"        // the message or quarantine entry, and the raw mail
	StepEvents        = "events"        // the events the mail caused (event_outbox)
	StepMails         = "mails"         // the mails intake queued (mail_outbox)
	StepDuplicate     = "duplicate"     // the same mail delivered again: nothing stored
	StepReprocessed   = "reprocessed"   // a later parser changed what was stored
)

// Bounds of a trace, so that a hostile mail cannot make it large.
const (
	maxTraceValue = 300 // runes of one detail
	maxTraceList  = 10  // items of a listed detail
)

// tracer collects the steps of one delivery attempt.
type tracer struct {
	now    func() time.Time
	steps  []tickets.TraceStep
	dedupe []string // keys of the mails intake queued, to find them afterwards
}

func newTracer(in *Intake, d *delivery) *tracer {
	tr := &tracer{now: in.now}
	tr.add(StepReceived, receivedSummary(d.src), receivedFields(d)...)
	tr.add(StepParsed, parsedSummary(d), parsedFields(d)...)
	if v := d.verdict; v != nil {
		summary := "From not authenticated: " + v.Summary()
		if v.Authenticated() {
			summary = "From authenticated: " + v.Summary()
		}
		f := []tickets.TraceField{kv("authserv_id", v.AuthservID), kv("spf", string(v.SPF.Result)+" "+v.SPF.Domain+" "+v.SPF.Reason)}
		for _, dk := range v.DKIM {
			f = append(f, kv("dkim", string(dk.Result)+" "+dk.Domain+" "+dk.Reason))
		}
		f = append(f, kv("dmarc", string(v.DMARC.Result)+" "+v.DMARC.From+" p="+emptyAs(v.DMARC.Policy, "(no record)")+" "+v.DMARC.Reason))
		tr.add(StepAuthenticated, summary, f...)
	}
	a := d.m.Auto
	kind := a.Kind
	if kind == "" {
		kind = mailparse.KindNone
	}
	summary := "ordinary mail, written by a person"
	if kind != mailparse.KindNone {
		summary = string(kind) + ": " + a.Reason
	}
	fields := []tickets.TraceField{kv("kind", string(kind))}
	if a.Reason != "" {
		fields = append(fields, kv("reason", a.Reason))
	}
	if len(a.Recipients) > 0 {
		fields = append(fields, kvList("reported_recipients", a.Recipients))
	}
	tr.add(StepClassified, summary, fields...)
	return tr
}

// add appends a step.
func (tr *tracer) add(step, summary string, fields ...tickets.TraceField) *tickets.TraceStep {
	tr.steps = append(tr.steps, tickets.TraceStep{Step: step, At: tr.now().UTC(), Summary: bound(summary), Fields: fields})
	return &tr.steps[len(tr.steps)-1]
}

// annotate adds details to the latest step of that name.
func (tr *tracer) annotate(step string, fields ...tickets.TraceField) {
	for i := len(tr.steps) - 1; i >= 0; i-- {
		if tr.steps[i].Step == step {
			tr.steps[i].Fields = append(tr.steps[i].Fields, fields...)
			return
		}
	}
}

// kv is one detail, cleaned and bounded.
func kv(key, value string) tickets.TraceField {
	return tickets.TraceField{Key: key, Value: bound(value)}
}

// kvList is a list detail: at most maxTraceList items, then how many more.
func kvList(key string, values []string) tickets.TraceField {
	shown := values
	if len(shown) > maxTraceList {
		shown = shown[:maxTraceList]
	}
	s := strings.Join(shown, ", ")
	if n := len(values) - len(shown); n > 0 {
		s += fmt.Sprintf(" … and %d more", n)
	}
	return kv(key, s)
}

func kvID(key string, id int64) tickets.TraceField {
	return tickets.TraceField{Key: key, Value: "#" + strconv.FormatInt(id, 10)}
}

// bound makes s storable in jsonb (valid UTF-8, no NUL) and at most
// maxTraceValue runes long, on one line.
func bound(s string) string {
	if boundAlready(s) {
		return s
	}
	s = strings.Join(strings.Fields(clean(s)), " ")
	if utf8.RuneCountInString(s) <= maxTraceValue {
		return s
	}
	r := []rune(s)
	return string(r[:maxTraceValue-1]) + "…"
}

// boundAlready reports whether bound would return s as it is, for the
// usual value: printable ASCII, short, with single spaces between words.
func boundAlready(s string) bool {
	if len(s) > maxTraceValue || s == "" {
		return len(s) == 0
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ':
			if s[i-1] == ' ' {
				return false
			}
		case c < 0x21 || c > 0x7e:
			return false
		}
	}
	return true
}

func receivedSummary(src Source) string {
	switch src.Kind {
	case "smtp":
		s := "by SMTP"
		if src.RemoteAddr != "" {
			s += " from " + src.RemoteAddr
		}
		if src.ConnID != "" {
			s += " (cid " + src.ConnID + ")"
		}
		s += ", MAIL FROM <" + src.MailFrom + ">"
		if len(src.RcptTo) > 0 {
			s += " to " + strings.Join(src.RcptTo, ", ")
		}
		return s
	case "imap":
		return fmt.Sprintf("by IMAP from %s, UID %d", src.Mailbox, src.UID)
	case "web":
		return "through the web portal"
	case "api":
		return "through the API"
	}
	return "by " + src.Kind
}

func receivedFields(d *delivery) []tickets.TraceField {
	src := d.src
	f := []tickets.TraceField{kv("source", src.Kind)}
	switch src.Kind {
	case "smtp":
		f = append(f, kv("remote_addr", src.RemoteAddr))
		if src.ConnID != "" {
			f = append(f, kv("cid", src.ConnID))
		}
		mf := src.MailFrom
		if mf == "" {
			mf = "<> (the null sender of bounces)"
		}
		f = append(f, kv("mail_from", mf))
	case "imap":
		f = append(f, kv("mailbox", src.Mailbox), kv("uid", strconv.FormatUint(uint64(src.UID), 10)))
	}
	if len(src.RcptTo) > 0 {
		f = append(f, kvList("rcpt_to", src.RcptTo))
	}
	f = append(f, kv("size", strconv.Itoa(len(d.raw))+" bytes"), kv("sha256", hex.EncodeToString(d.sum[:8])))
	return f
}

func addressText(a mailparse.Address) string {
	switch {
	case a.Address == "":
		return a.Name
	case a.Name == "":
		return "<" + a.Address + ">"
	}
	return a.Name + " <" + a.Address + ">"
}

func parsedSummary(d *delivery) string {
	m := d.m
	from := addressText(m.From)
	if from == "" {
		from = "no readable From"
	}
	s := fmt.Sprintf("%q from %s", m.Subject, from)
	switch n := len(m.Attachments); n {
	case 0:
	case 1:
		s += ", 1 attachment"
	default:
		s += fmt.Sprintf(", %d attachments", n)
	}
	switch n := len(m.Problems); n {
	case 0:
	case 1:
		s += ", 1 problem"
	default:
		s += fmt.Sprintf(", %d problems", n)
	}
	return s
}

func parsedFields(d *delivery) []tickets.TraceField {
	m := d.m
	f := []tickets.TraceField{kv("subject", m.Subject), kv("from", addressText(m.From))}
	if d.sender.Address == "" {
		f = append(f, kv("sender", "none usable"))
	} else if !strings.EqualFold(d.sender.Address, strings.TrimSpace(m.From.Address)) {
		f = append(f, kv("sender", d.sender.Address+" (From is missing or unreadable)"))
	}
	if len(m.To) > 0 {
		f = append(f, kvList("to", addresses(m.To)))
	}
	if len(m.Cc) > 0 {
		f = append(f, kvList("cc", addresses(m.Cc)))
	}
	if m.MessageID != "" {
		f = append(f, kv("message_id", m.MessageID))
	} else {
		f = append(f, kv("message_id", "none; stored as "+d.storedID()))
	}
	if m.InReplyTo != "" {
		f = append(f, kv("in_reply_to", m.InReplyTo))
	}
	if n := len(m.References); n > 0 {
		f = append(f, kv("references", fmt.Sprintf("%d, newest %s", n, m.References[n-1])))
	}
	if !m.Date.IsZero() {
		f = append(f, kv("date", m.Date.UTC().Format(time.RFC3339)))
	}
	if len(m.Attachments) > 0 {
		var names []string
		for _, a := range m.Attachments {
			name := a.Filename
			if name == "" {
				name = "(unnamed)"
			}
			names = append(names, fmt.Sprintf("%s (%s, %d bytes)", name, a.ContentType, a.Size))
		}
		f = append(f, kvList("attachments", names))
	}
	if len(m.Commands) > 0 {
		var lines []string
		for _, c := range m.Commands {
			lines = append(lines, c.Line)
		}
		f = append(f, kvList("command_lines", lines))
	}
	if len(m.Problems) > 0 {
		f = append(f, kvList("problems", m.Problems))
	} else {
		f = append(f, kv("problems", "none"))
	}
	return f
}

// ruleText says in words what a thread rule means.
func ruleText(rule string) string {
	switch rule {
	case RuleReplyAddress:
		return "its signed reply address"
	case RuleInReplyTo:
		return "In-Reply-To"
	case RuleReferences:
		return "References"
	case RuleSubjectTag:
		return "the subject tag of a ticket the sender is on"
	case RuleReport:
		return "a Message-ID of the thread quoted in the report"
	case RuleReturnPath:
		return "the return path of a mail of the ticket"
	}
	return rule
}

// record writes the delivery's trace: its steps, then the events and mails
// the transaction queued: those the delivery queued itself, or, once other
// code may have queued some too, those found in the database, so that
// nothing the transaction did is missed.
func (p *process) record(ctx context.Context, res Result) error {
	tr := p.tr
	if res.TicketID != 0 {
		evs := p.events
		if p.eventsElsewhere {
			var err error
			if evs, err = p.st.TransactionEvents(ctx, res.TicketID); err != nil {
				return err
			}
		}
		var names []string
		for _, e := range evs {
			names = append(names, fmt.Sprintf("%s #%d", e.Name, e.ID))
		}
		if len(evs) == 0 {
			tr.add(StepEvents, "none")
		} else {
			tr.add(StepEvents, strings.Join(names, ", ")).Events = evs
		}
		ids, err := p.st.MailsByDedupe(ctx, res.TicketID, tr.dedupe)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			tr.add(StepMails, "none queued by intake")
		} else {
			var s []string
			for _, id := range ids {
				s = append(s, "#"+strconv.FormatInt(id, 10))
			}
			tr.add(StepMails, "queued "+strings.Join(s, ", ")).Mails = ids
		}
	} else {
		tr.add(StepEvents, "none")
		tr.add(StepMails, "none queued by intake")
	}
	t := tickets.Trace{RawMessageID: p.rawID, MessageID: p.d.traceID(), Source: p.d.src.Kind, Steps: tr.steps}
	if res.TicketID != 0 {
		id := res.TicketID
		t.TicketID = &id
	}
	return p.st.RecordTrace(ctx, t)
}

// traceID is the Message-ID a trace is found by: the mail's own, or the
// one made for a mail without.
func (d *delivery) traceID() string {
	if d.headerID != "" {
		return d.headerID
	}
	return d.storedID()
}

// Why a delivery is a duplicate, as its trace step says.
const (
	dupSameBytes = "the same bytes as before"
	dupSameID    = "the same Message-ID from the same sender, with other bytes (resent, or relayed another way)"
)

// traceDuplicate appends to the first delivery's trace that the mail came
// again. rawID is the first delivery's raw message when known (the same
// bytes), else 0.
func (in *Intake) traceDuplicate(ctx context.Context, st *tickets.Store, d *delivery, rec tickets.IntakeRecord, rawID int64) error {
	why := dupSameBytes
	if rawID == 0 {
		id, err := st.RawOfIntake(ctx, rec)
		if errors.Is(err, tickets.ErrNotFound) {
			return nil // nothing to append to
		}
		if err != nil {
			return err
		}
		rawID = id
		same, err := st.RawMessageBySHA256(ctx, d.sum[:])
		if err != nil && !errors.Is(err, tickets.ErrNotFound) {
			return err
		}
		if same != rawID {
			why = dupSameID
		}
	}
	of := fmt.Sprintf("message #%d on ticket #%d", rec.MessageID, rec.TicketID)
	if rec.QuarantineID != 0 {
		of = fmt.Sprintf("quarantine entry #%d", rec.QuarantineID)
	}
	tr := &tracer{now: in.now}
	fields := append(receivedFields(d), kv("duplicate_of", of), kv("why", why))
	tr.add(StepDuplicate, "received again "+receivedSummary(d.src)+": "+why+"; nothing stored", fields...)
	t := tickets.Trace{RawMessageID: rawID, MessageID: d.traceID(), Source: d.src.Kind, Steps: tr.steps}
	if rec.TicketID != 0 {
		id := rec.TicketID
		t.TicketID = &id
	}
	return st.RecordTrace(ctx, t)
}
