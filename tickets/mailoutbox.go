package tickets

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// MailOutboxChannel is the PostgreSQL notification channel on which every
// insert into mail_outbox is announced (migration 0003), so senders wake up
// at once.
const MailOutboxChannel = "mail_outbox"

// Mail outbox statuses.
const (
	MailPending = "pending"
	MailSent    = "sent"
	MailFailed  = "failed"
)

// OutboxMail is one mail to send: composed whole when it was queued, so a
// retry sends identical bytes.
type OutboxMail struct {
	ID            int64
	TicketID      *int64
	Kind          string
	DedupeKey     *string
	MessageID     string // without angle brackets
	EnvelopeFrom  string
	Recipients    []string
	Automatic     bool
	Data          []byte
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	SentAt        *time.Time
}

const outboxColumns = `id, ticket_id, kind, dedupe_key, message_id, envelope_from, recipients, automatic,
	data, status, attempts, next_attempt_at, last_error, created_at, sent_at`

func scanOutboxMail(row pgx.Row) (OutboxMail, error) {
	var m OutboxMail
	err := row.Scan(&m.ID, &m.TicketID, &m.Kind, &m.DedupeKey, &m.MessageID, &m.EnvelopeFrom,
		&m.Recipients, &m.Automatic, &m.Data, &m.Status, &m.Attempts, &m.NextAttemptAt, &m.LastError,
		&m.CreatedAt, &m.SentAt)
	return m, notFound(err)
}

func collectOutboxMails(rows pgx.Rows, err error) ([]OutboxMail, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxMail
	for rows.Next() {
		m, err := scanOutboxMail(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// QueueMail writes a mail to the outbox; it is sent once the surrounding
// transaction commits. A mail whose dedupe key is already queued is not
// queued again: queued is false and id is 0. m.ID, when set, is the row's
// id, reserved beforehand (ReserveID) so that the mail's return path can
// name it; 0 takes the next one. Recipients are stored
// normalised (NormalizeEmail), so the hourly count of automatic mails finds
// them. created_at is the clock time of the insert, so mails queued in one
// transaction keep their order in the thread.
func (s *Store) QueueMail(ctx context.Context, m OutboxMail) (id int64, queued bool, err error) {
	rcpts := make([]string, len(m.Recipients))
	for i, r := range m.Recipients {
		rcpts[i] = NormalizeEmail(r)
	}
	err = s.db.QueryRow(ctx, `
		INSERT INTO mail_outbox (id, ticket_id, kind, dedupe_key, message_id, envelope_from, recipients,
			automatic, data, created_at)
		VALUES (COALESCE($9, nextval('mail_outbox_id_seq')), $1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp())
		ON CONFLICT (dedupe_key) DO NOTHING
		RETURNING id`,
		m.TicketID, m.Kind, m.DedupeKey, m.MessageID, m.EnvelopeFrom, rcpts, m.Automatic, m.Data, nilIfZero(m.ID)).Scan(&id)
	if err == pgx.ErrNoRows {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("insert %s mail %q: %w", m.Kind, m.MessageID, err)
	}
	return id, true, nil
}

// MailQueued reports whether a mail with that dedupe key is in the outbox,
// whatever its status.
func (s *Store) MailQueued(ctx context.Context, dedupeKey string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mail_outbox WHERE dedupe_key = $1)`,
		dedupeKey).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check mail %q: %w", dedupeKey, err)
	}
	return ok, nil
}

// LockKey takes a transaction-scoped advisory lock on key, so transactions
// that do the same thing for the same key take turns. Outside a transaction
// it is released at once and so protects nothing.
func (s *Store) LockKey(ctx context.Context, key string) error {
	if _, err := s.db.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
		return fmt.Errorf("lock %q: %w", key, err)
	}
	return nil
}

// AutomaticMailsSince counts the automatic mails queued to the address
// (sent, pending or failed) within the last d.
func (s *Store) AutomaticMailsSince(ctx context.Context, address string, d time.Duration) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `
		SELECT count(*) FROM mail_outbox
		WHERE automatic AND recipients @> ARRAY[$1::text]
			AND created_at > clock_timestamp() - make_interval(secs => $2)`,
		NormalizeEmail(address), d.Seconds()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count automatic mail to %q: %w", address, err)
	}
	return n, nil
}

// ThreadEntry is one Message-ID of a ticket's thread as one person sees it.
type ThreadEntry struct {
	MessageID string
	Opening   bool // the mail that opened the ticket
	Seen      bool // the person sent it, or it was addressed to them
}

// ThreadFor returns every Message-ID of a ticket's thread, received or sent,
// oldest first, marking the ones the address has seen: mails it sent or
// received as To or Cc, and mails ticketd queued to it (failed ones count
// as never seen).
func (s *Store) ThreadFor(ctx context.Context, ticketID int64, address string) ([]ThreadEntry, error) {
	rows, err := s.db.Query(ctx, `
		SELECT message_id, bool_or(opening), bool_or(seen) FROM (
			SELECT message_id, created_at, 0 AS src, id, kind = 'opening' AS opening,
				(lower(from_address) = $2 OR EXISTS (
					SELECT 1 FROM unnest(to_addresses || cc_addresses) a WHERE lower(a) = $2)) AS seen
			FROM messages WHERE ticket_id = $1
			UNION ALL
			SELECT message_id, created_at, 1 AS src, id, false AS opening,
				status <> 'failed' AND $2 = ANY (recipients) AS seen
			FROM mail_outbox WHERE ticket_id = $1
		) t
		GROUP BY message_id
		ORDER BY min(created_at), min(src), min(id)`, ticketID, NormalizeEmail(address))
	if err != nil {
		return nil, fmt.Errorf("select thread of ticket %d for %q: %w", ticketID, address, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ThreadEntry])
	if err != nil {
		return nil, fmt.Errorf("select thread of ticket %d for %q: %w", ticketID, address, err)
	}
	return out, nil
}

// TicketMails lists the mails queued for a ticket, oldest first.
func (s *Store) TicketMails(ctx context.Context, ticketID int64) ([]OutboxMail, error) {
	out, err := collectOutboxMails(s.db.Query(ctx, `SELECT `+outboxColumns+` FROM mail_outbox
		WHERE ticket_id = $1 ORDER BY created_at, id`, ticketID))
	if err != nil {
		return nil, fmt.Errorf("select mails of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// OutboxMailByMessageID returns the queued mail with that Message-ID.
func (s *Store) OutboxMailByMessageID(ctx context.Context, messageID string) (OutboxMail, error) {
	m, err := scanOutboxMail(s.db.QueryRow(ctx, `SELECT `+outboxColumns+` FROM mail_outbox
		WHERE message_id = $1`, messageID))
	if err != nil {
		return OutboxMail{}, fmt.Errorf("select mail %q: %w", messageID, err)
	}
	return m, nil
}

// ClaimMail takes up to limit pending mails that are due, oldest due first,
// for one delivery attempt each. Each claimed row's attempts goes up by one
// and its next_attempt_at moves lease into the future, so no other sender
// claims it while this one works on it (rows are picked with FOR UPDATE SKIP
// LOCKED, so senders never wait on each other). The returned Attempts is the
// fence: the Mark* methods change a row only while it still has it.
func (s *Store) ClaimMail(ctx context.Context, limit int, lease time.Duration) ([]OutboxMail, error) {
	out, err := collectOutboxMails(s.db.Query(ctx, `
		UPDATE mail_outbox o
		SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
		FROM (
			SELECT id FROM mail_outbox
			WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, id
			LIMIT $1
			FOR UPDATE SKIP LOCKED
		) due
		WHERE o.id = due.id
		RETURNING `+prefixed("o", outboxColumns), limit, lease.Seconds()))
	if err != nil {
		return nil, fmt.Errorf("claim mail: %w", err)
	}
	return out, nil
}

// RenewMailLease reserves a claimed mail for lease from now. ok is false
// when the claim was lost (another sender has claimed the row since, or it
// is no longer pending).
func (s *Store) RenewMailLease(ctx context.Context, id int64, attempt int, lease time.Duration) (ok bool, err error) {
	tag, err := s.db.Exec(ctx, `UPDATE mail_outbox SET next_attempt_at = now() + make_interval(secs => $3)
		WHERE id = $1 AND attempts = $2 AND status = 'pending'`, id, attempt, lease.Seconds())
	if err != nil {
		return false, fmt.Errorf("renew the claim on mail %d: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkMailSent records that the relay accepted the mail. ok is false when
// the claim was lost (another sender has claimed the row since). A mail
// the relay took is newer news about its recipients than the delivery
// report that marked them bouncing: their mark clears (see BelieveBounce),
// unless a report about this very mail set it. cleared lists them.
func (s *Store) MarkMailSent(ctx context.Context, id int64, attempt int) (ok bool, cleared []string, err error) {
	err = s.db.QueryRow(ctx, `
		WITH sent AS (
			UPDATE mail_outbox SET status = 'sent', sent_at = now(), last_error = ''
			WHERE id = $1 AND attempts = $2 AND status = 'pending'
			RETURNING id, message_id, recipients, sent_at
		), u AS (
			UPDATE users SET bouncing_since = NULL, updated_at = now()
			FROM sent WHERE lower(users.email) = ANY (sent.recipients) AND users.bouncing_since IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM bounces WHERE bounces.mail_id = sent.id)
			RETURNING users.id, users.email
		), b AS (
			UPDATE bounces SET cleared_at = sent.sent_at, cleared_how = 'the relay accepted mail <' || sent.message_id || '>'
			FROM u, sent WHERE bounces.user_id = u.id AND bounces.cleared_at IS NULL
		)
		SELECT EXISTS (SELECT 1 FROM sent), ARRAY(SELECT email FROM u ORDER BY email)`, id, attempt).Scan(&ok, &cleared)
	if err != nil {
		return false, nil, fmt.Errorf("mark mail %d sent: %w", id, err)
	}
	return ok, cleared, nil
}

// MarkMailRetry records a temporary failure: the mail is tried again after
// wait, unless it was queued more than giveUpAfter ago, in which case it
// fails for good. failed reports which happened.
func (s *Store) MarkMailRetry(ctx context.Context, id int64, attempt int, wait, giveUpAfter time.Duration, lastErr string) (ok, failed bool, err error) {
	err = s.db.QueryRow(ctx, `
		UPDATE mail_outbox SET
			status = CASE WHEN created_at < now() - make_interval(secs => $4) THEN 'failed' ELSE 'pending' END,
			next_attempt_at = now() + make_interval(secs => $3),
			last_error = $5
		WHERE id = $1 AND attempts = $2 AND status = 'pending'
		RETURNING status = 'failed'`, id, attempt, wait.Seconds(), giveUpAfter.Seconds(), lastErr).Scan(&failed)
	if err == pgx.ErrNoRows {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("mark mail %d for retry: %w", id, err)
	}
	return true, failed, nil
}

// MarkMailFailed records a permanent failure with the server's answer.
func (s *Store) MarkMailFailed(ctx context.Context, id int64, attempt int, lastErr string) (ok bool, err error) {
	tag, err := s.db.Exec(ctx, `UPDATE mail_outbox SET status = 'failed', last_error = $3
		WHERE id = $1 AND attempts = $2 AND status = 'pending'`, id, attempt, lastErr)
	if err != nil {
		return false, fmt.Errorf("mark mail %d failed: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseMail gives back a claimed mail that was never handed to the relay,
// due at once and with the attempt not counted.
func (s *Store) ReleaseMail(ctx context.Context, id int64, attempt int) error {
	_, err := s.db.Exec(ctx, `UPDATE mail_outbox SET attempts = attempts - 1, next_attempt_at = now()
		WHERE id = $1 AND attempts = $2 AND status = 'pending'`, id, attempt)
	if err != nil {
		return fmt.Errorf("release mail %d: %w", id, err)
	}
	return nil
}

// NextMailDue returns how long until the next pending mail is due (0 when
// one is due now); ok is false when nothing is pending.
func (s *Store) NextMailDue(ctx context.Context) (wait time.Duration, ok bool, err error) {
	var secs *float64
	err = s.db.QueryRow(ctx, `SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8
		FROM mail_outbox WHERE status = 'pending'`).Scan(&secs)
	if err != nil {
		return 0, false, fmt.Errorf("select next due mail: %w", err)
	}
	if secs == nil {
		return 0, false, nil
	}
	return time.Duration(math.Max(*secs, 0) * float64(time.Second)), true, nil
}

// RetryMailNow makes a pending or failed mail due at once, for an admin who
// fixed what made it fail.
func (s *Store) RetryMailNow(ctx context.Context, id int64) error {
	tag, err := s.db.Exec(ctx, `UPDATE mail_outbox SET status = 'pending', next_attempt_at = now()
		WHERE id = $1 AND status <> 'sent'`, id)
	if err != nil {
		return fmt.Errorf("retry mail %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("retry mail %d: %w", id, ErrNotFound)
	}
	if _, err := s.db.Exec(ctx, `SELECT pg_notify('`+MailOutboxChannel+`', '')`); err != nil {
		return fmt.Errorf("retry mail %d: notify: %w", id, err)
	}
	return nil
}

func nilIfZero(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
