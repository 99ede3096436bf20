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
	// Messages are what was sent to a model, as JSON: [{"role", "content"}];
	// nil for the rules engine.
	Messages         json.RawMessage
	PromptTokens     int
	CompletionTokens int
	CreatedAt        time.Time
}

const aiDecisionColumns = `id, ticket_id, provider, model, prompt_version, input_hash, raw_output,
	output, latency_ms, error, messages, prompt_tokens, completion_tokens, created_at`

func scanAIDecision(row pgx.Row) (AIDecision, error) {
	var d AIDecision
	err := row.Scan(&d.ID, &d.TicketID, &d.Provider, &d.Model, &d.PromptVersion, &d.InputHash,
		&d.RawOutput, &d.Output, &d.LatencyMS, &d.Error, &d.Messages, &d.PromptTokens, &d.CompletionTokens, &d.CreatedAt)
	return d, notFound(err)
}

// InsertAIDecision stores a triage decision.
func (s *Store) InsertAIDecision(ctx context.Context, d AIDecision) (AIDecision, error) {
	var output, messages any
	if len(d.Output) > 0 {
		output = d.Output
	}
	if len(d.Messages) > 0 {
		messages = d.Messages
	}
	out, err := scanAIDecision(s.db.QueryRow(ctx, `
		INSERT INTO ai_decisions (ticket_id, provider, model, prompt_version, input_hash, raw_output,
			output, latency_ms, error, messages, prompt_tokens, completion_tokens)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		RETURNING `+aiDecisionColumns, d.TicketID, d.Provider, d.Model, d.PromptVersion, d.InputHash,
		d.RawOutput, output, d.LatencyMS, d.Error, messages, d.PromptTokens, d.CompletionTokens))
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

// SimilarTicket is a Completed ticket that resembles another one, with
// what staff settled on for it.
type SimilarTicket struct {
	ID           int64
	Subject      string
	Summary      string
	HelpfulNotes string
	// Text is the start of its description, for comparing.
	Text        string
	Priority    Priority
	Skills      []string
	Category    string
	AssigneeID  *int64
	Rank        float64
	CreatedAt   time.Time
	CompletedAt time.Time
}

// SimilarQuery asks for Completed tickets resembling Text.
type SimilarQuery struct {
	Text string
	// ExcludeID leaves out the ticket being triaged.
	ExcludeID int64
	// Limit is how many to return, best first; at most 50.
	Limit int
	// Before, when set, considers only tickets opened before it (a
	// back-test learns from the past of the tickets it measures).
	Before time.Time
}

// Bounds of the similar-ticket search. The search must stay fast on a desk
// with millions of tickets, whatever text it is given: it looks for the few
// rarest words of the text, by the statistics ANALYZE keeps of the search
// documents' words, leaving out any word estimated in more than
// similarPerWord tickets, so the index returns few tickets; of those it
// takes the most recent; it ranks only them; and the statement has a time
// limit, past which there are no similar tickets rather than a slow triage.
const (
	similarWords      = 6               // the rarest words whose tickets are candidates
	similarRankWords  = 32              // the words that rank the candidates
	similarPerWord    = 2000            // a word in more tickets than this (estimated) is no key
	similarCandidates = 200             // candidates ranked, the most recent first
	similarGINLimit   = 20000           // gin_fuzzy_search_limit: a soft cap on what the index returns
	similarTimeout    = 2 * time.Second // statement_timeout
)

// SimilarCompleted finds Completed tickets that share the rarest words of
// the query's text, ranks the most recent of them by all its words, and
// returns the best. It is bounded however large the desk: see the
// constants above.
func (s *Store) SimilarCompleted(ctx context.Context, q SimilarQuery) ([]SimilarTicket, error) {
	query, args := similarStatement(q)
	ctx, cancel := context.WithTimeout(ctx, similarTimeout+time.Second)
	defer cancel()
	var out []SimilarTicket
	err := s.bounded(ctx, func(db DBTX) error {
		rows, err := db.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[SimilarTicket])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("search similar tickets: %w", err)
	}
	return out, nil
}

// bounded runs fn in a transaction whose statements stop after
// similarTimeout, whose GIN index scans return about similarGINLimit rows at
// most, and whose statements are planned for their actual arguments. On a Store inside a transaction already, fn runs in it
// unbounded but for the context.
func (s *Store) bounded(ctx context.Context, fn func(DBTX) error) error {
	if s.pool == nil {
		return fn(s.db)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A plan for the actual text and cut-off each time: a generic plan
		// cannot know how few tickets the keys find.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL statement_timeout = %d; SET LOCAL gin_fuzzy_search_limit = %d; SET LOCAL plan_cache_mode = force_custom_plan`,
			similarTimeout.Milliseconds(), similarGINLimit)); err != nil {
			return err
		}
		return fn(tx)
	})
}

var stopwordList = allStopwords()

// similarStatement is the search's SQL and arguments.
func similarStatement(q SimilarQuery) (string, []any) {
	if q.Limit <= 0 || q.Limit > 50 {
		q.Limit = 50
	}
	before := any("infinity")
	if !q.Before.IsZero() {
		before = q.Before
	}
	query := `
		WITH words AS (
			-- The text's words as the search documents hold them, first
			-- place first, without stop words and without numbers.
			SELECT lexeme AS w, positions[1] AS pos
			FROM unnest(to_tsvector('simple', left($1, 4000)))
			WHERE length(lexeme) BETWEEN 3 AND 40 AND lexeme ~ '^[[:alpha:]]' AND NOT lexeme = ANY($9)
		), stats AS MATERIALIZED (
			-- ANALYZE's statistics of the search documents: the most common
			-- words and how many of the tickets hold each.
			SELECT s.most_common_elems::text::text[] AS elems, s.most_common_elem_freqs AS freqs,
				(SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'tickets'::regclass) AS n
			FROM pg_stats s
			WHERE s.schemaname = current_schema() AND s.tablename = 'tickets' AND s.attname = 'search'
		), common AS MATERIALIZED (
			SELECT m.e, m.f * st.n AS tickets FROM stats st, unnest(st.elems, st.freqs) AS m(e, f) WHERE m.e IS NOT NULL
		), freq AS (
			-- How many tickets hold each word, estimated; NULL for a word
			-- the statistics do not list: one rarer than any they do, or
			-- one no ticket holds.
			SELECT words.w, words.pos, common.tickets FROM words LEFT JOIN common ON common.e = words.w
		), q AS (
			SELECT
				-- The keys: the rarest words the statistics know, then the
				-- first words they do not, none held by more than $5 tickets.
				(SELECT to_tsquery('simple', string_agg(quote_literal(w), ' | '))
				 FROM (SELECT w FROM freq WHERE coalesce(tickets, 0) <= $5
					ORDER BY tickets IS NULL, tickets, pos LIMIT $6) rare) AS keys,
				(SELECT to_tsquery('simple', string_agg(quote_literal(w), ' | '))
				 FROM (SELECT w FROM freq ORDER BY pos LIMIT $7) first) AS rank
		), matches AS MATERIALIZED (
			-- Every Completed ticket holding a key, found by the index:
			-- there is no ORDER BY here that a scan of all tickets in id
			-- order could serve.
			SELECT t.id FROM tickets t, q
			WHERE q.keys IS NOT NULL AND t.status = 'completed' AND t.id <> $2 AND t.created_at < $4
				AND ` + searchMatch("q.keys") + `
		), candidates AS (
			SELECT id FROM matches ORDER BY id DESC LIMIT $8
		)
		SELECT t.id, t.subject, t.summary, t.helpful_notes, left(t.description, 2000), t.priority, t.skills,
			t.category, t.assignee_id, ts_rank(` + searchDocument + `, q.rank) AS rank, t.created_at, t.completed_at
		FROM candidates c JOIN tickets t ON t.id = c.id, q
		ORDER BY rank DESC, t.completed_at DESC LIMIT $3`
	return query, []any{q.Text, q.ExcludeID, q.Limit, before, similarPerWord, similarWords, similarRankWords, similarCandidates, stopwordList}
}

// CompletedTickets lists the newest Completed tickets, at most limit,
// oldest first: what a back-test of triage learns from and measures on.
func (s *Store) CompletedTickets(ctx context.Context, limit int) ([]Ticket, error) {
	rows, err := s.db.Query(ctx, `SELECT * FROM (
			SELECT `+ticketColumns+` FROM tickets WHERE status = 'completed'
			ORDER BY created_at DESC, id DESC LIMIT $1) newest
		ORDER BY created_at, id`, limit)
	if err != nil {
		return nil, fmt.Errorf("select completed tickets: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Ticket, error) {
		var t Ticket
		return t, row.Scan(ticketFields(&t)...)
	})
	if err != nil {
		return nil, fmt.Errorf("select completed tickets: %w", err)
	}
	return out, nil
}
