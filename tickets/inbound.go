package tickets

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Queries of mail intake (inbound.Deliver): raw messages, duplicates,
// quarantine, attachments and bounces.

// NewRawMessage is a mail exactly as it arrived, with how it arrived.
type NewRawMessage struct {
	SHA256     []byte // of the bytes as they arrived: Data without an Authentication-Results field ticketd put on top
	Data       []byte
	Source     string  // smtp, imap, web, api
	Mailbox    *string // imap: the checkpoint key of the mailbox
	UID        *int64  // imap: the UID there
	RemoteAddr *string // smtp: the client's address
	MailFrom   *string // smtp: the envelope sender, "" for the null sender
	RcptTo     []string
	Auth       []byte // JSON of the sender checks' verdict (mailauth.Verdict); nil when none
}

// LockIntake takes a transaction-scoped advisory lock on key, so that two
// deliveries of the same mail (same Message-ID or same bytes) take turns and
// the second sees what the first committed. Run it inside InTx.
func (s *Store) LockIntake(ctx context.Context, key string) error {
	if _, err := s.db.Exec(ctx, lockIntakeSQL, lockIntakeSpace, intakeLockKey(key)); err != nil {
		return fmt.Errorf("lock intake of %q: %w", key, err)
	}
	return nil
}

// The two-int form keeps intake's locks out of the single-bigint key space
// other parts of ticketd use; 0x74640001 names intake.
const (
	lockIntakeSQL   = `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`
	lockIntakeSpace = int32(0x74640001)
)

func intakeLockKey(key string) int32 {
	sum := sha256.Sum256([]byte(key))
	return int32(binary.BigEndian.Uint32(sum[:4]))
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
		INSERT INTO raw_messages (sha256, data, source, mailbox, uid, remote_addr, mail_from, rcpt_to, auth)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (sha256) DO NOTHING
		RETURNING id`, r.SHA256, r.Data, r.Source, r.Mailbox, r.UID, r.RemoteAddr, r.MailFrom, rcpt, r.Auth).Scan(&id)
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
	rows, err := s.db.Query(ctx, `SELECT src, ticket_id, row_id, thread_rule, message_id, same
		FROM (`+earlierIntakeSQL+`) r ORDER BY same DESC, src, row_id LIMIT 20`, id, altID, from)
	if err != nil {
		return IntakeRecord{}, false, fmt.Errorf("select mails by message id: %w", err)
	}
	var e earlierIntake
	for rows.Next() {
		var row earlierRow
		if err := rows.Scan(&row.src, &row.ticketID, &row.rowID, &row.threadRule, &row.messageID, &row.same); err != nil {
			rows.Close()
			return IntakeRecord{}, false, fmt.Errorf("select mails by message id: %w", err)
		}
		e.add(row, id)
	}
	if err := rows.Err(); err != nil {
		return IntakeRecord{}, false, fmt.Errorf("select mails by message id: %w", err)
	}
	if e.rec == nil {
		return IntakeRecord{}, e.taken, ErrNotFound
	}
	return *e.rec, e.taken, nil
}

// earlierIntakeSQL finds the inbound messages and quarantine entries stored
// under the Message-ID $1 or $2, and whether they came from the sender $3.
// It looks each id up by equality in each table: a generic plan made while
// the tables were small (pgx prepares every statement) would rather walk
// all inbound messages for "message_id IN ($1, $2)".
const earlierIntakeSQL = `
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
	FROM quarantine WHERE message_id = $2`

type earlierRow struct {
	src                   int
	ticketID, rowID       int64
	threadRule, messageID string
	same                  bool
}

// earlierIntake gathers rows of earlierIntakeSQL in the order same DESC,
// src, row_id: the first from the same sender is the mail's earlier
// delivery.
type earlierIntake struct {
	rec   *IntakeRecord
	best  earlierRow
	taken bool // an inbound message of any sender holds the mail's own id
}

func (e *earlierIntake) add(r earlierRow, id string) {
	if r.src == 0 && r.messageID == id {
		e.taken = true
	}
	if !r.same {
		return
	}
	if e.rec != nil && (r.src > e.best.src || (r.src == e.best.src && r.rowID > e.best.rowID)) {
		return
	}
	rec := IntakeRecord{TicketID: r.ticketID, ThreadRule: r.threadRule}
	if r.src == 0 {
		rec.MessageID = r.rowID
	} else {
		rec.QuarantineID = r.rowID
	}
	e.rec, e.best = &rec, r
}

// IntakeStart is what the first round trip of a delivery asks.
type IntakeStart struct {
	// LockKey names the mail (its Message-ID, else its hash): deliveries
	// of the same mail take turns, so the second sees what the first
	// committed.
	LockKey string
	// MessageID and AltID are the mail's Message-ID and the id it gets
	// when another sender used that one; both "" when it has none.
	MessageID, AltID string
	// Sender is the mail's sender, normalized; "" when none is usable.
	Sender string
	// Raw is the mail as it arrived, stored unless the same Message-ID
	// from the same sender or the same bytes are stored already.
	Raw NewRawMessage
	// ReserveMessage reserves ids for a message and an event along with
	// the raw message, for a mail that will reach a ticket; ReserveTicket
	// a ticket id, for a mail that will open one.
	ReserveMessage, ReserveTicket bool
}

// IntakeBegun is what the first round trip learned.
type IntakeBegun struct {
	// Earlier is what intake made of the same Message-ID from the same
	// sender; nil when there is none. Nothing was stored then.
	Earlier *IntakeRecord
	// Taken: an inbound message of another sender holds the Message-ID.
	Taken bool
	// RawID is the raw message inserted now; 0 when it was not (a
	// duplicate, or the same bytes stored before).
	RawID int64
	// Ids reserved with the raw message, for the message and event the
	// mail becomes, and for its ticket when asked for; 0 otherwise.
	MessageID, EventID, TicketID int64
	// Sender is the user with the sender's address; nil when there is
	// none.
	Sender *User
}

// BeginIntake starts a delivery's transaction on a connection of the pool
// and, in the same round trip, takes the intake lock of the mail, looks
// for an earlier delivery of it, stores its raw bytes unless it is a
// duplicate, and looks up its sender. The caller ends the transaction with
// Commit or Rollback, and tells it with Notify which outboxes it wrote to.
func BeginIntake(ctx context.Context, pool *pgxpool.Pool, q IntakeStart) (*IntakeTx, IntakeBegun, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, IntakeBegun{}, fmt.Errorf("begin intake: %w", err)
	}
	var b pgx.Batch
	b.BeginTx(pgx.TxOptions{})
	// The outbox triggers leave their notifications to Commit (migration
	// 0008), which sends them after the commit, outside the transaction.
	b.Queue(`SELECT pg_advisory_xact_lock($1::int4, $2::int4), set_config('ticketd.notify_after_commit', 'on', true)`,
		lockIntakeSpace, intakeLockKey(q.LockKey))
	var id, altID *string
	if q.MessageID != "" {
		id, altID = &q.MessageID, &q.AltID
	}
	rcpt := q.Raw.RcptTo
	if rcpt == nil {
		rcpt = []string{}
	}
	r := q.Raw
	data := r.Data
	if len(data) >= largeValue {
		// A large mail's bytes follow in a statement of their own
		// (execLarge), and the row holds none until then.
		data = []byte{}
	}
	b.Queue(`
		WITH earlier AS (`+earlierIntakeSQL+`),
		raw AS (
			INSERT INTO raw_messages (sha256, data, source, mailbox, uid, remote_addr, mail_from, rcpt_to, auth)
			SELECT $4::bytea, $5::bytea, $6::text, $7::text, $8::bigint, $9::text, $10::text, $11::text[], $14::jsonb
			WHERE NOT EXISTS (SELECT 1 FROM earlier WHERE same)
			ON CONFLICT (sha256) DO NOTHING
			RETURNING id,
				CASE WHEN $12::bool THEN nextval('messages_id_seq') ELSE 0 END AS message_seq,
				CASE WHEN $12::bool THEN nextval('event_outbox_id_seq') ELSE 0 END AS event_seq,
				CASE WHEN $13::bool THEN nextval('tickets_id_seq') ELSE 0 END AS ticket_seq)
		SELECT false, src, ticket_id, row_id, thread_rule, message_id, same, 0, 0, 0 FROM earlier
		UNION ALL
		SELECT true, 0, 0, id, '', '', false, message_seq, event_seq, ticket_seq FROM raw`,
		id, altID, q.Sender, r.SHA256, data, r.Source, r.Mailbox, r.UID, r.RemoteAddr, r.MailFrom, rcpt, q.ReserveMessage, q.ReserveTicket,
		r.Auth)
	if q.Sender != "" {
		b.Queue(`SELECT `+userColumns+` FROM users WHERE lower(email) = lower($1)`, q.Sender)
	}
	br := conn.SendBatch(ctx, &b)
	tx := &IntakeTx{conn: conn, tx: br.Tx()}
	got, err := readBegun(br, q)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && got.RawID != 0 && len(data) != len(r.Data) {
		_, err = tx.execLarge(ctx, `UPDATE raw_messages SET data = $2 WHERE id = $1`, got.RawID, r.Data)
	}
	if err != nil {
		tx.Rollback(ctx)
		return nil, IntakeBegun{}, fmt.Errorf("begin intake: %w", err)
	}
	return tx, got, nil
}

func readBegun(br pgx.BatchResults, q IntakeStart) (IntakeBegun, error) {
	var got IntakeBegun
	if _, err := br.Exec(); err != nil {
		return got, err
	}
	if _, err := br.Exec(); err != nil {
		return got, fmt.Errorf("lock intake of %q: %w", q.LockKey, err)
	}
	rows, err := br.Query()
	if err != nil {
		return got, fmt.Errorf("store raw message: %w", err)
	}
	var e earlierIntake
	for rows.Next() {
		var inserted bool
		var row earlierRow
		var msgSeq, evSeq, ticketSeq int64
		if err := rows.Scan(&inserted, &row.src, &row.ticketID, &row.rowID, &row.threadRule, &row.messageID, &row.same,
			&msgSeq, &evSeq, &ticketSeq); err != nil {
			rows.Close()
			return got, fmt.Errorf("store raw message: %w", err)
		}
		if inserted {
			got.RawID, got.MessageID, got.EventID, got.TicketID = row.rowID, msgSeq, evSeq, ticketSeq
			continue
		}
		e.add(row, q.MessageID)
	}
	if err := rows.Err(); err != nil {
		return got, fmt.Errorf("store raw message: %w", err)
	}
	got.Earlier, got.Taken = e.rec, e.taken
	if q.Sender != "" {
		u, err := scanUser(br.QueryRow())
		switch {
		case err == nil:
			got.Sender = &u
		case !errors.Is(err, ErrNotFound):
			return got, fmt.Errorf("select user %q: %w", q.Sender, err)
		}
	}
	return got, nil
}

// Queued writes of intake: inside an IntakeTx they wait for the next round
// trip (see IntakeTx); elsewhere they run at once.

// later runs a write whose result nobody reads. In an IntakeTx, one with a
// large argument goes at once, on its own (execLarge).
func (s *Store) later(ctx context.Context, what, sql string, args ...any) error {
	if t, ok := s.db.(*IntakeTx); ok {
		if !hasLarge(args) {
			t.queued(what, sql, args...)
			return nil
		}
		if _, err := t.execLarge(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if _, err := s.db.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// QueueTicket opens a ticket in To-Do under an id taken from its sequence,
// like CreateTicket.
func (s *Store) QueueTicket(ctx context.Context, id int64, n NewTicket) error {
	n = n.normalized()
	return s.later(ctx, "insert ticket", `
		INSERT INTO tickets (id, subject, description, requester_id, auto_kind, linked_ticket_id, requester_unverified)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, n.Subject, n.Description, n.RequesterID, n.AutoKind, n.LinkedTicketID,
		n.RequesterUnverified)
}

// QueueParticipant adds a person copied on a ticket, who is not its
// requester, to its people, like AddParticipant.
func (s *Store) QueueParticipant(ctx context.Context, ticketID, userID int64) error {
	return s.later(ctx, fmt.Sprintf("insert participant %d of ticket %d", userID, ticketID), `
		INSERT INTO ticket_participants (ticket_id, user_id)
		VALUES ($1, $2) ON CONFLICT DO NOTHING`, ticketID, userID)
}

// QueueMessage adds a message to a ticket's thread under m.ID, taken from
// its sequence, like InsertMessage; it returns the message as stored,
// without CreatedAt.
func (s *Store) QueueMessage(ctx context.Context, m Message) (Message, error) {
	if m.Kind == "" {
		m.Kind = KindReply
	}
	if m.AutoKind == "" {
		m.AutoKind = "none"
	}
	m.Refs, m.ToAddresses, m.CcAddresses = nonNil(m.Refs), nonNil(m.ToAddresses), nonNil(m.CcAddresses)
	err := s.later(ctx, fmt.Sprintf("insert message %q into ticket %d", m.MessageID, m.TicketID), `
		INSERT INTO messages (id, ticket_id, direction, kind, internal, author_id, message_id, in_reply_to,
			refs, from_address, from_name, to_addresses, cc_addresses, subject, text_body, html_body,
			reply_text, signature, auto_kind, thread_rule, raw_message_id, held)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		m.ID, m.TicketID, m.Direction, m.Kind, m.Internal || m.Held != "", m.AuthorID, m.MessageID, m.InReplyTo, m.Refs,
		m.FromAddress, m.FromName, m.ToAddresses, m.CcAddresses, m.Subject, m.TextBody,
		m.HTMLBody, m.ReplyText, m.Signature, m.AutoKind, m.ThreadRule, m.RawMessageID, m.Held)
	if err != nil {
		return Message{}, err
	}
	return m, s.touch(ctx, m)
}

// QueueAttachment stores an attachment of a message, like InsertAttachment.
func (s *Store) QueueAttachment(ctx context.Context, a Attachment) error {
	if a.ContentType == "" {
		a.ContentType = "application/octet-stream"
	}
	return s.later(ctx, fmt.Sprintf("insert attachment %q of message %d", a.Filename, a.MessageID), `
		INSERT INTO attachments (message_id, filename, content_type, content_id, inline, size, sha256, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.MessageID, a.Filename, a.ContentType, a.ContentID, a.Inline, a.Size, a.SHA256, a.Data)
}

// QueueAudit appends an entry to the audit log, like Audit.
func (s *Store) QueueAudit(ctx context.Context, e AuditEntry) error {
	return s.later(ctx, fmt.Sprintf("insert audit entry %q", e.Action), `
		INSERT INTO audit_log (ticket_id, actor_id, channel, action, old_value, new_value, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.TicketID, e.ActorID, e.Channel, e.Action, e.OldValue, e.NewValue, e.Detail)
}

// QueueEvent writes an event to the outbox under id, taken from its
// sequence, like EnqueueEvent.
func (s *Store) QueueEvent(ctx context.Context, id int64, name string, ticketID int64, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", name, err)
	}
	return s.later(ctx, "insert event "+name, `INSERT INTO event_outbox (id, name, ticket_id, data)
		VALUES ($1, $2, $3, $4)`, id, name, ticketID, b)
}

// ReserveID takes an id from the sequence of table's id column (messages,
// event_outbox or tickets), for a row that a Queue* call inserts later.
func (s *Store) ReserveID(ctx context.Context, table string) (int64, error) {
	seq := map[string]string{"messages": "messages_id_seq", "event_outbox": "event_outbox_id_seq", "tickets": "tickets_id_seq",
		"mail_outbox": "mail_outbox_id_seq"}[table]
	if seq == "" {
		return 0, fmt.Errorf("reserve id: no sequence for %q", table)
	}
	var id int64
	if err := s.db.QueryRow(ctx, `SELECT nextval($1::regclass)`, seq).Scan(&id); err != nil {
		return 0, fmt.Errorf("reserve id of %s: %w", table, err)
	}
	return id, nil
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

// SentMessageID reports whether ticketd sent a mail with Message-ID id:
// an outbound message of a ticket, or a mail of the outbox.
func (s *Store) SentMessageID(ctx context.Context, id string) (bool, error) {
	var sent bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE direction = 'outbound' AND message_id = $1)
		OR EXISTS (SELECT 1 FROM mail_outbox WHERE message_id = $1)`, id).Scan(&sent)
	if err != nil {
		return false, fmt.Errorf("look up sent message id: %w", err)
	}
	return sent, nil
}

// LockTicketByMessageIDs finds the ticket of the first of ids (in their
// order) that ticketd received or sent, like TicketByMessageID, and locks
// it like TicketForUpdate, in one statement. It returns the id that
// matched, whether a sender chose that id (a mail ticketd received) rather
// than ticketd (one it sent), and ErrNotFound when none matches. With
// sentOnly, only ids of mails ticketd sent count. An id stored on several
// tickets is the earliest's.
func (s *Store) LockTicketByMessageIDs(ctx context.Context, ids []string, sentOnly bool) (t Ticket, matched string, chosen bool, err error) {
	t, err = scanTicket(extraScan{s.db.QueryRow(ctx, `
		SELECT `+prefixed("t", ticketColumns)+`, ids.id, m.chosen
		FROM unnest($1::text[]) WITH ORDINALITY AS ids(id, ord)
		CROSS JOIN LATERAL (
			SELECT ticket_id, chosen FROM (
				SELECT ticket_id, direction = 'inbound' AS chosen, 0 AS src, id
				FROM messages WHERE direction IN ('inbound', 'outbound') AND message_id = ids.id
				UNION ALL
				SELECT ticket_id, false, 1, id FROM mail_outbox WHERE message_id = ids.id AND ticket_id IS NOT NULL
			) found WHERE NOT ($2 AND chosen) ORDER BY src, id LIMIT 1) m
		JOIN tickets t ON t.id = m.ticket_id
		WHERE ids.id <> ''
		ORDER BY ids.ord LIMIT 1
		FOR UPDATE OF t`, ids, sentOnly), []any{&matched, &chosen}})
	if err != nil {
		return Ticket{}, "", false, fmt.Errorf("lock ticket of message ids: %w", err)
	}
	return t, matched, chosen, nil
}

// extraScan scans the columns a row has after those its caller scans.
type extraScan struct {
	pgx.Row
	extra []any
}

func (r extraScan) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.extra...)...) }
