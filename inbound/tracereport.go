package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"ticketd/tickets"
)

// ErrNoTrace means ticketd neither received nor sent a mail with that
// Message-ID.
var ErrNoTrace = errors.New("inbound: ticketd neither received nor sent a mail with that Message-ID")

// TraceReport is a mail's trace and what followed from it: the events it
// caused with the mails the workflows queued for each and how their
// delivery went, the mails intake queued itself, and for a mail that
// opened a ticket, the triage decision.
type TraceReport struct {
	Trace  tickets.Trace
	Ticket *TicketBrief // nil when the mail reached no ticket
	Events []EventReport
	Mails  []tickets.MailStatus // the mails intake queued, as they are now
	Triage []tickets.AIDecision // for a mail that opened its ticket
}

// TicketBrief is the ticket a mail reached, as it is now.
type TicketBrief struct {
	ID               int64
	Subject          string
	Status           tickets.Status
	Assignee         string // address; "" when unassigned
	AssignmentReason string
}

// EventReport is an event a mail caused and what became of it.
type EventReport struct {
	tickets.TraceEvent
	Status *tickets.EventStatus // nil when the outbox row is gone
	Mails  []tickets.MailStatus // queued by the workflow the event started
}

// FollowLine is one line of what followed a mail, indented by Depth.
type FollowLine struct {
	Depth int
	Text  string
	State string // pending, sent, failed, waiting, relayed or "" for plain facts
}

// LoadTraces returns the traces of the mails received under messageID
// (with or without <>), with what followed from each. It returns
// ErrNoTrace when there is none.
func LoadTraces(ctx context.Context, st *tickets.Store, messageID string) ([]TraceReport, error) {
	id := strings.Trim(strings.TrimSpace(messageID), "<>")
	traces, err := st.TracesByMessageID(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(traces) == 0 {
		return nil, ErrNoTrace
	}
	return reports(ctx, st, traces)
}

// TicketTraceReports returns the traces of a ticket's mails with what
// followed from each, by raw message id (messages.raw_message_id).
func TicketTraceReports(ctx context.Context, st *tickets.Store, ticketID int64) (map[int64]TraceReport, error) {
	traces, err := st.TicketTraces(ctx, ticketID)
	if err != nil {
		return nil, err
	}
	reps, err := reports(ctx, st, traces)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]TraceReport, len(reps))
	for _, r := range reps {
		out[r.Trace.RawMessageID] = r
	}
	return out, nil
}

// ticketFacts is what the reports of one ticket's mails draw on, loaded
// once per ticket.
type ticketFacts struct {
	brief     TicketBrief
	events    map[int64]tickets.EventStatus
	mails     []tickets.MailStatus
	decisions []tickets.AIDecision
}

func loadTicketFacts(ctx context.Context, st *tickets.Store, id int64) (*ticketFacts, error) {
	t, err := st.Ticket(ctx, id)
	if errors.Is(err, tickets.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f := &ticketFacts{brief: TicketBrief{ID: t.ID, Subject: t.Subject, Status: t.Status, AssignmentReason: t.AssignmentReason},
		events: map[int64]tickets.EventStatus{}}
	if t.AssigneeID != nil {
		u, err := st.User(ctx, *t.AssigneeID)
		if err != nil {
			return nil, err
		}
		f.brief.Assignee = u.Email
	}
	evs, err := st.TicketEvents(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		f.events[e.ID] = e
	}
	if f.mails, err = st.TicketMailStatuses(ctx, id); err != nil {
		return nil, err
	}
	if f.decisions, err = st.AIDecisions(ctx, id); err != nil {
		return nil, err
	}
	return f, nil
}

func reports(ctx context.Context, st *tickets.Store, traces []tickets.Trace) ([]TraceReport, error) {
	facts := map[int64]*ticketFacts{}
	var out []TraceReport
	for _, tr := range traces {
		r := TraceReport{Trace: tr}
		if tr.TicketID == nil {
			out = append(out, r)
			continue
		}
		f, ok := facts[*tr.TicketID]
		if !ok {
			var err error
			if f, err = loadTicketFacts(ctx, st, *tr.TicketID); err != nil {
				return nil, err
			}
			facts[*tr.TicketID] = f
		}
		if f == nil {
			out = append(out, r)
			continue
		}
		brief := f.brief
		r.Ticket = &brief
		byID := map[int64]tickets.MailStatus{}
		for _, m := range f.mails {
			byID[m.ID] = m
		}
		created := false
		for _, s := range tr.Steps {
			for _, ev := range s.Events {
				er := EventReport{TraceEvent: ev, Mails: mailsOfEvent(ev, brief.ID, f.mails)}
				if es, ok := f.events[ev.ID]; ok {
					er.Status = &es
				}
				r.Events = append(r.Events, er)
				created = created || ev.Name == tickets.EventCreated
			}
			for _, id := range s.Mails {
				if m, ok := byID[id]; ok {
					r.Mails = append(r.Mails, m)
				}
			}
		}
		if created {
			r.Triage = f.decisions
		}
		out = append(out, r)
	}
	return out, nil
}

// mailsOfEvent finds the mails the workflows queued for an event, by their
// dedupe keys: the workflow started by ticket.created keys its mails with
// "ticket.created/<ticket id>/" (workflows' triageKey, one triage per
// ticket), the others with the Inngest event id "ticketd-<outbox id>" the
// relay sent the event under (workflows.EventID), as one segment of the
// key the Notifier scopes with the kind of mail.
func mailsOfEvent(ev tickets.TraceEvent, ticketID int64, mails []tickets.MailStatus) []tickets.MailStatus {
	var out []tickets.MailStatus
	created := "ticket.created/" + strconv.FormatInt(ticketID, 10) + "/"
	eventID := "ticketd-" + strconv.FormatInt(ev.ID, 10)
	for _, m := range mails {
		if ev.Name == tickets.EventCreated {
			if strings.HasPrefix(m.DedupeKey, created) || strings.Contains(m.DedupeKey, "/"+created) {
				out = append(out, m)
			}
			continue
		}
		for _, seg := range strings.Split(m.DedupeKey, "/") {
			if seg == eventID {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// Followed says what followed the mail, line by line.
func (r TraceReport) Followed() []FollowLine {
	var out []FollowLine
	if r.Trace.TicketID != nil && r.Ticket == nil {
		out = append(out, FollowLine{Text: fmt.Sprintf("ticket #%d no longer exists", *r.Trace.TicketID)})
	}
	for _, e := range r.Events {
		line := FollowLine{Text: fmt.Sprintf("event #%d %s", e.ID, e.Name)}
		switch s := e.Status; {
		case s == nil:
			line.Text += ": no longer in the outbox"
		case s.SentAt != nil:
			line.State = "relayed"
			line.Text += fmt.Sprintf(": taken by the workflow engine at %s", stamp(*s.SentAt))
		default:
			line.State = "waiting"
			line.Text += fmt.Sprintf(": waiting in the outbox, %d attempts", s.Attempts)
			if s.LastError != "" {
				line.Text += ", last error: " + bound(s.LastError)
			}
		}
		out = append(out, line)
		for _, m := range e.Mails {
			out = append(out, mailLine(1, m))
		}
		if len(e.Mails) == 0 && e.Status != nil && e.Status.SentAt != nil {
			out = append(out, FollowLine{Depth: 1, Text: "no mail queued for it (yet, or the workflow decided none was due)"})
		}
		if e.Name == tickets.EventCreated {
			out = append(out, r.triageLines()...)
		}
	}
	if len(r.Mails) > 0 {
		out = append(out, FollowLine{Text: "mails queued by intake"})
		for _, m := range r.Mails {
			out = append(out, mailLine(1, m))
		}
	}
	return out
}

func (r TraceReport) triageLines() []FollowLine {
	if len(r.Triage) == 0 {
		return []FollowLine{{Depth: 1, Text: "triage: no decision yet"}}
	}
	var out []FollowLine
	for _, d := range r.Triage {
		text := "triage by " + d.Provider
		if d.Model != "" {
			text += " (" + d.Model + ")"
		}
		var res struct {
			Priority string   `json:"priority"`
			Skills   []string `json:"skills"`
			Category string   `json:"category"`
			Language string   `json:"language"`
		}
		if len(d.Output) > 0 && json.Unmarshal(d.Output, &res) == nil {
			text += ": priority " + res.Priority
			if len(res.Skills) > 0 {
				text += ", skills " + strings.Join(res.Skills, ", ")
			}
			if res.Category != "" {
				text += ", category " + res.Category
			}
		} else {
			text += ": no result"
		}
		text += fmt.Sprintf(", %d ms", d.LatencyMS)
		if d.Error != "" {
			text += "; " + bound(d.Error)
		}
		out = append(out, FollowLine{Depth: 1, Text: text})
	}
	if r.Ticket != nil {
		if r.Ticket.Assignee != "" {
			text := "assigned to " + r.Ticket.Assignee
			if r.Ticket.AssignmentReason != "" {
				text += ": " + bound(r.Ticket.AssignmentReason)
			}
			out = append(out, FollowLine{Depth: 1, Text: text})
		} else {
			out = append(out, FollowLine{Depth: 1, Text: "not assigned"})
		}
	}
	return out
}

func mailLine(depth int, m tickets.MailStatus) FollowLine {
	text := fmt.Sprintf("mail #%d %s to %s: %s", m.ID, m.Kind, strings.Join(m.Recipients, ", "), m.Status)
	switch {
	case m.Status == tickets.MailSent && m.SentAt != nil:
		text += " at " + stamp(*m.SentAt)
	case m.Status == tickets.MailPending && m.Attempts > 0:
		text += fmt.Sprintf(", %d attempts", m.Attempts)
	}
	if m.LastError != "" {
		text += ", last error: " + bound(m.LastError)
	}
	return FollowLine{Depth: depth, Text: text, State: m.Status}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// WriteTraces prints reports as `ticketd trace` shows them.
func WriteTraces(w io.Writer, reports []TraceReport) error {
	var b strings.Builder
	for i, r := range reports {
		if i > 0 {
			b.WriteString("\n")
		}
		t := r.Trace
		fmt.Fprintf(&b, "Mail <%s>: trace #%d of raw message #%d, received %s by %s\n",
			t.MessageID, t.ID, t.RawMessageID, stamp(t.CreatedAt), t.Source)
		switch {
		case r.Ticket != nil:
			fmt.Fprintf(&b, "Ticket #%d %q: %s", r.Ticket.ID, r.Ticket.Subject, r.Ticket.Status.Label())
			if r.Ticket.Assignee != "" {
				fmt.Fprintf(&b, ", assigned to %s", r.Ticket.Assignee)
			}
			b.WriteString("\n")
		case t.TicketID != nil:
			fmt.Fprintf(&b, "Ticket #%d: no longer exists\n", *t.TicketID)
		default:
			b.WriteString("Ticket: none\n")
		}
		b.WriteString("\n")
		for _, s := range t.Steps {
			fmt.Fprintf(&b, "%-12s %s  %s\n", s.Step, stamp(s.At), s.Summary)
			for _, f := range s.Fields {
				fmt.Fprintf(&b, "%13s%s: %s\n", "", f.Key, f.Value)
			}
		}
		if t.DroppedSteps > 0 {
			fmt.Fprintf(&b, "(%d later steps not kept: the trace is full)\n", t.DroppedSteps)
		}
		if lines := r.Followed(); len(lines) > 0 {
			b.WriteString("\nWhat followed:\n")
			for _, l := range lines {
				fmt.Fprintf(&b, "%s%s\n", strings.Repeat("  ", l.Depth+1), l.Text)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// PrintTrace prints the traces of the mails received under messageID, as
// `ticketd trace` does. For a Message-ID of a mail ticketd sent, it says
// what that mail is and how its delivery went. It returns ErrNoTrace when
// ticketd knows no mail with that Message-ID.
func PrintTrace(ctx context.Context, st *tickets.Store, w io.Writer, messageID string) error {
	reps, err := LoadTraces(ctx, st, messageID)
	if err == nil {
		return WriteTraces(w, reps)
	}
	if !errors.Is(err, ErrNoTrace) {
		return err
	}
	id := strings.Trim(strings.TrimSpace(messageID), "<>")
	m, err := st.MailStatusByMessageID(ctx, id)
	if errors.Is(err, tickets.ErrNotFound) {
		return fmt.Errorf("<%s>: %w", id, ErrNoTrace)
	}
	if err != nil {
		return err
	}
	ticket := "no ticket"
	if m.TicketID != nil {
		ticket = "ticket #" + strconv.FormatInt(*m.TicketID, 10)
	}
	l := mailLine(0, m)
	_, err = fmt.Fprintf(w, "Mail <%s> was sent by ticketd, not received: %s mail of %s, queued at %s under %q\n%s\n",
		id, m.Kind, ticket, stamp(m.CreatedAt), m.DedupeKey, l.Text)
	return err
}
