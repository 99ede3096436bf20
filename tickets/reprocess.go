package tickets

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Queries of re-processing: stored mail read again by the current parser.

// RawMessage is a stored mail exactly as it arrived, with how it arrived.
type RawMessage struct {
	ID         int64
	SHA256     []byte
	Data       []byte
	Source     string
	Mailbox    *string
	UID        *int64
	RemoteAddr *string
	MailFrom   *string
	RcptTo     []string
	ReceivedAt time.Time
}

// RawMessage returns the stored mail with that id.
func (s *Store) RawMessage(ctx context.Context, id int64) (RawMessage, error) {
	rows, err := s.db.Query(ctx, `SELECT id, sha256, data, source, mailbox, uid, remote_addr, mail_from, rcpt_to,
		received_at FROM raw_messages WHERE id = $1`, id)
	if err != nil {
		return RawMessage{}, fmt.Errorf("select raw message %d: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[RawMessage])
	if err != nil {
		return RawMessage{}, fmt.Errorf("select raw message %d: %w", id, notFound(err))
	}
	return r, nil
}

// ReceivedMessages lists, in id order, up to limit inbound messages after
// the message afterID whose raw mail was received at or after since and
// before until (a zero until: no end).
func (s *Store) ReceivedMessages(ctx context.Context, since, until time.Time, afterID int64, limit int) ([]int64, error) {
	var end *time.Time
	if !until.IsZero() {
		end = &until
	}
	rows, err := s.db.Query(ctx, `
		SELECT m.id FROM messages m JOIN raw_messages r ON r.id = m.raw_message_id
		WHERE m.direction = 'inbound' AND m.id > $3
			AND r.received_at >= $1 AND ($2::timestamptz IS NULL OR r.received_at < $2)
		ORDER BY m.id LIMIT $4`, since, end, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("select received messages: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("select received messages: %w", err)
	}
	return ids, nil
}

// MessageForUpdate returns the message with that id and locks it until the
// transaction ends.
func (s *Store) MessageForUpdate(ctx context.Context, id int64) (Message, error) {
	m, err := scanMessage(s.db.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return Message{}, fmt.Errorf("select message %d for update: %w", id, err)
	}
	return m, nil
}

// ParsedFields are the columns of an inbound message that come from
// reading its mail, and that re-processing may correct.
type ParsedFields struct {
	Subject   string
	FromName  string
	TextBody  string
	HTMLBody  string
	ReplyText string
	Signature string
	AutoKind  string
}

// UpdateParsedFields overwrites the parsed columns of a message.
func (s *Store) UpdateParsedFields(ctx context.Context, messageID int64, f ParsedFields) error {
	if _, err := s.db.Exec(ctx, `UPDATE messages SET subject = $2, from_name = $3, text_body = $4, html_body = $5,
		reply_text = $6, signature = $7, auto_kind = $8 WHERE id = $1`,
		messageID, f.Subject, f.FromName, f.TextBody, f.HTMLBody, f.ReplyText, f.Signature, f.AutoKind); err != nil {
		return fmt.Errorf("update parsed fields of message %d: %w", messageID, err)
	}
	return nil
}

// ReplaceDescription sets a ticket's description to to when it still is
// from, and reports whether it did: a description someone changed since is
// left alone.
func (s *Store) ReplaceDescription(ctx context.Context, ticketID int64, from, to string) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE tickets SET description = $3 WHERE id = $1 AND description = $2`,
		ticketID, from, to)
	if err != nil {
		return false, fmt.Errorf("update description of ticket %d: %w", ticketID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// MessageAttachments lists a message's attachments without their bytes,
// in the order they were stored.
func (s *Store) MessageAttachments(ctx context.Context, messageID int64) ([]AttachmentInfo, error) {
	rows, err := s.db.Query(ctx, `SELECT id, message_id, filename, content_type, content_id, inline, size, sha256,
		data IS NOT NULL FROM attachments WHERE message_id = $1 ORDER BY id`, messageID)
	if err != nil {
		return nil, fmt.Errorf("select attachments of message %d: %w", messageID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AttachmentInfo, error) {
		var a AttachmentInfo
		err := row.Scan(&a.ID, &a.MessageID, &a.Filename, &a.ContentType, &a.ContentID, &a.Inline, &a.Size,
			&a.SHA256, &a.Kept)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("select attachments of message %d: %w", messageID, err)
	}
	return out, nil
}

// DeleteAttachment removes an attachment row; the raw mail still holds it.
func (s *Store) DeleteAttachment(ctx context.Context, id int64) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM attachments WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete attachment %d: %w", id, err)
	}
	return nil
}

// HasRepliedEvent reports whether a ticket.replied event was queued for the
// message: intake queues one for every reply that is not a staff member's
// authorised reply.
func (s *Store) HasRepliedEvent(ctx context.Context, ticketID, messageID int64) (bool, error) {
	var ok bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM event_outbox
		WHERE ticket_id = $1 AND name = $2 AND data->>'message_id' = $3::bigint::text)`,
		ticketID, EventReplied, messageID).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up ticket.replied of message %d: %w", messageID, err)
	}
	return ok, nil
}
