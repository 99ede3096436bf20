package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what both a pool and a transaction offer.
type DBTX interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}

// Store reads and writes tickets and everything around them.
type Store struct {
	db   DBTX
	pool *pgxpool.Pool // nil inside a transaction
}

// NewStore returns a Store on the pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{db: pool, pool: pool} }

// On returns a Store whose queries run on db, for example a transaction the
// caller owns.
func On(db DBTX) *Store { return &Store{db: db} }

// DB returns what the store's queries run on.
func (s *Store) DB() DBTX { return s.db }

// InTx runs fn inside one transaction, committed when fn returns nil and
// rolled back otherwise. Inside a transaction already, fn joins it.
func (s *Store) InTx(ctx context.Context, fn func(*Store) error) error {
	if s.pool == nil {
		return fn(s)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return fn(&Store{db: tx})
	})
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

const userColumns = `id, email, name, role, skills, password_hash, active, bouncing_since,
	last_assigned_at, created_at, updated_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.Skills, &u.PasswordHash, &u.Active,
		&u.BouncingSince, &u.LastAssignedAt, &u.CreatedAt, &u.UpdatedAt)
	return u, notFound(err)
}

func collectUsers(rows pgx.Rows, err error) ([]User, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// User returns the user with that id.
func (s *Store) User(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return User{}, fmt.Errorf("select user %d: %w", id, err)
	}
	return u, nil
}

// UserByEmail finds a user by address, ignoring case.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.db.QueryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE lower(email) = lower($1)`, NormalizeEmail(email)))
	if err != nil {
		return User{}, fmt.Errorf("select user %q: %w", email, err)
	}
	return u, nil
}

// NewUser is what creating a user takes.
type NewUser struct {
	Email        string
	Name         string
	Role         Role
	Skills       []string
	PasswordHash *string
}

// CreateUser inserts a user; the address must not be taken.
func (s *Store) CreateUser(ctx context.Context, n NewUser) (User, error) {
	if n.Role == "" {
		n.Role = RoleUser
	}
	if err := CheckSkills(NormalizeSkills(n.Skills)); err != nil {
		return User{}, err
	}
	u, err := scanUser(s.db.QueryRow(ctx, `
		INSERT INTO users (email, name, role, skills, password_hash)
		VALUES ($1, $2, $3, $4, $5)
		RETURNING `+userColumns,
		NormalizeEmail(n.Email), PlainName(n.Name), n.Role, NormalizeSkills(n.Skills), n.PasswordHash))
	if err != nil {
		return User{}, fmt.Errorf("insert user %q: %w", n.Email, err)
	}
	return u, nil
}

// EnsureRequester returns the user who sent a mail, creating a requester
// when there is none. A known requester's empty name is filled in from
// their mail; staff are named by admins only, since anyone can write any
// From.
func (s *Store) EnsureRequester(ctx context.Context, email, name string) (User, error) {
	return s.ensureUser(ctx, email, name, true)
}

// EnsureCopied returns a person copied on a mail, creating a requester
// when there is none. The name a mail gives someone else names only a new
// user: whoever copies an address chooses its display name.
func (s *Store) EnsureCopied(ctx context.Context, email, name string) (User, error) {
	return s.ensureUser(ctx, email, name, false)
}

func (s *Store) ensureUser(ctx context.Context, email, name string, fillName bool) (User, error) {
	email = NormalizeEmail(email)
	u, err := scanUser(s.db.QueryRow(ctx, `
		INSERT INTO users (email, name) VALUES ($1, $2)
		ON CONFLICT (lower(email)) DO UPDATE
			SET name = CASE WHEN $3 AND users.name = '' AND users.role = 'user' THEN EXCLUDED.name ELSE users.name END
		RETURNING `+userColumns, email, PlainName(name), fillName))
	if err != nil {
		return User{}, fmt.Errorf("upsert requester %q: %w", email, err)
	}
	return u, nil
}

// UserUpdate changes a user; nil fields stay as they are.
type UserUpdate struct {
	Name         *string
	Role         *Role
	Skills       []string // nil: unchanged; empty: none
	PasswordHash *string
	Active       *bool
}

// UpdateUser applies u to the user with that id.
func (s *Store) UpdateUser(ctx context.Context, id int64, u UserUpdate) (User, error) {
	if u.Name != nil {
		name := PlainName(*u.Name)
		u.Name = &name
	}
	var skills any
	if u.Skills != nil {
		normalized := NormalizeSkills(u.Skills)
		if err := CheckSkills(normalized); err != nil {
			return User{}, err
		}
		skills = normalized
	}
	out, err := scanUser(s.db.QueryRow(ctx, `
		UPDATE users SET
			name = COALESCE($2, name),
			role = COALESCE($3, role),
			skills = COALESCE($4::text[], skills),
			password_hash = COALESCE($5, password_hash),
			active = COALESCE($6, active),
			updated_at = now()
		WHERE id = $1
		RETURNING `+userColumns, id, u.Name, u.Role, skills, u.PasswordHash, u.Active))
	if err != nil {
		return User{}, fmt.Errorf("update user %d: %w", id, err)
	}
	return out, nil
}

// Users lists every user, staff first.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	users, err := collectUsers(s.db.Query(ctx, `SELECT `+userColumns+` FROM users
		ORDER BY role DESC, lower(email)`))
	if err != nil {
		return nil, fmt.Errorf("select users: %w", err)
	}
	return users, nil
}

// Staff lists active moderators and admins.
func (s *Store) Staff(ctx context.Context) ([]User, error) {
	users, err := collectUsers(s.db.Query(ctx, `SELECT `+userColumns+` FROM users
		WHERE role IN ('moderator', 'admin') AND active ORDER BY role DESC, lower(email)`))
	if err != nil {
		return nil, fmt.Errorf("select staff: %w", err)
	}
	return users, nil
}

// SkillVocabulary is every skill an active moderator or admin has, sorted.
func (s *Store) SkillVocabulary(ctx context.Context) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT unnest(skills) AS skill FROM users
		WHERE role IN ('moderator', 'admin') AND active ORDER BY skill`)
	if err != nil {
		return nil, fmt.Errorf("select skills: %w", err)
	}
	skills, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("select skills: %w", err)
	}
	return skills, nil
}

// Audit appends an entry to the audit log.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO audit_log (ticket_id, actor_id, channel, action, old_value, new_value, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.TicketID, e.ActorID, e.Channel, e.Action, e.OldValue, e.NewValue, e.Detail)
	if err != nil {
		return fmt.Errorf("insert audit entry %q: %w", e.Action, err)
	}
	return nil
}

// AuditTrail returns a ticket's audit entries, oldest first.
func (s *Store) AuditTrail(ctx context.Context, ticketID int64) ([]AuditEntry, error) {
	rows, err := s.db.Query(ctx, `
		SELECT id, ticket_id, actor_id, channel, action, old_value, new_value, detail, created_at
		FROM audit_log WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("select audit trail of ticket %d: %w", ticketID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AuditEntry])
	if err != nil {
		return nil, fmt.Errorf("select audit trail of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// Event is a row of the event outbox.
type Event struct {
	ID       int64
	Name     string
	TicketID *int64
	Data     json.RawMessage
}

// EnqueueEvent writes an event to the outbox; it reaches the workflow engine
// once the surrounding transaction commits. data is marshalled to JSON.
func (s *Store) EnqueueEvent(ctx context.Context, name string, ticketID int64, data any) (int64, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return 0, fmt.Errorf("encode event %s: %w", name, err)
	}
	var id int64
	err = s.db.QueryRow(ctx, `INSERT INTO event_outbox (name, ticket_id, data) VALUES ($1, $2, $3)
		RETURNING id`, name, ticketID, b).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert event %s: %w", name, err)
	}
	return id, nil
}
