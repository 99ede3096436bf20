package tickets

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Queries of mail intake (inbound.Deliver): raw messages, duplicates,
// quarantine, attachments and bounces.

// NewRawMessage is a mail exactly as it arrived, with how it arrived.
type NewRawMessage struct {
	SHA256     []byte // of Data
	Data       []byte
	Source     string  // smtp, imap, web, api
	Mailbox    *string // imap: the checkpoint key of the mailbox
	UID        *int64  // imap: the UID there
	RemoteAddr *string // smtp: the client's address
	MailFrom   *string // smtp: the envelope sender, "" for the null sender
	RcptTo     []string
}

// LockIntake takes a transaction-scoped advisory lock on key, so that two
// deliveries of the same mail (same Message-ID or same bytes) take turns and
// the second sees what the first committed. Run it inside InTx.
func (s *Store) LockIntake(ctx context.Context, key string) error {
	sum := sha256.Sum256([]byte(key))
	// The two-int form keeps intake's locks out of the single-bigint key
	// space other parts of ticketd use; 0x74640001 names intake.
	k := int32(binary.BigEndian.Uint32(sum[:4]))
	if _, err := s.db.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`, int32(0x74640001), k); err != nil {
		return fmt.Errorf("lock intake of %q: %w", key, err)
	}
	return nil
}

// RawMessageBySHA256 returns the id of the raw message with that content
// hash, or ErrNotFound.
func (s *Store) RawMessageBySHA256(ctx context.Context, sum []byte) (int64, error) {
	var id int64
	err := s.db.QueryRow(ctx, `SELECT id FROM raw_messages WHERE sha256 = $1`, sum).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("select raw message by hash: %w", notFound(err))
	}
	return id, nil
}

// StoreRawMessage inserts a raw message unless one with the same bytes is
// stored already. It returns the row's id and whether this call inserted it.
func (s *Store) StoreRawMessage(ctx context.Context, r NewRawMessage) (id int64, inserted bool, err error) {
	rcpt := r.RcptTo
	if rcpt == nil {
		rcpt = []string{}
	}
	err = s.db.QueryRow(ctx, `
		INSERT INTO raw_messages (sha256, data, source, mailbox, uid, remote_addr, mail_from, rcpt_to)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (sha256) DO NOTHING
		RETURNING id`, r.SHA256, r.Data, r.Source, r.Mailbox, r.UID, r.RemoteAddr, r.MailFrom, rcpt).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("insert raw message: %w", err)
	}
	id, err = s.RawMessageBySHA256(ctx, r.SHA256)
	return id, false, err
}

// IntakeRecord is what intake made of one mail: a message on a ticket, or a
// quarantine entry.
type IntakeRecord struct {
	TicketID     int64
	MessageID    int64 // messages.id; 0 when quarantined
	ThreadRule   string
	QuarantineID int64 // 0 unless quarantined
}

// IntakeOfRaw returns what intake made of a raw message, or ErrNotFound.
func (s *Store) IntakeOfRaw(ctx context.Context, rawID int64) (IntakeRecord, error) {
	var in IntakeRecord
	err := s.db.QueryRow(ctx, `
		SELECT ticket_id, message_id, thread_rule, quarantine_id FROM (
			SELECT 0 AS src, id AS ord, ticket_id, id AS message_id, thread_rule, 0::bigint AS quarantine_id
			FROM messages WHERE raw_message_id = $1
			UNION ALL
			SELECT 1, id, 0, 0, '', id FROM quarantine WHERE raw_message_id = $1
		) r ORDER BY src, ord LIMIT 1`, rawID).Scan(&in.TicketID, &in.MessageID, &in.ThreadRule, &in.QuarantineID)
	if err != nil {
		return IntakeRecord{}, fmt.Errorf("select outcome of raw message %d: %w", rawID, notFound(err))
	}
	return in, nil
}

// IntakeByMessageID looks for a mail received earlier under the Message-ID
// id, or under altID (the id intake gives a second sender's mail with the
// same Message-ID), from the sender from (compared without case): among
// the inbound messages first, then the quarantine. It returns ErrNotFound
// when there is none, and reports whether an inbound message of any sender
// holds id.
func (s *Store) IntakeByMessageID(ctx context.Context, id, altID, from string) (rec IntakeRecord, taken bool, err error) {
	// One equality lookup per id and table: a generic plan made while
	// the tables were small (pgx prepares every statement) would rather
	// walk all inbound messages for "message_id IN ($1, $2)".
	rows, err := s.db.Query(ctx, `
		SELECT src, ticket_id, row_id, thread_rule, message_id, same FROM (
			SELECT 0 AS src, ticket_id, id AS row_id, thread_rule, message_id,
				lower(from_address) = lower($3) AS same
			FROM messages WHERE direction = 'inbound' AND message_id = $1
			UNION ALL
			SELECT 0, ticket_id, id, thread_rule, message_id, lower(from_address) = lower($3)
			FROM messages WHERE direction = 'inbound' AND message_id = $2
			UNION ALL
			SELECT 1, 0, id, '', message_id, lower(from_address) = lower($3)
			FROM quarantine WHERE message_id = $1
			UNION ALL
			SELECT 1, 0, id, '', message_id, lower(from_address) = lower($3)
			FROM quarantine WHERE message_id = $2
		) r ORDER BY same DESC, src, row_id LIMIT 20`, id, altID, from)
	if err != nil {
		return IntakeRecord{}, false, fmt.Errorf("select mails by message id: %w", err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var src int
		var r IntakeRecord
		var msgID string
		var same bool
		var rowID int64
		if err := rows.Scan(&src, &r.TicketID, &rowID, &r.ThreadRule, &msgID, &same); err != nil {
			return IntakeRecord{}, false, fmt.Errorf("select mails by message id: %w", err)
		}
		if src == 0 {
			r.MessageID = rowID
			taken = taken || msgID == id
		} else {
			r.QuarantineID = rowID
		}
		if same && !found {
			rec, found = r, true
		}
	}
	if err := rows.Err(); err != nil {
		return IntakeRecord{}, false, fmt.Errorf("select mails by message id: %w", err)
	}
	if !found {
		return IntakeRecord{}, taken, ErrNotFound
	}
	return rec, taken, nil
}

// NewQuarantine is a mail held for an admin instead of reaching a ticket.
type NewQuarantine struct {
	RawMessageID int64
	AutoKind     string
	Reason       string
	FromAddress  string
	Subject      string
	MessageID    string
}

// QuarantineMail holds a mail in the quarantine and returns the entry's id.
func (s *Store) QuarantineMail(ctx context.Context, q NewQuarantine) (int64, error) {
	if q.AutoKind == "" {
		q.AutoKind = "none"
	}
	var id int64
	err := s.db.QueryRow(ctx, `
		INSERT INTO quarantine (raw_message_id, auto_kind, reason, from_address, subject, message_id)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		q.RawMessageID, q.AutoKind, q.Reason, q.FromAddress, q.Subject, q.MessageID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert quarantine entry: %w", err)
	}
	return id, nil
}

// InsertAttachment stores an attachment of a message.
func (s *Store) InsertAttachment(ctx context.Context, a Attachment) (int64, error) {
	if a.ContentType == "" {
		a.ContentType = "application/octet-stream"
	}
	var id int64
	err := s.db.QueryRow(ctx, `
		INSERT INTO attachments (message_id, filename, content_type, content_id, inline, size, sha256, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		a.MessageID, a.Filename, a.ContentType, a.ContentID, a.Inline, a.Size, a.SHA256, a.Data).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert attachment %q of message %d: %w", a.Filename, a.MessageID, err)
	}
	return id, nil
}

// MarkBouncing records that mail to these addresses bounced, for the users
// ticketd has sent mail to (so a forged bounce cannot mark an address ticketd
// never wrote to). An address already bouncing keeps its first date. It
// returns the addresses marked now.
func (s *Store) MarkBouncing(ctx context.Context, addrs []string) ([]string, error) {
	norm := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if a = NormalizeEmail(a); a != "" {
			norm = append(norm, a)
		}
	}
	if len(norm) == 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, `
		UPDATE users u SET bouncing_since = now(), updated_at = now()
		WHERE lower(u.email) = ANY($1) AND u.bouncing_since IS NULL
			AND EXISTS (SELECT 1 FROM mail_outbox o
				WHERE o.recipients && ARRAY[u.email, lower(u.email)])
		RETURNING u.email`, norm)
	if err != nil {
		return nil, fmt.Errorf("mark bouncing addresses: %w", err)
	}
	marked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("mark bouncing addresses: %w", err)
	}
	return marked, nil
}
