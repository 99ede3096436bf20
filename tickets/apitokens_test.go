package tickets_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"ticketd/tickets"
)

func TestAPITokens(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mod, err := s.CreateUser(ctx, tickets.NewUser{Email: "mod@example.com", Role: tickets.RoleModerator})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.CreateAPIToken(ctx, mod.ID, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "tkd_") || len(secret) < 40 {
		t.Fatalf("secret %q: want tkd_ and 32 random bytes", secret)
	}
	var stored int
	if err := s.DB().QueryRow(ctx, `SELECT count(*) FROM api_tokens WHERE token_hash = $1`, []byte(secret)).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("the secret itself is stored (%d rows, %v)", stored, err)
	}
	u, err := s.UserByAPIToken(ctx, secret)
	if err != nil || u.ID != mod.ID {
		t.Fatalf("UserByAPIToken = %d, %v; want user %d", u.ID, err, mod.ID)
	}
	toks, err := s.APITokens(ctx, mod.ID)
	if err != nil || len(toks) != 1 || toks[0].Name != "laptop" || toks[0].LastUsedAt == nil {
		t.Fatalf("APITokens = %+v, %v; want one used token named laptop", toks, err)
	}

	for _, tc := range []struct {
		name   string
		secret string
	}{
		{"unknown secret", "tkd_" + strings.Repeat("a", 52)},
		{"no prefix", strings.TrimPrefix(secret, "tkd_")},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.UserByAPIToken(ctx, tc.secret); !errors.Is(err, tickets.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})
	}

	inactive := false
	if _, err := s.UpdateUser(ctx, mod.ID, tickets.UserUpdate{Active: &inactive}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByAPIToken(ctx, secret); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("token of a deactivated user: got %v, want ErrNotFound", err)
	}
	active := true
	if _, err := s.UpdateUser(ctx, mod.ID, tickets.UserUpdate{Active: &active}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIToken(ctx, toks[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIToken(ctx, toks[0].ID); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := s.UserByAPIToken(ctx, secret); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("revoked token: got %v, want ErrNotFound", err)
	}
	if err := s.RevokeAPIToken(ctx, 999999); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("revoking an unknown token: got %v, want ErrNotFound", err)
	}
}
