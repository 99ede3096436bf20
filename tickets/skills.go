package tickets

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// SkillDefinition is what admins tell triage about a skill: a description
// for people, and terms: the words and phrases tickets use when they need
// it, beyond its name ("SAP" may be needed by tickets saying "posting
// period" or "cost centre").
type SkillDefinition struct {
	Name        string
	Description string
	Terms       []string
	UpdatedAt   time.Time
}

// Bounds of a skill definition.
const (
	MaxSkillDescription = 500
	MaxSkillTerms       = 50
	MaxTermLength       = 60
)

// cleanTerms normalises terms one per entry: spaces collapsed, lower case,
// duplicates and empty ones dropped, order kept; and holds them to the
// bounds, with an error wrapping ErrInvalid.
func cleanTerms(terms []string, most int) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, t := range terms {
		t = strings.ToLower(strings.Join(strings.Fields(t), " "))
		if t == "" || seen[t] {
			continue
		}
		if utf8.RuneCountInString(t) > MaxTermLength {
			return nil, fmt.Errorf("%w: the term %q is longer than %d characters", ErrInvalid, clipRunes(t, 20), MaxTermLength)
		}
		if strings.IndexFunc(t, func(r rune) bool { return unicode.IsControl(r) || !unicode.IsPrint(r) }) >= 0 {
			return nil, fmt.Errorf("%w: the term %q holds a control character", ErrInvalid, clipRunes(t, 20))
		}
		if !strings.ContainsFunc(t, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			return nil, fmt.Errorf("%w: the term %q has no letter or digit", ErrInvalid, t)
		}
		seen[t] = true
		out = append(out, t)
	}
	if len(out) > most {
		return nil, fmt.Errorf("%w: at most %d terms", ErrInvalid, most)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func clipRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// SplitTerms parses terms written one per line or separated by commas.
func SplitTerms(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == ';' })
}

// SkillDefinitions lists the skill definitions by name.
func (s *Store) SkillDefinitions(ctx context.Context) ([]SkillDefinition, error) {
	rows, err := s.db.Query(ctx, `SELECT name, description, terms, updated_at FROM skill_definitions ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("select skill definitions: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SkillDefinition])
	if err != nil {
		return nil, fmt.Errorf("select skill definitions: %w", err)
	}
	return out, nil
}

// SaveSkillDefinition creates or replaces the definition of a skill.
func (s *Store) SaveSkillDefinition(ctx context.Context, d SkillDefinition, by *int64) (SkillDefinition, error) {
	names := NormalizeSkills([]string{d.Name})
	if len(names) != 1 || !ValidSkill(names[0]) {
		return SkillDefinition{}, fmt.Errorf("%w: a skill is a word of at most %d letters, digits and + # . -", ErrInvalid, MaxSkillLength)
	}
	d.Name = names[0]
	d.Description = strings.TrimSpace(d.Description)
	if utf8.RuneCountInString(d.Description) > MaxSkillDescription {
		return SkillDefinition{}, fmt.Errorf("%w: the description is longer than %d characters", ErrInvalid, MaxSkillDescription)
	}
	terms, err := cleanTerms(d.Terms, MaxSkillTerms)
	if err != nil {
		return SkillDefinition{}, err
	}
	var out SkillDefinition
	err = s.db.QueryRow(ctx, `
		INSERT INTO skill_definitions (name, description, terms, updated_by) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET description = $2, terms = $3, updated_by = $4, updated_at = now()
		RETURNING name, description, terms, updated_at`, d.Name, d.Description, terms, by).
		Scan(&out.Name, &out.Description, &out.Terms, &out.UpdatedAt)
	if err != nil {
		return SkillDefinition{}, fmt.Errorf("save skill definition %s: %w", d.Name, err)
	}
	return out, nil
}

// DeleteSkillDefinition removes a skill's definition; the skill stays with
// whoever holds it.
func (s *Store) DeleteSkillDefinition(ctx context.Context, name string) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM skill_definitions WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete skill definition %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
