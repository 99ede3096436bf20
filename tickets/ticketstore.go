package tickets

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

const ticketColumns = `id, subject, description, status, priority, requester_id, assignee_id, skills,
	suggested_skills, category, language, summary, helpful_notes, first_response, assignment_reason,
	auto_kind, linked_ticket_id, requester_unverified, created_at, updated_at, triaged_at, assigned_at,
	completed_at`

// ticketFields are the scan targets of ticketColumns.
func ticketFields(t *Ticket) []any {
	return []any{&t.ID, &t.Subject, &t.Description, &t.Status, &t.Priority, &t.RequesterID,
		&t.AssigneeID, &t.Skills, &t.SuggestedSkills, &t.Category, &t.Language, &t.Summary,
		&t.HelpfulNotes, &t.FirstResponse, &t.AssignmentReason, &t.AutoKind, &t.LinkedTicketID,
		&t.RequesterUnverified, &t.CreatedAt, &t.UpdatedAt, &t.TriagedAt, &t.AssignedAt, &t.CompletedAt}
}

func scanTicket(row pgx.Row) (Ticket, error) {
	var t Ticket
	err := row.Scan(ticketFields(&t)...)
	return t, notFound(err)
}

// Ticket returns the ticket with that id.
func (s *Store) Ticket(ctx context.Context, id int64) (Ticket, error) {
	t, err := scanTicket(s.db.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = $1`, id))
	if err != nil {
		return Ticket{}, fmt.Errorf("select ticket %d: %w", id, err)
	}
	return t, nil
}

// TicketForUpdate returns the ticket and locks its row until the
// transaction ends, so concurrent changes to one ticket take turns.
func (s *Store) TicketForUpdate(ctx context.Context, id int64) (Ticket, error) {
	t, err := scanTicket(s.db.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return Ticket{}, fmt.Errorf("lock ticket %d: %w", id, err)
	}
	return t, nil
}

// NewTicket is what opening a ticket takes.
type NewTicket struct {
	Subject        string
	Description    string
	RequesterID    int64
	AutoKind       string
	LinkedTicketID *int64
	// RequesterUnverified: a trusted server reported the opening mail's
	// From as failing DMARC; the requester gets no automatic mail.
	RequesterUnverified bool
}

// MaxSubject is the most characters a ticket's subject keeps; a longer one
// (a mail's subject is unbounded) is cut, and the message keeps it whole.
const MaxSubject = 1000

// normalized fills in defaults and bounds the subject.
func (n NewTicket) normalized() NewTicket {
	if n.AutoKind == "" {
		n.AutoKind = "none"
	}
	if utf8.RuneCountInString(n.Subject) > MaxSubject {
		n.Subject = strings.TrimSpace(string([]rune(n.Subject)[:MaxSubject-1])) + "…"
	}
	return n
}

// CreateTicket opens a ticket in To-Do and makes its requester a participant.
func (s *Store) CreateTicket(ctx context.Context, n NewTicket) (Ticket, error) {
	n = n.normalized()
	t, err := scanTicket(s.db.QueryRow(ctx, `
		INSERT INTO tickets (subject, description, requester_id, auto_kind, linked_ticket_id, requester_unverified)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING `+ticketColumns, n.Subject, n.Description, n.RequesterID, n.AutoKind, n.LinkedTicketID, n.RequesterUnverified))
	if err != nil {
		return Ticket{}, fmt.Errorf("insert ticket: %w", err)
	}
	return t, nil
}

// AddParticipant adds a person copied on a ticket to its people; adding one
// twice is a no-op. The requester is one of a ticket's people already.
func (s *Store) AddParticipant(ctx context.Context, ticketID, userID int64) error {
	_, err := s.db.Exec(ctx, `INSERT INTO ticket_participants (ticket_id, user_id)
		SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM tickets WHERE id = $1 AND requester_id = $2)
		ON CONFLICT DO NOTHING`, ticketID, userID)
	if err != nil {
		return fmt.Errorf("insert participant %d of ticket %d: %w", userID, ticketID, err)
	}
	return nil
}

// Participants lists a ticket's requester, then the people copied on it.
func (s *Store) Participants(ctx context.Context, ticketID int64) ([]User, error) {
	users, err := collectUsers(s.db.Query(ctx, `
		SELECT `+prefixed("u", userColumns)+` FROM (
			SELECT requester_id AS user_id, 0 AS ord, created_at FROM tickets WHERE id = $1
			UNION ALL
			SELECT p.user_id, 1, p.created_at FROM ticket_participants p JOIN tickets t ON t.id = p.ticket_id
			WHERE p.ticket_id = $1 AND p.user_id <> t.requester_id) p
		JOIN users u ON u.id = p.user_id ORDER BY p.ord, p.created_at, u.id`, ticketID))
	if err != nil {
		return nil, fmt.Errorf("select participants of ticket %d: %w", ticketID, err)
	}
	return users, nil
}

// IsParticipant reports whether the address is among a ticket's people
// (requester, CC'd, or assignee).
func (s *Store) IsParticipant(ctx context.Context, ticketID int64, email string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM ticket_participants p JOIN users u ON u.id = p.user_id
			WHERE p.ticket_id = $1 AND lower(u.email) = lower($2)
			UNION ALL
			SELECT 1 FROM tickets t JOIN users u ON u.id IN (t.requester_id, t.assignee_id)
			WHERE t.id = $1 AND lower(u.email) = lower($2))`, ticketID, NormalizeEmail(email)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check participant of ticket %d: %w", ticketID, err)
	}
	return ok, nil
}
