package tickets

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventsChannel is the PostgreSQL notification channel on which committed
// event_outbox inserts are announced (migration 0004).
const EventsChannel = "ticketd_events"

// OutboxEvent is an unsent row of the event outbox, or a sent one due to
// be sent again (Resend).
type OutboxEvent struct {
	Event
	CreatedAt time.Time
	Attempts  int
	Resend    bool
}

// PendingEvents locks up to limit unsent events that are due, oldest first.
// Rows another transaction holds are skipped, so several relays share the
// outbox without sending a row twice at the same time. Run it inside InTx
// and mark the rows before the transaction ends.
func (s *Store) PendingEvents(ctx context.Context, limit int) ([]OutboxEvent, error) {
	rows, err := s.db.Query(ctx, `
		SELECT id, name, ticket_id, data, created_at, attempts FROM event_outbox
		WHERE sent_at IS NULL AND next_attempt_at <= now()
		ORDER BY id LIMIT $1
		FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("select pending events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutboxEvent, error) {
		var e OutboxEvent
		err := row.Scan(&e.ID, &e.Name, &e.TicketID, &e.Data, &e.CreatedAt, &e.Attempts)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("select pending events: %w", err)
	}
	return out, nil
}

// MarkEventsSent records that the workflow engine accepted the events, and
// when to send them once more (migration 0045); resendAfter <= 0 means
// never.
func (s *Store) MarkEventsSent(ctx context.Context, ids []int64, resendAfter time.Duration) error {
	if _, err := s.db.Exec(ctx, `UPDATE event_outbox SET sent_at = now(), attempts = attempts + 1,
		last_error = '', resend_at = CASE WHEN $2::interval > '0' THEN now() + $2::interval END
		WHERE id = ANY($1)`, ids, resendAfter); err != nil {
		return fmt.Errorf("mark %d events sent: %w", len(ids), err)
	}
	return nil
}

// DueResends locks up to limit sent events due to be sent once more,
// oldest first, skipping rows another transaction holds. Run it inside
// InTx and mark the rows (MarkResent, DeferResend) before it ends.
func (s *Store) DueResends(ctx context.Context, limit int) ([]OutboxEvent, error) {
	rows, err := s.db.Query(ctx, `
		SELECT id, name, ticket_id, data, created_at, attempts FROM event_outbox
		WHERE resend_at <= now()
		ORDER BY resend_at, id LIMIT $1
		FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("select events to send again: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutboxEvent, error) {
		e := OutboxEvent{Resend: true}
		err := row.Scan(&e.ID, &e.Name, &e.TicketID, &e.Data, &e.CreatedAt, &e.Attempts)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("select events to send again: %w", err)
	}
	return out, nil
}

// MarkResent records that the engine took the events' second send.
func (s *Store) MarkResent(ctx context.Context, ids []int64) error {
	if _, err := s.db.Exec(ctx, `UPDATE event_outbox SET resend_at = NULL WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("mark %d events sent again: %w", len(ids), err)
	}
	return nil
}

// DeferResend records a failed second send and when to try it again.
func (s *Store) DeferResend(ctx context.Context, id int64, wait time.Duration) error {
	if _, err := s.db.Exec(ctx, `UPDATE event_outbox SET resend_at = now() + $2::interval WHERE id = $1`,
		id, wait); err != nil {
		return fmt.Errorf("defer sending event %d again: %w", id, err)
	}
	return nil
}

// DeferEvent records a failed send and when to try again.
func (s *Store) DeferEvent(ctx context.Context, id int64, wait time.Duration, reason string) error {
	if _, err := s.db.Exec(ctx, `UPDATE event_outbox SET attempts = attempts + 1,
		next_attempt_at = now() + $2::interval, last_error = left($3, 1000) WHERE id = $1`,
		id, wait, reason); err != nil {
		return fmt.Errorf("defer event %d: %w", id, err)
	}
	return nil
}

// RetryDeferredEvents makes every unsent event due now, for when the
// workflow engine is back after failures, and returns how many there were.
func (s *Store) RetryDeferredEvents(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `UPDATE event_outbox SET next_attempt_at = now()
		WHERE sent_at IS NULL AND next_attempt_at > now()`)
	if err != nil {
		return 0, fmt.Errorf("retry deferred events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// NextEventDue returns when the earliest unsent event, or the earliest
// second send, is due, and false when there is none.
func (s *Store) NextEventDue(ctx context.Context) (time.Time, bool, error) {
	var due *time.Time
	if err := s.db.QueryRow(ctx, `SELECT LEAST(
		(SELECT min(next_attempt_at) FROM event_outbox WHERE sent_at IS NULL),
		(SELECT min(resend_at) FROM event_outbox WHERE resend_at IS NOT NULL))`).Scan(&due); err != nil {
		return time.Time{}, false, fmt.Errorf("select next due event: %w", err)
	}
	if due == nil {
		return time.Time{}, false, nil
	}
	return *due, true, nil
}

// OutboxBacklog counts unsent events and the age of the oldest, for metrics
// and readiness.
func (s *Store) OutboxBacklog(ctx context.Context) (n int, oldest time.Duration, err error) {
	var secs float64
	if err := s.db.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)
		FROM event_outbox WHERE sent_at IS NULL`).Scan(&n, &secs); err != nil {
		return 0, 0, fmt.Errorf("count unsent events: %w", err)
	}
	return n, time.Duration(secs * float64(time.Second)), nil
}

// UntriagedStale lists To-Do tickets that were never triaged although their
// latest ticket.created event went out more than after ago (or they have
// none), for instance because the workflow engine lost the run, and that
// have had fewer than maxEvents such events. Tickets whose event still waits
// in the outbox are not listed.
func (s *Store) UntriagedStale(ctx context.Context, after time.Duration, maxEvents, limit int) ([]int64, error) {
	rows, err := s.db.Query(ctx, `
		SELECT t.id FROM tickets t
		WHERE t.triaged_at IS NULL AND t.status = 'todo'
			AND t.created_at < now() - $1::interval
			AND NOT EXISTS (
				SELECT 1 FROM event_outbox e
				WHERE e.ticket_id = t.id AND e.name = 'ticket.created'
					AND (e.sent_at IS NULL OR e.sent_at > now() - $1::interval))
			AND (SELECT count(*) FROM event_outbox e
				WHERE e.ticket_id = t.id AND e.name = 'ticket.created') < $2
		ORDER BY t.id LIMIT $3`, after, maxEvents, limit)
	if err != nil {
		return nil, fmt.Errorf("select stale untriaged tickets: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("select stale untriaged tickets: %w", err)
	}
	return ids, nil
}

// HasEvent reports whether the outbox holds (or held) an event of that name
// for the ticket.
func (s *Store) HasEvent(ctx context.Context, ticketID int64, name string) (bool, error) {
	var ok bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM event_outbox
		WHERE ticket_id = $1 AND name = $2)`, ticketID, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up %s events of ticket %d: %w", name, ticketID, err)
	}
	return ok, nil
}
