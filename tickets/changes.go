package tickets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Actor is who makes a change, and through which channel.
type Actor struct {
	UserID  *int64
	Channel Channel
}

// Change describes what one operation did to one field of a ticket.
type Change struct {
	TicketID int64
	Field    string
	Old, New string
	Changed  bool // false when the field already held the value: nothing was written
}

// ErrInvalid marks a change that is not allowed, such as assigning a ticket to
// someone who is not active staff.
var ErrInvalid = errors.New("tickets: invalid change")

type statusEvent struct {
	TicketID int64   `json:"ticket_id"`
	From     Status  `json:"from"`
	To       Status  `json:"to"`
	ActorID  *int64  `json:"actor_id"`
	Channel  Channel `json:"channel"`
}

type completedEvent struct {
	TicketID int64   `json:"ticket_id"`
	ActorID  *int64  `json:"actor_id"`
	Channel  Channel `json:"channel"`
}

type assignedEvent struct {
	TicketID           int64   `json:"ticket_id"`
	AssigneeID         int64   `json:"assignee_id"`
	PreviousAssigneeID *int64  `json:"previous_assignee_id"`
	ActorID            *int64  `json:"actor_id"`
	Channel            Channel `json:"channel"`
}

func (s *Store) audit(ctx context.Context, c Change, a Actor, action, detail string) error {
	id := c.TicketID
	return s.Audit(ctx, AuditEntry{TicketID: &id, ActorID: a.UserID, Channel: a.Channel,
		Action: action, OldValue: c.Old, NewValue: c.New, Detail: detail})
}

// SetStatus moves a ticket to another status. It emits ticket.status_changed,
// and ticket.completed when the ticket becomes Completed. Run it inside InTx.
func (s *Store) SetStatus(ctx context.Context, ticketID int64, to Status, a Actor) (Change, error) {
	t, err := s.TicketForUpdate(ctx, ticketID)
	if err != nil {
		return Change{}, err
	}
	c := Change{TicketID: ticketID, Field: "status", Old: string(t.Status), New: string(to)}
	if t.Status == to {
		return c, nil
	}
	if _, err := s.db.Exec(ctx, `
		UPDATE tickets SET status = $2::ticket_status, updated_at = now(),
			completed_at = CASE WHEN $2::ticket_status = 'completed' THEN now() ELSE NULL END
		WHERE id = $1`, ticketID, to); err != nil {
		return Change{}, fmt.Errorf("update status of ticket %d: %w", ticketID, err)
	}
	c.Changed = true
	if err := s.audit(ctx, c, a, "status", ""); err != nil {
		return Change{}, err
	}
	if _, err := s.EnqueueEvent(ctx, EventStatusChanged, ticketID,
		statusEvent{TicketID: ticketID, From: t.Status, To: to, ActorID: a.UserID, Channel: a.Channel}); err != nil {
		return Change{}, err
	}
	if to == StatusCompleted {
		if _, err := s.EnqueueEvent(ctx, EventCompleted, ticketID,
			completedEvent{TicketID: ticketID, ActorID: a.UserID, Channel: a.Channel}); err != nil {
			return Change{}, err
		}
	}
	return c, nil
}

// Assign gives a ticket to an active moderator or admin and emits
// ticket.assigned. Run it inside InTx.
func (s *Store) Assign(ctx context.Context, ticketID, assigneeID int64, reason string, a Actor) (Change, error) {
	t, err := s.TicketForUpdate(ctx, ticketID)
	if err != nil {
		return Change{}, err
	}
	u, err := s.User(ctx, assigneeID)
	if errors.Is(err, ErrNotFound) {
		return Change{}, fmt.Errorf("%w: no user %d", ErrInvalid, assigneeID)
	}
	if err != nil {
		return Change{}, err
	}
	if !u.Role.IsStaff() || !u.Active {
		return Change{}, fmt.Errorf("%w: %s is not an active moderator or admin", ErrInvalid, u.Email)
	}
	c := Change{TicketID: ticketID, Field: "assignee", Old: s.emailOf(ctx, t.AssigneeID), New: u.Email}
	if t.AssigneeID != nil && *t.AssigneeID == assigneeID {
		return c, nil
	}
	if err := s.setAssignee(ctx, ticketID, assigneeID, reason); err != nil {
		return Change{}, err
	}
	c.Changed = true
	if err := s.audit(ctx, c, a, "assign", reason); err != nil {
		return Change{}, err
	}
	if _, err := s.EnqueueEvent(ctx, EventAssigned, ticketID, assignedEvent{TicketID: ticketID,
		AssigneeID: assigneeID, PreviousAssigneeID: t.AssigneeID, ActorID: a.UserID, Channel: a.Channel}); err != nil {
		return Change{}, err
	}
	return c, nil
}

// Unassign takes a ticket back from its assignee. Run it inside InTx.
func (s *Store) Unassign(ctx context.Context, ticketID int64, a Actor) (Change, error) {
	t, err := s.TicketForUpdate(ctx, ticketID)
	if err != nil {
		return Change{}, err
	}
	c := Change{TicketID: ticketID, Field: "assignee", Old: s.emailOf(ctx, t.AssigneeID)}
	if t.AssigneeID == nil {
		return c, nil
	}
	if _, err := s.db.Exec(ctx, `UPDATE tickets SET assignee_id = NULL, assignment_reason = '',
		updated_at = now() WHERE id = $1`, ticketID); err != nil {
		return Change{}, fmt.Errorf("unassign ticket %d: %w", ticketID, err)
	}
	c.Changed = true
	return c, s.audit(ctx, c, a, "unassign", "")
}

func (s *Store) setAssignee(ctx context.Context, ticketID, assigneeID int64, reason string) error {
	if _, err := s.db.Exec(ctx, `UPDATE tickets SET assignee_id = $2, assignment_reason = $3,
		assigned_at = now(), updated_at = now() WHERE id = $1`, ticketID, assigneeID, reason); err != nil {
		return fmt.Errorf("assign ticket %d: %w", ticketID, err)
	}
	if _, err := s.db.Exec(ctx, `UPDATE users SET last_assigned_at = now() WHERE id = $1`, assigneeID); err != nil {
		return fmt.Errorf("mark user %d assigned: %w", assigneeID, err)
	}
	return nil
}

func (s *Store) emailOf(ctx context.Context, id *int64) string {
	if id == nil {
		return ""
	}
	u, err := s.User(ctx, *id)
	if err != nil {
		return "#" + strconv.FormatInt(*id, 10)
	}
	return u.Email
}

// SetPriority changes a ticket's priority. Run it inside InTx.
func (s *Store) SetPriority(ctx context.Context, ticketID int64, p Priority, a Actor) (Change, error) {
	return s.setField(ctx, ticketID, "priority", string(p), a)
}

// SetHelpfulNotes replaces a ticket's helpful notes. Run it inside InTx.
func (s *Store) SetHelpfulNotes(ctx context.Context, ticketID int64, notes string, a Actor) (Change, error) {
	return s.setField(ctx, ticketID, "helpful_notes", strings.TrimSpace(notes), a)
}

// SetSkills replaces the skills a ticket needs. Run it inside InTx.
func (s *Store) SetSkills(ctx context.Context, ticketID int64, skills []string, a Actor) (Change, error) {
	skills = NormalizeSkills(skills)
	if err := CheckSkills(skills); err != nil {
		return Change{}, err
	}
	return s.setField(ctx, ticketID, "skills", strings.Join(skills, ", "), a)
}

// setField changes one plain column; value is its text form.
func (s *Store) setField(ctx context.Context, ticketID int64, field, value string, a Actor) (Change, error) {
	t, err := s.TicketForUpdate(ctx, ticketID)
	if err != nil {
		return Change{}, err
	}
	c := Change{TicketID: ticketID, Field: field, New: value}
	var query string
	var arg any = value
	switch field {
	case "priority":
		c.Old = string(t.Priority)
		query = `UPDATE tickets SET priority = $2, updated_at = now() WHERE id = $1`
	case "helpful_notes":
		c.Old = t.HelpfulNotes
		query = `UPDATE tickets SET helpful_notes = $2, updated_at = now() WHERE id = $1`
	case "skills":
		c.Old = strings.Join(t.Skills, ", ")
		arg = SplitSkills(value)
		query = `UPDATE tickets SET skills = $2, updated_at = now() WHERE id = $1`
	default:
		return Change{}, fmt.Errorf("set field %q: not a field", field)
	}
	if c.Old == c.New {
		return c, nil
	}
	if _, err := s.db.Exec(ctx, query, ticketID, arg); err != nil {
		return Change{}, fmt.Errorf("update %s of ticket %d: %w", field, ticketID, err)
	}
	c.Changed = true
	return c, s.audit(ctx, c, a, field, "")
}

// Triage is what the triage workflow decided about a ticket.
type Triage struct {
	Summary          string
	HelpfulNotes     string
	FirstResponse    string
	Category         string
	Language         string
	Priority         Priority
	Skills           []string
	SuggestedSkills  []string
	AssigneeID       *int64
	AssignmentReason string
}

// ApplyTriage writes the triage's fields and assignee and moves a To-Do
// ticket to In-Progress, with an audit entry by the AI. A priority, notes or
// skills a person set before triage ran (by web, API or mail command) stand.
// It emits no ticket.assigned: triage queues its own mails. Run it inside
// InTx.
func (s *Store) ApplyTriage(ctx context.Context, ticketID int64, tr Triage) error {
	t, err := s.TicketForUpdate(ctx, ticketID)
	if err != nil {
		return err
	}
	var set []string
	if err := s.db.QueryRow(ctx, `
		SELECT coalesce(array_agg(DISTINCT action), '{}') FROM audit_log
		WHERE ticket_id = $1 AND channel IN ('mail', 'web', 'api', 'cli') AND action IN ('priority', 'helpful_notes', 'skills')`,
		ticketID).Scan(&set); err != nil {
		return fmt.Errorf("fields set by people on ticket %d: %w", ticketID, err)
	}
	for _, f := range set {
		switch f {
		case "priority":
			tr.Priority = t.Priority
		case "helpful_notes":
			tr.HelpfulNotes = t.HelpfulNotes
		case "skills":
			tr.Skills = t.Skills
		}
	}
	status := t.Status
	if status == StatusTodo && tr.AssigneeID != nil {
		status = StatusInProgress
	}
	if _, err := s.db.Exec(ctx, `
		UPDATE tickets SET summary = $2, helpful_notes = $3, first_response = $4, category = $5,
			language = $6, priority = $7, skills = $8, suggested_skills = $9, status = $10,
			triaged_at = now(), updated_at = now()
		WHERE id = $1`, ticketID, tr.Summary, tr.HelpfulNotes, tr.FirstResponse, tr.Category,
		tr.Language, tr.Priority, NormalizeSkills(tr.Skills), NormalizeSkills(tr.SuggestedSkills), status); err != nil {
		return fmt.Errorf("apply triage to ticket %d: %w", ticketID, err)
	}
	ai := Actor{Channel: ChannelAI}
	detail := fmt.Sprintf("priority %s; skills %s", tr.Priority, strings.Join(NormalizeSkills(tr.Skills), ", "))
	if len(set) > 0 {
		slices.Sort(set)
		detail += "; kept as set by people: " + strings.Join(set, ", ")
	}
	if err := s.audit(ctx, Change{TicketID: ticketID, Field: "triage", New: string(tr.Priority)}, ai, "triage", detail); err != nil {
		return err
	}
	if tr.AssigneeID != nil && (t.AssigneeID == nil || *t.AssigneeID != *tr.AssigneeID) {
		if err := s.setAssignee(ctx, ticketID, *tr.AssigneeID, tr.AssignmentReason); err != nil {
			return err
		}
		c := Change{TicketID: ticketID, Field: "assignee", Old: s.emailOf(ctx, t.AssigneeID), New: s.emailOf(ctx, tr.AssigneeID)}
		if err := s.audit(ctx, c, ai, "assign", tr.AssignmentReason); err != nil {
			return err
		}
	}
	if status != t.Status {
		c := Change{TicketID: ticketID, Field: "status", Old: string(t.Status), New: string(status)}
		if err := s.audit(ctx, c, ai, "status", ""); err != nil {
			return err
		}
	}
	return nil
}
