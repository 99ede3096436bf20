package tickets

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// SavedReply is an answer admins wrote once for staff to insert, and for
// triage to propose as a first response where it fits: tickets needing its
// skills or using its terms, in its language when one is set.
type SavedReply struct {
	ID        int64
	Title     string
	Body      string
	Skills    []string
	Terms     []string
	Language  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Bounds of a saved reply. MaxSavedReplyBody matches what a first response
// may hold.
const (
	MaxSavedReplyTitle = 120
	MaxSavedReplyBody  = 3000
	MaxSavedReplyTerms = 30
)

const savedReplyColumns = `id, title, body, skills, terms, language, created_at, updated_at`

// NewSavedReply is what writing a saved reply takes.
type NewSavedReply struct {
	Title    string
	Body     string
	Skills   []string
	Terms    []string
	Language string
}

func (n NewSavedReply) check() (NewSavedReply, error) {
	n.Title = strings.Join(strings.Fields(n.Title), " ")
	n.Body = strings.TrimSpace(strings.ReplaceAll(n.Body, "\r\n", "\n"))
	switch {
	case n.Title == "":
		return n, fmt.Errorf("%w: a saved reply needs a title", ErrInvalid)
	case utf8.RuneCountInString(n.Title) > MaxSavedReplyTitle:
		return n, fmt.Errorf("%w: the title is longer than %d characters", ErrInvalid, MaxSavedReplyTitle)
	case n.Body == "":
		return n, fmt.Errorf("%w: a saved reply needs a text", ErrInvalid)
	case utf8.RuneCountInString(n.Body) > MaxSavedReplyBody:
		return n, fmt.Errorf("%w: the text is longer than %d characters", ErrInvalid, MaxSavedReplyBody)
	case strings.ContainsRune(n.Body, 0) || strings.ContainsRune(n.Title, 0):
		return n, fmt.Errorf("%w: the text holds a NUL character", ErrInvalid)
	}
	n.Skills = NormalizeSkills(n.Skills)
	if err := CheckSkills(n.Skills); err != nil {
		return n, err
	}
	var err error
	if n.Terms, err = cleanTerms(n.Terms, MaxSavedReplyTerms); err != nil {
		return n, err
	}
	n.Language = strings.ToLower(strings.TrimSpace(n.Language))
	if n.Language != "" && (len(n.Language) != 2 || strings.IndexFunc(n.Language, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0) {
		return n, fmt.Errorf("%w: the language is a two-letter code such as en or de, or empty for any", ErrInvalid)
	}
	return n, nil
}

func scanSavedReply(row pgx.Row) (SavedReply, error) {
	var r SavedReply
	err := row.Scan(&r.ID, &r.Title, &r.Body, &r.Skills, &r.Terms, &r.Language, &r.CreatedAt, &r.UpdatedAt)
	return r, notFound(err)
}

// SavedReplies lists the saved replies by title.
func (s *Store) SavedReplies(ctx context.Context) ([]SavedReply, error) {
	rows, err := s.db.Query(ctx, `SELECT `+savedReplyColumns+` FROM saved_replies ORDER BY lower(title), id`)
	if err != nil {
		return nil, fmt.Errorf("select saved replies: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SavedReply, error) { return scanSavedReply(row) })
	if err != nil {
		return nil, fmt.Errorf("select saved replies: %w", err)
	}
	return out, nil
}

// SavedReply returns one saved reply.
func (s *Store) SavedReply(ctx context.Context, id int64) (SavedReply, error) {
	r, err := scanSavedReply(s.db.QueryRow(ctx, `SELECT `+savedReplyColumns+` FROM saved_replies WHERE id = $1`, id))
	if err != nil {
		return SavedReply{}, fmt.Errorf("select saved reply %d: %w", id, err)
	}
	return r, nil
}

// CreateSavedReply stores a new saved reply.
func (s *Store) CreateSavedReply(ctx context.Context, n NewSavedReply, by *int64) (SavedReply, error) {
	n, err := n.check()
	if err != nil {
		return SavedReply{}, err
	}
	r, err := scanSavedReply(s.db.QueryRow(ctx, `
		INSERT INTO saved_replies (title, body, skills, terms, language, created_by) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING `+savedReplyColumns, n.Title, n.Body, n.Skills, n.Terms, n.Language, by))
	if err != nil {
		return SavedReply{}, fmt.Errorf("insert saved reply: %w", err)
	}
	return r, nil
}

// UpdateSavedReply replaces a saved reply's fields.
func (s *Store) UpdateSavedReply(ctx context.Context, id int64, n NewSavedReply) (SavedReply, error) {
	n, err := n.check()
	if err != nil {
		return SavedReply{}, err
	}
	r, err := scanSavedReply(s.db.QueryRow(ctx, `
		UPDATE saved_replies SET title = $2, body = $3, skills = $4, terms = $5, language = $6, updated_at = now()
		WHERE id = $1 RETURNING `+savedReplyColumns, id, n.Title, n.Body, n.Skills, n.Terms, n.Language))
	if err != nil {
		return SavedReply{}, fmt.Errorf("update saved reply %d: %w", id, err)
	}
	return r, nil
}

// DeleteSavedReply removes a saved reply.
func (s *Store) DeleteSavedReply(ctx context.Context, id int64) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM saved_replies WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete saved reply %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
