package tickets

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// apiTokenPrefix marks ticketd's API secrets, so a leaked one is easy to
// recognise in logs and by secret scanners.
const apiTokenPrefix = "tkd_"

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// APIToken is a bearer token for /api/v1, without its secret: only the
// secret's SHA-256 is stored.
type APIToken struct {
	ID         int64
	UserID     int64
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// NewSecret returns a random secret of 32 bytes, base32, with prefix.
func NewSecret(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return prefix + strings.ToLower(tokenEncoding.EncodeToString(b)), nil
}

// HashSecret is how secrets handed out by ticketd are stored.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// CreateAPIToken makes a bearer token for the user and returns its secret,
// which is shown once and never stored.
func (s *Store) CreateAPIToken(ctx context.Context, userID int64, name string) (string, error) {
	secret, err := NewSecret(apiTokenPrefix)
	if err != nil {
		return "", fmt.Errorf("create api token for user %d: %w", userID, err)
	}
	_, err = s.db.Exec(ctx, `INSERT INTO api_tokens (user_id, name, token_hash) VALUES ($1, $2, $3)`,
		userID, strings.TrimSpace(name), HashSecret(secret))
	if err != nil {
		return "", fmt.Errorf("create api token for user %d: %w", userID, err)
	}
	return secret, nil
}

// RevokeAPIToken revokes a token by id; revoking one twice is a no-op, an
// unknown id is ErrNotFound.
func (s *Store) RevokeAPIToken(ctx context.Context, id int64) error {
	tag, err := s.db.Exec(ctx, `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke api token %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke api token %d: %w", id, ErrNotFound)
	}
	return nil
}

// APITokens lists a user's tokens, newest first, revoked ones included.
func (s *Store) APITokens(ctx context.Context, userID int64) ([]APIToken, error) {
	rows, err := s.db.Query(ctx, `SELECT id, user_id, name, created_at, last_used_at, revoked_at
		FROM api_tokens WHERE user_id = $1 ORDER BY id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("select api tokens of user %d: %w", userID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[APIToken])
	if err != nil {
		return nil, fmt.Errorf("select api tokens of user %d: %w", userID, err)
	}
	return out, nil
}

// UserByAPIToken returns the active user a live token belongs to, and marks
// the token used (at most once a minute, to keep reads cheap). A revoked
// token, an unknown one, or one of a deactivated user is ErrNotFound.
func (s *Store) UserByAPIToken(ctx context.Context, secret string) (User, error) {
	if !strings.HasPrefix(secret, apiTokenPrefix) {
		return User{}, fmt.Errorf("find api token: %w", ErrNotFound)
	}
	var tokenID int64
	var lastUsed *time.Time
	var u User
	err := s.db.QueryRow(ctx, `
		SELECT t.id, t.last_used_at, `+prefixed("u", userColumns)+`
		FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.active`, HashSecret(secret)).Scan(
		&tokenID, &lastUsed, &u.ID, &u.Email, &u.Name, &u.Role, &u.Skills, &u.PasswordHash, &u.Active,
		&u.BouncingSince, &u.LastAssignedAt, &u.CreatedAt, &u.UpdatedAt)
	if err != nil {
		return User{}, fmt.Errorf("find api token: %w", notFound(err))
	}
	if lastUsed == nil || time.Since(*lastUsed) > time.Minute {
		if _, err := s.db.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() WHERE id = $1`, tokenID); err != nil {
			return User{}, fmt.Errorf("mark api token %d used: %w", tokenID, err)
		}
	}
	return u, nil
}
