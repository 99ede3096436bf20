package tickets

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AIDecision is one triage decision, by a language model or the rules
// engine, kept with the ticket.
type AIDecision struct {
	ID            int64
	TicketID      int64
	Provider      string
	Model         string
	PromptVersion string
	InputHash     []byte
	RawOutput     string
	Output        json.RawMessage // the validated result; nil when there was none
	LatencyMS     int
	Error         string
	CreatedAt     time.Time
}

const aiDecisionColumns = `id, ticket_id, provider, model, prompt_version, input_hash, raw_output,
	output, latency_ms, error, created_at`

func scanAIDecision(row pgx.Row) (AIDecision, error) {
	var d AIDecision
	err := row.Scan(&d.ID, &d.TicketID, &d.Provider, &d.Model, &d.PromptVersion, &d.InputHash,
		&d.RawOutput, &d.Output, &d.LatencyMS, &d.Error, &d.CreatedAt)
	return d, notFound(err)
}

// InsertAIDecision stores a triage decision.
func (s *Store) InsertAIDecision(ctx context.Context, d AIDecision) (AIDecision, error) {
	var output any
	if len(d.Output) > 0 {
		output = d.Output
	}
	out, err := scanAIDecision(s.db.QueryRow(ctx, `
		INSERT INTO ai_decisions (ticket_id, provider, model, prompt_version, input_hash, raw_output,
			output, latency_ms, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING `+aiDecisionColumns, d.TicketID, d.Provider, d.Model, d.PromptVersion, d.InputHash,
		d.RawOutput, output, d.LatencyMS, d.Error))
	if err != nil {
		return AIDecision{}, fmt.Errorf("insert decision for ticket %d: %w", d.TicketID, err)
	}
	return out, nil
}

// AIDecisions lists a ticket's triage decisions, oldest first.
func (s *Store) AIDecisions(ctx context.Context, ticketID int64) ([]AIDecision, error) {
	rows, err := s.db.Query(ctx, `SELECT `+aiDecisionColumns+` FROM ai_decisions
		WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("select decisions of ticket %d: %w", ticketID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AIDecision, error) {
		return scanAIDecision(row)
	})
	if err != nil {
		return nil, fmt.Errorf("select decisions of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// Assignable is an active moderator or admin with the number of tickets they
// hold open (To-Do or In-Progress), as automatic assignment weighs them.
type Assignable struct {
	User
	OpenTickets int
}

// AssignableStaff lists active moderators and admins with their open tickets.
func (s *Store) AssignableStaff(ctx context.Context) ([]Assignable, error) {
	rows, err := s.db.Query(ctx, `
		SELECT `+prefixed("u", userColumns)+`,
			(SELECT count(*) FROM tickets t WHERE t.assignee_id = u.id
				AND t.status IN ('todo', 'in_progress')) AS open_tickets
		FROM users u WHERE u.role IN ('moderator', 'admin') AND u.active
		ORDER BY u.id`)
	if err != nil {
		return nil, fmt.Errorf("select assignable staff: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Assignable, error) {
		var l Assignable
		u := &l.User
		err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.Skills, &u.PasswordHash, &u.Active,
			&u.BouncingSince, &u.LastAssignedAt, &u.CreatedAt, &u.UpdatedAt, &l.OpenTickets)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("select assignable staff: %w", err)
	}
	return out, nil
}

// SimilarTicket is a Completed ticket that resembles another one.
type SimilarTicket struct {
	ID           int64
	Subject      string
	Summary      string
	HelpfulNotes string
	Rank         float64
	CompletedAt  time.Time
}

// SimilarCompleted finds up to limit Completed tickets matching the words of
// text, best first, with PostgreSQL full-text search over tickets.search.
// Words are OR-ed, so a ticket sharing the most (and rarest in its own text)
// words ranks first; excludeID leaves out the ticket being triaged.
func (s *Store) SimilarCompleted(ctx context.Context, text string, excludeID int64, limit int) ([]SimilarTicket, error) {
	rows, err := s.db.Query(ctx, `
		WITH q AS (
			SELECT to_tsquery('simple', string_agg(quote_literal(w), ' | ')) AS query
			FROM (SELECT DISTINCT lexeme AS w FROM unnest(to_tsvector('simple', left($1, 20000)))
				-- English stop words would match everything: leave them out.
				WHERE length(lexeme) > 2 AND numnode(plainto_tsquery('english', lexeme)) > 0
				LIMIT 64) words)
		SELECT t.id, t.subject, t.summary, t.helpful_notes, ts_rank_cd(`+searchDocument+`, q.query) AS rank, t.completed_at
		FROM tickets t, q
		WHERE q.query IS NOT NULL AND t.status = 'completed' AND t.id <> $2 AND `+searchMatch("q.query")+`
		ORDER BY rank DESC, t.completed_at DESC LIMIT $3`, text, excludeID, limit)
	if err != nil {
		return nil, fmt.Errorf("search similar tickets: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SimilarTicket])
	if err != nil {
		return nil, fmt.Errorf("search similar tickets: %w", err)
	}
	return out, nil
}
