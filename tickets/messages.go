package tickets

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

const messageColumns = `id, ticket_id, direction, kind, internal, author_id, message_id, in_reply_to, refs,
	from_address, from_name, to_addresses, cc_addresses, subject, text_body, html_body, reply_text,
	signature, auto_kind, thread_rule, raw_message_id, held, created_at`

func scanMessage(row pgx.Row) (Message, error) {
	var m Message
	err := row.Scan(&m.ID, &m.TicketID, &m.Direction, &m.Kind, &m.Internal, &m.AuthorID, &m.MessageID,
		&m.InReplyTo, &m.Refs, &m.FromAddress, &m.FromName, &m.ToAddresses, &m.CcAddresses, &m.Subject,
		&m.TextBody, &m.HTMLBody, &m.ReplyText, &m.Signature, &m.AutoKind, &m.ThreadRule,
		&m.RawMessageID, &m.Held, &m.CreatedAt)
	return m, notFound(err)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// InsertMessage adds a message to a ticket's thread.
func (s *Store) InsertMessage(ctx context.Context, m Message) (Message, error) {
	if m.Kind == "" {
		m.Kind = KindReply
	}
	if m.AutoKind == "" {
		m.AutoKind = "none"
	}
	out, err := scanMessage(s.db.QueryRow(ctx, `
		INSERT INTO messages (ticket_id, direction, kind, internal, author_id, message_id, in_reply_to,
			refs, from_address, from_name, to_addresses, cc_addresses, subject, text_body, html_body,
			reply_text, signature, auto_kind, thread_rule, raw_message_id, held)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
		RETURNING `+messageColumns,
		m.TicketID, m.Direction, m.Kind, m.Internal || m.Held != "", m.AuthorID, m.MessageID, m.InReplyTo, nonNil(m.Refs),
		m.FromAddress, m.FromName, nonNil(m.ToAddresses), nonNil(m.CcAddresses), m.Subject, m.TextBody,
		m.HTMLBody, m.ReplyText, m.Signature, m.AutoKind, m.ThreadRule, m.RawMessageID, m.Held))
	if err != nil {
		return Message{}, fmt.Errorf("insert message %q into ticket %d: %w", m.MessageID, m.TicketID, err)
	}
	return out, s.touch(ctx, m)
}

// touch makes a message added after the opening one its ticket's latest
// activity: a reply by mail or on the web, a note, a bounce attached to it
// moves updated_at, so lists sorted by "updated" bring up the tickets
// people just wrote to.
func (s *Store) touch(ctx context.Context, m Message) error {
	if m.Kind == KindOpening {
		return nil
	}
	return s.later(ctx, fmt.Sprintf("touch ticket %d", m.TicketID),
		`UPDATE tickets SET updated_at = now() WHERE id = $1 AND updated_at < now()`, m.TicketID)
}

// Message returns the message with that id.
func (s *Store) Message(ctx context.Context, id int64) (Message, error) {
	m, err := scanMessage(s.db.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1`, id))
	if err != nil {
		return Message{}, fmt.Errorf("select message %d: %w", id, err)
	}
	return m, nil
}

// Messages returns a ticket's thread, oldest first.
func (s *Store) Messages(ctx context.Context, ticketID int64) ([]Message, error) {
	rows, err := s.db.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE ticket_id = $1
		ORDER BY created_at, id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("select messages of ticket %d: %w", ticketID, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("select messages of ticket %d: %w", ticketID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ThreadMessageIDs returns every RFC 5322 Message-ID of a ticket's thread,
// received or sent, oldest first.
func (s *Store) ThreadMessageIDs(ctx context.Context, ticketID int64) ([]string, error) {
	rows, err := s.db.Query(ctx, `
		SELECT message_id FROM (
			SELECT message_id, created_at, 0 AS src, id FROM messages WHERE ticket_id = $1
			UNION ALL
			SELECT message_id, created_at, 1 AS src, id FROM mail_outbox WHERE ticket_id = $1
				AND message_id NOT IN (SELECT message_id FROM messages WHERE ticket_id = $1)
		) t ORDER BY created_at, src, id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("select thread of ticket %d: %w", ticketID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("select thread of ticket %d: %w", ticketID, err)
	}
	return ids, nil
}

// TicketByMessageID finds the ticket of the first of ids that ticketd has
// received or sent. It returns ErrNotFound when none is known.
func (s *Store) TicketByMessageID(ctx context.Context, ids []string) (ticketID int64, matched string, err error) {
	for _, id := range ids {
		if id == "" {
			continue
		}
		err := s.db.QueryRow(ctx, `
			SELECT ticket_id FROM messages WHERE direction IN ('inbound', 'outbound') AND message_id = $1
			UNION ALL
			SELECT ticket_id FROM mail_outbox WHERE message_id = $1 AND ticket_id IS NOT NULL
			LIMIT 1`, id).Scan(&ticketID)
		if err == nil {
			return ticketID, id, nil
		}
		if err != pgx.ErrNoRows {
			return 0, "", fmt.Errorf("find ticket of message %q: %w", id, err)
		}
	}
	return 0, "", ErrNotFound
}

// ErrNotHeld is returned when a message to release is not held (any more).
var ErrNotHeld = errors.New("tickets: message not held")

// ReleaseMessage shows a held message of ticketID to the requester: it is
// no longer internal, and the audit log says who released it and why it
// was held. It sends nothing and runs no command. Run it inside InTx, after
// Permit allowed ActionRelease.
func (s *Store) ReleaseMessage(ctx context.Context, ticketID, messageID int64, a Actor) error {
	var held string
	err := s.db.QueryRow(ctx, `
		UPDATE messages m SET held = '', internal = false
		FROM (SELECT id, held FROM messages WHERE id = $2 AND ticket_id = $1 AND held <> '' FOR UPDATE) old
		WHERE m.id = old.id
		RETURNING old.held`, ticketID, messageID).Scan(&held)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotHeld
	}
	if err != nil {
		return fmt.Errorf("release message %d of ticket %d: %w", messageID, ticketID, err)
	}
	return s.audit(ctx, Change{TicketID: ticketID, Field: "message", Old: held, New: strconv.FormatInt(messageID, 10)},
		a, "release", "held: "+held)
}

// MessageRaw returns the raw mail a message of ticketID came from, as
// stored (with ticketd's Authentication-Results on top), or ErrNotFound.
func (s *Store) MessageRaw(ctx context.Context, ticketID, messageID int64) ([]byte, error) {
	var data []byte
	err := s.db.QueryRow(ctx, `SELECT r.data FROM messages m JOIN raw_messages r ON r.id = m.raw_message_id
		WHERE m.id = $2 AND m.ticket_id = $1`, ticketID, messageID).Scan(&data)
	if err != nil {
		return nil, fmt.Errorf("select raw mail of message %d: %w", messageID, notFound(err))
	}
	return data, nil
}

// SenderChecks returns the verdicts of the sender checks (JSON of
// mailauth.Verdict) of a ticket's messages that have one, by message id.
func (s *Store) SenderChecks(ctx context.Context, ticketID int64) (map[int64][]byte, error) {
	rows, err := s.db.Query(ctx, `SELECT m.id, r.auth FROM messages m JOIN raw_messages r ON r.id = m.raw_message_id
		WHERE m.ticket_id = $1 AND r.auth IS NOT NULL`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("select sender checks of ticket %d: %w", ticketID, err)
	}
	defer rows.Close()
	out := map[int64][]byte{}
	for rows.Next() {
		var id int64
		var auth []byte
		if err := rows.Scan(&id, &auth); err != nil {
			return nil, fmt.Errorf("select sender checks of ticket %d: %w", ticketID, err)
		}
		out[id] = auth
	}
	return out, rows.Err()
}
