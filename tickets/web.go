package tickets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Scope is which tickets someone may see and change. The zero Scope sees
// nothing, so a forgotten scope fails closed.
type Scope struct {
	All           bool  // admins: every ticket
	AssigneeID    int64 // moderators: the tickets assigned to them...
	Unassigned    bool  // ...and, when configured, the unassigned ones
	ParticipantID int64 // requesters: the tickets they opened or were copied on
}

// ScopeFor returns the scope of a user's role. Moderators see unassigned
// tickets too when seeUnassigned is set.
func ScopeFor(u User, seeUnassigned bool) Scope {
	switch u.Role {
	case RoleAdmin:
		return Scope{All: true}
	case RoleModerator:
		return Scope{AssigneeID: u.ID, Unassigned: seeUnassigned}
	}
	return Scope{ParticipantID: u.ID}
}

// query builds a WHERE clause with numbered arguments.
type query struct {
	conds []string
	args  []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *query) where(format string, vals ...any) {
	placeholders := make([]any, len(vals))
	for i, v := range vals {
		placeholders[i] = q.arg(v)
	}
	q.conds = append(q.conds, fmt.Sprintf(format, placeholders...))
}

func (q *query) sql() string {
	if len(q.conds) == 0 {
		return "true"
	}
	return strings.Join(q.conds, " AND ")
}

// scope adds the scope's condition on the tickets aliased t.
func (q *query) scope(sc Scope) {
	switch {
	case sc.All:
	case sc.ParticipantID != 0:
		id := q.arg(sc.ParticipantID)
		q.conds = append(q.conds, `t.id IN (SELECT id FROM tickets WHERE requester_id = `+id+
			` UNION ALL SELECT ticket_id FROM ticket_participants WHERE user_id = `+id+`)`)
	case sc.AssigneeID != 0 && sc.Unassigned:
		q.where(`(t.assignee_id = %s OR t.assignee_id IS NULL)`, sc.AssigneeID)
	case sc.AssigneeID != 0:
		q.where(`t.assignee_id = %s`, sc.AssigneeID)
	default:
		q.conds = append(q.conds, "false")
	}
}

// TicketFilter selects tickets for a list. Zero fields do not filter.
type TicketFilter struct {
	Scope      Scope
	Status     Status
	Priority   Priority
	AssigneeID int64
	Unassigned bool   // only tickets nobody is assigned to
	Skill      string // tickets that need this skill
	Query      string // full text, web-search syntax ("disk -printer", "\"exact words\"")
	Sort       string // "priority" (default: priority, then oldest first), "newest", "updated", "relevance"
	Limit      int    // default 50
	Offset     int
}

// Sorts lists the orders a ticket list knows.
var Sorts = []string{"priority", "newest", "updated", "relevance"}

func (f TicketFilter) query(withStatus bool) query {
	var q query
	q.scope(f.Scope)
	if withStatus && f.Status != "" {
		q.where(`t.status = %s::ticket_status`, f.Status)
	}
	if f.Priority != "" {
		q.where(`t.priority = %s::ticket_priority`, f.Priority)
	}
	if f.Unassigned {
		q.conds = append(q.conds, `t.assignee_id IS NULL`)
	} else if f.AssigneeID != 0 {
		q.where(`t.assignee_id = %s`, f.AssigneeID)
	}
	if skill := NormalizeSkills([]string{f.Skill}); len(skill) == 1 {
		// skills <> '{}' lets the planner use tickets_skills_idx.
		q.where(`t.skills @> ARRAY[%s::text] AND t.skills <> '{}'`, skill[0])
	}
	if s := strings.TrimSpace(f.Query); s != "" {
		q.conds = append(q.conds, searchMatch(`websearch_to_tsquery('simple', `+q.arg(s)+`)`))
	}
	return q
}

// TicketListItem is a ticket with the people a list shows.
type TicketListItem struct {
	Ticket
	RequesterEmail string
	RequesterName  string
	AssigneeEmail  string // "" when unassigned
	AssigneeName   string
}

// ListTickets returns one page of the tickets the filter selects, and how
// many it selects in all.
func (s *Store) ListTickets(ctx context.Context, f TicketFilter) ([]TicketListItem, int, error) {
	q := f.query(true)
	var total int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM tickets t WHERE `+q.sql(), q.args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count tickets: %w", err)
	}
	order := `t.priority DESC, t.created_at, t.id`
	switch f.Sort {
	case "newest":
		order = `t.created_at DESC, t.id DESC`
	case "updated":
		order = `t.updated_at DESC, t.id DESC`
	case "relevance":
		if s := strings.TrimSpace(f.Query); s != "" {
			order = `ts_rank(` + searchDocument + `, websearch_to_tsquery('simple', ` + q.arg(s) + `)) DESC, t.id DESC`
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	sql := `
		SELECT ` + prefixed("t", ticketColumns) + `, r.email, r.name, COALESCE(a.email, ''), COALESCE(a.name, '')
		FROM tickets t
		JOIN users r ON r.id = t.requester_id
		LEFT JOIN users a ON a.id = t.assignee_id
		WHERE ` + q.sql() + `
		ORDER BY ` + order + `
		LIMIT ` + q.arg(limit) + ` OFFSET ` + q.arg(max(f.Offset, 0))
	rows, err := s.db.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, 0, fmt.Errorf("select tickets: %w", err)
	}
	defer rows.Close()
	var out []TicketListItem
	for rows.Next() {
		var it TicketListItem
		t := &it.Ticket
		if err := rows.Scan(append(ticketFields(t),
			&it.RequesterEmail, &it.RequesterName, &it.AssigneeEmail, &it.AssigneeName)...); err != nil {
			return nil, 0, fmt.Errorf("select tickets: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("select tickets: %w", err)
	}
	return out, total, nil
}

// CountTicketsByStatus counts the tickets the filter selects per status,
// ignoring the filter's own status. Every status has an entry.
func (s *Store) CountTicketsByStatus(ctx context.Context, f TicketFilter) (map[Status]int, error) {
	q := f.query(false)
	rows, err := s.db.Query(ctx, `SELECT t.status, count(*) FROM tickets t WHERE `+q.sql()+` GROUP BY t.status`, q.args...)
	if err != nil {
		return nil, fmt.Errorf("count tickets by status: %w", err)
	}
	defer rows.Close()
	out := make(map[Status]int, len(Statuses))
	for _, st := range Statuses {
		out[st] = 0
	}
	for rows.Next() {
		var st Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count tickets by status: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

// VisibleTicket returns the ticket when the scope may see it, and
// ErrNotFound otherwise: someone else's ticket looks like no ticket. With
// lock set it locks the row until the transaction ends.
func (s *Store) VisibleTicket(ctx context.Context, sc Scope, id int64, lock bool) (Ticket, error) {
	var q query
	q.where(`t.id = %s`, id)
	q.scope(sc)
	sql := `SELECT ` + prefixed("t", ticketColumns) + ` FROM tickets t WHERE ` + q.sql()
	if lock {
		sql += ` FOR UPDATE OF t`
	}
	t, err := scanTicket(s.db.QueryRow(ctx, sql, q.args...))
	if err != nil {
		return Ticket{}, fmt.Errorf("select ticket %d: %w", id, err)
	}
	return t, nil
}

// AttachmentInfo is an attachment without its bytes.
type AttachmentInfo struct {
	Attachment
	Kept bool // false when it was over intake's size limit: only the raw mail holds it
}

// TicketAttachments lists the attachments of a ticket's messages, without
// their contents, in thread order.
func (s *Store) TicketAttachments(ctx context.Context, ticketID int64) ([]AttachmentInfo, error) {
	rows, err := s.db.Query(ctx, `
		SELECT a.id, a.message_id, a.filename, a.content_type, a.content_id, a.inline, a.size, a.sha256,
			a.data IS NOT NULL
		FROM attachments a JOIN messages m ON m.id = a.message_id
		WHERE m.ticket_id = $1 ORDER BY m.created_at, m.id, a.id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("select attachments of ticket %d: %w", ticketID, err)
	}
	defer rows.Close()
	var out []AttachmentInfo
	for rows.Next() {
		var a AttachmentInfo
		if err := rows.Scan(&a.ID, &a.MessageID, &a.Filename, &a.ContentType, &a.ContentID, &a.Inline,
			&a.Size, &a.SHA256, &a.Kept); err != nil {
			return nil, fmt.Errorf("select attachments of ticket %d: %w", ticketID, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AttachmentContent returns an attachment with its bytes (Data is nil when
// it was over intake's size limit) and the message it belongs to.
func (s *Store) AttachmentContent(ctx context.Context, id int64) (Attachment, Message, error) {
	var a Attachment
	err := s.db.QueryRow(ctx, `SELECT id, message_id, filename, content_type, content_id, inline, size, sha256, data
		FROM attachments WHERE id = $1`, id).Scan(&a.ID, &a.MessageID, &a.Filename, &a.ContentType,
		&a.ContentID, &a.Inline, &a.Size, &a.SHA256, &a.Data)
	if err != nil {
		return Attachment{}, Message{}, fmt.Errorf("select attachment %d: %w", id, notFound(err))
	}
	m, err := s.Message(ctx, a.MessageID)
	if err != nil {
		return Attachment{}, Message{}, err
	}
	return a, m, nil
}

// MessageFiles returns the attachments of a message whose contents ticketd
// kept, with their contents, in the order they were stored.
func (s *Store) MessageFiles(ctx context.Context, messageID int64) ([]Attachment, error) {
	rows, err := s.db.Query(ctx, `SELECT id, message_id, filename, content_type, content_id, inline, size, sha256, data
		FROM attachments WHERE message_id = $1 AND data IS NOT NULL ORDER BY id`, messageID)
	if err != nil {
		return nil, fmt.Errorf("select files of message %d: %w", messageID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Attachment])
	if err != nil {
		return nil, fmt.Errorf("select files of message %d: %w", messageID, err)
	}
	return out, nil
}

// AIDecisionSummary is what a page shows of a triage decision.
type AIDecisionSummary struct {
	ID            int64
	Provider      string
	Model         string
	PromptVersion string
	LatencyMS     int
	Error         string
	CreatedAt     time.Time
}

// LatestAIDecisionSummary returns the newest triage decision of a ticket,
// ErrNotFound when there is none yet.
func (s *Store) LatestAIDecisionSummary(ctx context.Context, ticketID int64) (AIDecisionSummary, error) {
	var d AIDecisionSummary
	err := s.db.QueryRow(ctx, `SELECT id, provider, model, prompt_version, latency_ms, error, created_at
		FROM ai_decisions WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1`, ticketID).Scan(
		&d.ID, &d.Provider, &d.Model, &d.PromptVersion, &d.LatencyMS, &d.Error, &d.CreatedAt)
	if err != nil {
		return AIDecisionSummary{}, fmt.Errorf("select triage decision of ticket %d: %w", ticketID, notFound(err))
	}
	return d, nil
}

// StaffLoad is a moderator's or admin's open work.
type StaffLoad struct {
	User       User
	Todo       int
	InProgress int
	Completed  int
}

// Open is the number of tickets not yet completed.
func (l StaffLoad) Open() int { return l.Todo + l.InProgress }

// StaffLoads returns every moderator and admin, active or not, with the
// tickets assigned to them per status.
func (s *Store) StaffLoads(ctx context.Context) ([]StaffLoad, error) {
	rows, err := s.db.Query(ctx, `
		SELECT `+prefixed("u", userColumns)+`,
			count(t.id) FILTER (WHERE t.status = 'todo'),
			count(t.id) FILTER (WHERE t.status = 'in_progress'),
			count(t.id) FILTER (WHERE t.status = 'completed')
		FROM users u LEFT JOIN tickets t ON t.assignee_id = u.id
		WHERE u.role IN ('moderator', 'admin')
		GROUP BY u.id
		ORDER BY u.active DESC, u.role DESC, lower(u.email)`)
	if err != nil {
		return nil, fmt.Errorf("select staff loads: %w", err)
	}
	defer rows.Close()
	var out []StaffLoad
	for rows.Next() {
		var l StaffLoad
		u := &l.User
		if err := rows.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.Skills, &u.PasswordHash, &u.Active,
			&u.BouncingSince, &u.LastAssignedAt, &u.CreatedAt, &u.UpdatedAt,
			&l.Todo, &l.InProgress, &l.Completed); err != nil {
			return nil, fmt.Errorf("select staff loads: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// HeldMail is a row of the quarantine: automatic mail that matched no
// ticket, held for an admin.
type HeldMail struct {
	ID               int64
	RawMessageID     int64
	AutoKind         string
	Reason           string
	FromAddress      string
	Subject          string
	MessageID        string
	CreatedAt        time.Time
	ReleasedAt       *time.Time
	ReleasedBy       *int64
	ReleasedTicketID *int64
	Size             int
}

const heldMailColumns = `q.id, q.raw_message_id, q.auto_kind, q.reason, q.from_address, q.subject,
	q.message_id, q.created_at, q.released_at, q.released_by, q.released_ticket_id, octet_length(r.data)`

// HeldMails lists the quarantine, newest first: the held mail, or with
// released set, the mail already opened as tickets.
func (s *Store) HeldMails(ctx context.Context, released bool, limit, offset int) ([]HeldMail, int, error) {
	cond := `q.released_at IS NULL`
	if released {
		cond = `q.released_at IS NOT NULL`
	}
	var total int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM quarantine q WHERE `+cond).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count quarantine: %w", err)
	}
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.db.Query(ctx, `SELECT `+heldMailColumns+`
		FROM quarantine q JOIN raw_messages r ON r.id = q.raw_message_id
		WHERE `+cond+` ORDER BY q.created_at DESC, q.id DESC LIMIT $1 OFFSET $2`, limit, max(offset, 0))
	if err != nil {
		return nil, 0, fmt.Errorf("select quarantine: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[HeldMail])
	if err != nil {
		return nil, 0, fmt.Errorf("select quarantine: %w", err)
	}
	return out, total, nil
}

// HeldMailRaw returns a quarantine row and the raw mail it holds. With lock
// set it locks the row until the transaction ends.
func (s *Store) HeldMailRaw(ctx context.Context, id int64, lock bool) (HeldMail, []byte, error) {
	sql := `SELECT ` + heldMailColumns + `, r.data FROM quarantine q JOIN raw_messages r ON r.id = q.raw_message_id
		WHERE q.id = $1`
	if lock {
		sql += ` FOR UPDATE OF q`
	}
	var h HeldMail
	var raw []byte
	err := s.db.QueryRow(ctx, sql, id).Scan(&h.ID, &h.RawMessageID, &h.AutoKind, &h.Reason, &h.FromAddress,
		&h.Subject, &h.MessageID, &h.CreatedAt, &h.ReleasedAt, &h.ReleasedBy, &h.ReleasedTicketID, &h.Size, &raw)
	if err != nil {
		return HeldMail{}, nil, fmt.Errorf("select quarantined mail %d: %w", id, notFound(err))
	}
	return h, raw, nil
}

// ErrAlreadyReleased is returned when held mail was opened as a ticket
// already.
var ErrAlreadyReleased = errors.New("tickets: quarantined mail already released")

// ReleasedMail is what the caller read from a held mail's raw bytes.
type ReleasedMail struct {
	FromAddress string
	FromName    string
	Subject     string
	Text        string
	HTML        string
	MessageID   string // the mail's own Message-ID; "" when it had none
	To, Cc      []string
}

// ReleaseHeldMail opens a ticket from a quarantined mail: the sender becomes
// the requester, the mail its opening message (linked to the raw mail, with
// the auto kind it was held for, so no automatic answer goes to a robot), the
// quarantine row is marked released, and ticket.created goes to the workflow
// engine. Nothing is deleted. Run it inside InTx.
func (s *Store) ReleaseHeldMail(ctx context.Context, id int64, m ReleasedMail, a Actor) (Ticket, error) {
	h, _, err := s.HeldMailRaw(ctx, id, true)
	if err != nil {
		return Ticket{}, err
	}
	if h.ReleasedAt != nil {
		return Ticket{}, fmt.Errorf("release quarantined mail %d: %w", id, ErrAlreadyReleased)
	}
	from := NormalizeEmail(m.FromAddress)
	if from == "" {
		from = NormalizeEmail(h.FromAddress)
	}
	if from == "" {
		// A bounce's null sender (RFC 5321 4.5.5) names nobody to answer.
		from = "mailer-daemon@invalid"
	}
	req, err := s.EnsureRequester(ctx, from, m.FromName)
	if err != nil {
		return Ticket{}, err
	}
	subject := m.Subject
	if subject == "" {
		subject = h.Subject
	}
	t, err := s.CreateTicket(ctx, NewTicket{Subject: subject, Description: m.Text, RequesterID: req.ID, AutoKind: h.AutoKind})
	if err != nil {
		return Ticket{}, err
	}
	msgID := m.MessageID
	if msgID == "" {
		msgID = h.MessageID
	}
	if msgID != "" {
		var taken bool
		if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE direction = 'inbound' AND message_id = $1)`,
			msgID).Scan(&taken); err != nil {
			return Ticket{}, fmt.Errorf("check message id %q: %w", msgID, err)
		}
		if taken {
			msgID = ""
		}
	}
	if msgID == "" {
		msgID = fmt.Sprintf("quarantine-%d@ticketd.invalid", h.ID)
	}
	raw := h.RawMessageID
	if _, err := s.InsertMessage(ctx, Message{TicketID: t.ID, Direction: Inbound, Kind: KindOpening,
		MessageID: msgID, FromAddress: from, FromName: m.FromName, ToAddresses: m.To, CcAddresses: m.Cc,
		Subject: subject, TextBody: m.Text, HTMLBody: m.HTML, ReplyText: m.Text, AutoKind: h.AutoKind,
		ThreadRule: "quarantine", RawMessageID: &raw}); err != nil {
		return Ticket{}, err
	}
	if _, err := s.db.Exec(ctx, `UPDATE quarantine SET released_at = now(), released_by = $2, released_ticket_id = $3
		WHERE id = $1`, id, a.UserID, t.ID); err != nil {
		return Ticket{}, fmt.Errorf("mark quarantined mail %d released: %w", id, err)
	}
	tid := t.ID
	if err := s.Audit(ctx, AuditEntry{TicketID: &tid, ActorID: a.UserID, Channel: a.Channel, Action: "release",
		NewValue: strconv.FormatInt(id, 10), Detail: h.AutoKind + ": " + h.Reason}); err != nil {
		return Ticket{}, err
	}
	if _, err := s.EnqueueEvent(ctx, EventCreated, t.ID, struct {
		TicketID int64 `json:"ticket_id"`
	}{t.ID}); err != nil {
		return Ticket{}, err
	}
	return t, nil
}

// CreatePortalToken makes a single-use sign-in secret for the user that
// works until ttl has passed, and stores only its SHA-256.
func (s *Store) CreatePortalToken(ctx context.Context, userID int64, ttl time.Duration, remoteAddr string) (string, error) {
	secret, err := NewSecret("")
	if err != nil {
		return "", fmt.Errorf("create sign-in token for user %d: %w", userID, err)
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO portal_sign_in_tokens (token_hash, user_id, expires_at, remote_addr)
		VALUES ($1, $2, now() + make_interval(secs => $3), $4)`, HashSecret(secret), userID, ttl.Seconds(), remoteAddr); err != nil {
		return "", fmt.Errorf("create sign-in token for user %d: %w", userID, err)
	}
	return secret, nil
}

// PortalTokenUser returns the active user of a sign-in secret that is
// unused and unexpired, without using it up.
func (s *Store) PortalTokenUser(ctx context.Context, secret string) (User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+prefixed("u", userColumns)+`
		FROM portal_sign_in_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now() AND u.active`, HashSecret(secret)))
	if err != nil {
		return User{}, fmt.Errorf("find sign-in token: %w", err)
	}
	return u, nil
}

// ConsumePortalToken uses up a sign-in secret and returns its active user.
// A secret works once: a second use, an expired or unknown secret is
// ErrNotFound.
func (s *Store) ConsumePortalToken(ctx context.Context, secret string) (User, error) {
	var userID int64
	err := s.db.QueryRow(ctx, `UPDATE portal_sign_in_tokens SET used_at = now()
		WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
		RETURNING user_id`, HashSecret(secret)).Scan(&userID)
	if err != nil {
		return User{}, fmt.Errorf("use sign-in token: %w", notFound(err))
	}
	u, err := s.User(ctx, userID)
	if err != nil {
		return User{}, err
	}
	if !u.Active {
		return User{}, fmt.Errorf("use sign-in token: user %d is inactive: %w", userID, ErrNotFound)
	}
	return u, nil
}

// CountWebAttempts returns, for each key, how many attempts were recorded
// since then.
func (s *Store) CountWebAttempts(ctx context.Context, since time.Time, keys ...string) (map[string]int, error) {
	rows, err := s.db.Query(ctx, `SELECT key, count(*) FROM web_attempts
		WHERE key = ANY($1) AND created_at > $2 GROUP BY key`, keys, since)
	if err != nil {
		return nil, fmt.Errorf("count attempts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int, len(keys))
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("count attempts: %w", err)
		}
		out[k] = n
	}
	return out, rows.Err()
}

// RecordWebAttempts records one attempt under each key.
func (s *Store) RecordWebAttempts(ctx context.Context, keys ...string) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO web_attempts (key) SELECT unnest($1::text[])`, keys); err != nil {
		return fmt.Errorf("record attempts: %w", err)
	}
	return nil
}

// PruneWebState deletes what the web no longer needs: expired sessions,
// sign-in tokens a day past their expiry, and attempts older than keep.
func (s *Store) PruneWebState(ctx context.Context, keep time.Duration) (int64, error) {
	var n int64
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM sessions WHERE expiry < now()`, nil},
		{`DELETE FROM portal_sign_in_tokens WHERE expires_at < now() - interval '1 day'`, nil},
		{`DELETE FROM web_attempts WHERE created_at < now() - make_interval(secs => $1)`, []any{keep.Seconds()}},
	} {
		tag, err := s.db.Exec(ctx, q.sql, q.args...)
		if err != nil {
			return n, fmt.Errorf("prune web state: %w", err)
		}
		n += tag.RowsAffected()
	}
	return n, nil
}

// IndexSearch builds the full-text document of up to limit tickets created
// more than olderThan ago that no change has reached since intake, oldest
// first, and returns how many it built. Searches find those tickets without
// it, by computing their documents as they read them; this keeps them few.
func (s *Store) IndexSearch(ctx context.Context, olderThan time.Duration, limit int) (int64, error) {
	tag, err := s.db.Exec(ctx, `
		UPDATE tickets SET search = ticket_search_document(subject, summary, description)
		WHERE id IN (SELECT id FROM tickets WHERE search IS NULL AND created_at < now() - make_interval(secs => $1)
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)`, olderThan.Seconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("index tickets for search: %w", err)
	}
	return tag.RowsAffected(), nil
}

// MessageByRFCID returns the message of that direction with that RFC 5322
// Message-ID (without angle brackets).
func (s *Store) MessageByRFCID(ctx context.Context, dir Direction, messageID string) (Message, error) {
	m, err := scanMessage(s.db.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE direction = $1 AND message_id = $2`, dir, messageID))
	if err != nil {
		return Message{}, fmt.Errorf("select message %q: %w", messageID, err)
	}
	return m, nil
}
