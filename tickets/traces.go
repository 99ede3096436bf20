package tickets

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mail traces (migration 0006): what intake did with each mail, written in
// the mail's own transaction, and what followed from it.

// Trace is the record of one mail's way through intake.
type Trace struct {
	ID           int64
	RawMessageID int64
	MessageID    string // the mail's Message-ID without <>, or the id ticketd made for it
	TicketID     *int64 // nil when the mail reached no ticket (quarantine)
	Source       string
	Steps        []TraceStep
	DroppedSteps int // steps not kept because the trace was full
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// TraceStep is one thing intake did with a mail.
type TraceStep struct {
	Step    string       `json:"step"` // received, parsed, classified, threaded, ...
	At      time.Time    `json:"at"`
	Summary string       `json:"summary"`
	Fields  []TraceField `json:"fields,omitempty"`
	Events  []TraceEvent `json:"events,omitempty"` // events the mail caused (event_outbox)
	Mails   []int64      `json:"mails,omitempty"`  // mails intake queued (mail_outbox ids)
}

// TraceField is a named detail of a step, in the order it is shown.
type TraceField struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// TraceEvent is an event_outbox row a mail caused.
type TraceEvent struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Field returns the value of the step's first field named key, "" when
// there is none.
func (s TraceStep) Field(key string) string {
	for _, f := range s.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// Step returns the trace's first step of that name, and whether there is one.
func (t Trace) Step(name string) (TraceStep, bool) {
	for _, s := range t.Steps {
		if s.Step == name {
			return s, true
		}
	}
	return TraceStep{}, false
}

// MaxTraceSteps bounds a trace: once it is full, further steps are counted
// in DroppedSteps instead of kept, so a mail delivered again and again
// cannot grow its trace without end.
const MaxTraceSteps = 64

const traceColumns = `id, raw_message_id, message_id, ticket_id, source, steps, dropped_steps, created_at, updated_at`

func scanTrace(row pgx.Row) (Trace, error) {
	var t Trace
	var steps []byte
	err := row.Scan(&t.ID, &t.RawMessageID, &t.MessageID, &t.TicketID, &t.Source, &steps, &t.DroppedSteps,
		&t.CreatedAt, &t.UpdatedAt)
	if err != nil {
		return Trace{}, notFound(err)
	}
	if err := json.Unmarshal(steps, &t.Steps); err != nil {
		return Trace{}, fmt.Errorf("decode steps of trace %d: %w", t.ID, err)
	}
	return t, nil
}

func collectTraces(rows pgx.Rows, err error) ([]Trace, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Trace
	for rows.Next() {
		t, err := scanTrace(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RecordTrace writes t's steps for its raw message: a new trace, or, when
// the raw message has one already, t's steps appended to it (and its ticket
// filled in when it had none). Steps beyond MaxTraceSteps are counted, not
// kept. Run it in the transaction that did what the steps say; in an
// IntakeTx it is queued.
func (s *Store) RecordTrace(ctx context.Context, t Trace) error {
	steps, dropped := t.Steps, 0
	if len(steps) > MaxTraceSteps {
		steps, dropped = steps[:MaxTraceSteps], len(steps)-MaxTraceSteps
	}
	if steps == nil {
		steps = []TraceStep{}
	}
	b, err := json.Marshal(steps)
	if err != nil {
		return fmt.Errorf("encode trace of raw message %d: %w", t.RawMessageID, err)
	}
	return s.later(ctx, fmt.Sprintf("record trace of raw message %d", t.RawMessageID), `
		INSERT INTO mail_traces (raw_message_id, message_id, ticket_id, source, steps, dropped_steps)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (raw_message_id) DO UPDATE SET
			steps = CASE WHEN jsonb_array_length(mail_traces.steps) + jsonb_array_length(EXCLUDED.steps) <= $7
				THEN mail_traces.steps || EXCLUDED.steps ELSE mail_traces.steps END,
			dropped_steps = mail_traces.dropped_steps + EXCLUDED.dropped_steps +
				CASE WHEN jsonb_array_length(mail_traces.steps) + jsonb_array_length(EXCLUDED.steps) <= $7
				THEN 0 ELSE jsonb_array_length(EXCLUDED.steps) END,
			ticket_id = COALESCE(mail_traces.ticket_id, EXCLUDED.ticket_id),
			message_id = CASE WHEN mail_traces.message_id = '' THEN EXCLUDED.message_id ELSE mail_traces.message_id END,
			updated_at = now()`,
		t.RawMessageID, t.MessageID, t.TicketID, t.Source, b, dropped, MaxTraceSteps)
}

// TraceOfRaw returns the trace of a raw message, or ErrNotFound.
func (s *Store) TraceOfRaw(ctx context.Context, rawID int64) (Trace, error) {
	t, err := scanTrace(s.db.QueryRow(ctx, `SELECT `+traceColumns+` FROM mail_traces WHERE raw_message_id = $1`, rawID))
	if err != nil {
		return Trace{}, fmt.Errorf("select trace of raw message %d: %w", rawID, err)
	}
	return t, nil
}

// TracesByMessageID returns the traces of the mails received under that
// Message-ID (without <>): the id in the mail, or the one it was stored
// under. Several senders may have used one id; oldest first.
func (s *Store) TracesByMessageID(ctx context.Context, id string) ([]Trace, error) {
	out, err := collectTraces(s.db.Query(ctx, `SELECT `+traceColumns+` FROM mail_traces
		WHERE message_id = $1
			OR raw_message_id IN (SELECT raw_message_id FROM messages
				WHERE direction = 'inbound' AND message_id = $1 AND raw_message_id IS NOT NULL)
			OR raw_message_id IN (SELECT raw_message_id FROM quarantine WHERE message_id = $1)
		ORDER BY id`, id))
	if err != nil {
		return nil, fmt.Errorf("select traces of %q: %w", id, err)
	}
	return out, nil
}

// TicketTraces returns the traces of a ticket's mails, including mails
// released from the quarantine into it, oldest first.
func (s *Store) TicketTraces(ctx context.Context, ticketID int64) ([]Trace, error) {
	out, err := collectTraces(s.db.Query(ctx, `SELECT `+traceColumns+` FROM mail_traces
		WHERE ticket_id = $1
			OR raw_message_id IN (SELECT raw_message_id FROM messages
				WHERE ticket_id = $1 AND raw_message_id IS NOT NULL)
		ORDER BY id`, ticketID))
	if err != nil {
		return nil, fmt.Errorf("select traces of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// RawOfIntake returns the raw message behind what intake made of a mail:
// its message, or its quarantine entry.
func (s *Store) RawOfIntake(ctx context.Context, rec IntakeRecord) (int64, error) {
	var raw *int64
	var err error
	if rec.MessageID != 0 {
		err = s.db.QueryRow(ctx, `SELECT raw_message_id FROM messages WHERE id = $1`, rec.MessageID).Scan(&raw)
	} else {
		err = s.db.QueryRow(ctx, `SELECT raw_message_id FROM quarantine WHERE id = $1`, rec.QuarantineID).Scan(&raw)
	}
	if err != nil {
		return 0, fmt.Errorf("select raw message of %+v: %w", rec, notFound(err))
	}
	if raw == nil {
		return 0, fmt.Errorf("select raw message of %+v: %w", rec, ErrNotFound)
	}
	return *raw, nil
}

// TransactionEvents lists the events for the ticket that the current
// transaction queued, oldest first. event_outbox.created_at defaults to
// now(), the start of the transaction that inserted the row, so the rows
// of this transaction are those with this transaction's now(); run it
// inside the transaction.
func (s *Store) TransactionEvents(ctx context.Context, ticketID int64) ([]TraceEvent, error) {
	rows, err := s.db.Query(ctx, `SELECT id, name FROM event_outbox
		WHERE ticket_id = $1 AND created_at = now() ORDER BY id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("select events of this transaction for ticket %d: %w", ticketID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[TraceEvent])
	if err != nil {
		return nil, fmt.Errorf("select events of this transaction for ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// EventStatus is an event_outbox row and how its relay went.
type EventStatus struct {
	ID        int64
	Name      string
	TicketID  *int64
	CreatedAt time.Time
	SentAt    *time.Time // when the workflow engine took it; nil while it waits
	Attempts  int
	NextAt    time.Time
	LastError string
}

// TicketEvents lists a ticket's events, oldest first.
func (s *Store) TicketEvents(ctx context.Context, ticketID int64) ([]EventStatus, error) {
	rows, err := s.db.Query(ctx, `SELECT id, name, ticket_id, created_at, sent_at, attempts, next_attempt_at, last_error
		FROM event_outbox WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("select events of ticket %d: %w", ticketID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[EventStatus])
	if err != nil {
		return nil, fmt.Errorf("select events of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// MailStatus is a queued mail without its bytes: what it is, to whom, and
// how its delivery went.
type MailStatus struct {
	ID         int64
	TicketID   *int64
	Kind       string
	DedupeKey  string
	MessageID  string
	Recipients []string
	Status     string // pending, sent, failed
	Attempts   int
	LastError  string
	CreatedAt  time.Time
	SentAt     *time.Time
}

const mailStatusColumns = `id, ticket_id, kind, COALESCE(dedupe_key, ''), message_id, recipients, status, attempts,
	last_error, created_at, sent_at`

func collectMailStatuses(rows pgx.Rows, err error) ([]MailStatus, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[MailStatus])
}

// TicketMailStatuses lists the mails queued for a ticket, oldest first,
// without their bytes.
func (s *Store) TicketMailStatuses(ctx context.Context, ticketID int64) ([]MailStatus, error) {
	out, err := collectMailStatuses(s.db.Query(ctx, `SELECT `+mailStatusColumns+` FROM mail_outbox
		WHERE ticket_id = $1 ORDER BY created_at, id`, ticketID))
	if err != nil {
		return nil, fmt.Errorf("select mails of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// MailStatusByMessageID returns the queued mail with that Message-ID
// (without <>), without its bytes.
func (s *Store) MailStatusByMessageID(ctx context.Context, id string) (MailStatus, error) {
	out, err := collectMailStatuses(s.db.Query(ctx, `SELECT `+mailStatusColumns+` FROM mail_outbox
		WHERE message_id = $1`, id))
	if err != nil {
		return MailStatus{}, fmt.Errorf("select mail %q: %w", id, err)
	}
	if len(out) == 0 {
		return MailStatus{}, fmt.Errorf("select mail %q: %w", id, ErrNotFound)
	}
	return out[0], nil
}

// MailsByDedupe returns the ids of the mails queued for the ticket under
// one of the dedupe keys given to a Notifier: the key itself, or a key
// that the Notifier scoped to a kind of mail (".../<key>"), or, for a
// mail's further recipients, extended (".../<key>/<address>"). Oldest
// first.
func (s *Store) MailsByDedupe(ctx context.Context, ticketID int64, keys []string) ([]int64, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var patterns []string
	for _, k := range keys {
		e := escapeLike(k)
		patterns = append(patterns, e, "%/"+e, "%/"+e+"/%")
	}
	rows, err := s.db.Query(ctx, `SELECT id FROM mail_outbox
		WHERE ticket_id = $1 AND dedupe_key LIKE ANY ($2) ORDER BY created_at, id`, ticketID, patterns)
	if err != nil {
		return nil, fmt.Errorf("select mails of ticket %d by dedupe key: %w", ticketID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("select mails of ticket %d by dedupe key: %w", ticketID, err)
	}
	return ids, nil
}

// escapeLike quotes LIKE's wildcards (and its escape character) in s.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
