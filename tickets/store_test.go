package tickets_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"ticketd/pgtest"
	"ticketd/tickets"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t *testing.T) *tickets.Store {
	t.Helper()
	t.Parallel()
	return tickets.NewStore(pgtest.New(t))
}

func TestSchemaRejectsInvalidValues(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, tickets.NewUser{Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := s.CreateTicket(ctx, tickets.NewTicket{Subject: "printer", RequesterID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sql  string
		args []any
		code string
	}{
		{"status outside the enum", `UPDATE tickets SET status = 'closed' WHERE id = $1`, []any{tk.ID}, "22P02"},
		{"priority outside the enum", `UPDATE tickets SET priority = 'urgent' WHERE id = $1`, []any{tk.ID}, "22P02"},
		{"completed without completed_at", `UPDATE tickets SET status = 'completed' WHERE id = $1`, []any{tk.ID}, "23514"},
		{"role outside the enum", `UPDATE users SET role = 'root' WHERE id = $1`, []any{u.ID}, "22P02"},
		{"same address in other case", `INSERT INTO users (email) VALUES ('ANN@example.com')`, nil, "23505"},
		{"imap raw message without uid", `INSERT INTO raw_messages (sha256, data, source, mailbox) VALUES (sha256('x'), 'x', 'imap', 'INBOX')`, nil, "23514"},
		{"unknown raw message source", `INSERT INTO raw_messages (sha256, data, source) VALUES (sha256('y'), 'y', 'pigeon')`, nil, "23514"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.DB().Exec(ctx, tc.sql, tc.args...)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tc.code {
				t.Fatalf("got %v, want SQLSTATE %s", err, tc.code)
			}
		})
	}
}

func TestMessageIDUniquePerDirection(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, tickets.NewUser{Email: "bob@example.com"})
	tk, err := s.CreateTicket(ctx, tickets.NewTicket{Subject: "vpn", RequesterID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	insert := func(dir string) error {
		_, err := s.DB().Exec(ctx, `INSERT INTO messages (ticket_id, direction, message_id) VALUES ($1, $2, 'a@b')`, tk.ID, dir)
		return err
	}
	if err := insert("inbound"); err != nil {
		t.Fatal(err)
	}
	if err := insert("outbound"); err != nil {
		t.Fatalf("the same id in the other direction: %v", err)
	}
	if err := insert("inbound"); err == nil {
		t.Fatal("a second inbound message with the same Message-ID was accepted")
	}
}

func TestInTxRollsBackOnError(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *tickets.Store) error {
		if _, err := tx.CreateUser(ctx, tickets.NewUser{Email: "gone@example.com"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v", err)
	}
	if _, err := s.UserByEmail(ctx, "gone@example.com"); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("user survived the rollback: %v", err)
	}
}

func TestUsers(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mod, err := s.CreateUser(ctx, tickets.NewUser{Email: " Mo@Example.com ", Name: "Mo", Role: tickets.RoleModerator,
		Skills: []string{"Postgres", "networking", "postgres", " "}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"networking", "postgres"}, mod.Skills); diff != "" {
		t.Errorf("skills (-want +got):\n%s", diff)
	}
	got, err := s.UserByEmail(ctx, "MO@example.COM")
	if err != nil || got.ID != mod.ID {
		t.Fatalf("UserByEmail = %v, %v", got.ID, err)
	}
	req, err := s.EnsureRequester(ctx, "mo@example.com", "Someone Else")
	if err != nil || req.ID != mod.ID || req.Role != tickets.RoleModerator || req.Name != "Mo" {
		t.Fatalf("EnsureRequester on a known address changed it: %+v, %v", req, err)
	}
	if _, err := s.CreateUser(ctx, tickets.NewUser{Email: "ad@example.com", Role: tickets.RoleAdmin, Skills: []string{"billing"}}); err != nil {
		t.Fatal(err)
	}
	vocab, err := s.SkillVocabulary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"billing", "networking", "postgres"}, vocab); diff != "" {
		t.Errorf("vocabulary (-want +got):\n%s", diff)
	}
	inactive := false
	if _, err := s.UpdateUser(ctx, mod.ID, tickets.UserUpdate{Active: &inactive}); err != nil {
		t.Fatal(err)
	}
	staff, err := s.Staff(ctx)
	if err != nil || len(staff) != 1 || staff[0].Email != "ad@example.com" {
		t.Fatalf("Staff after deactivation = %+v, %v", staff, err)
	}
	if _, err := s.User(ctx, 99999); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
	// One rule for skills, wherever they are set.
	for _, skills := range [][]string{{strings.Repeat("x", tickets.MaxSkillLength+1)}, {"c++", "-leading"}, {"a/b"}} {
		if _, err := s.CreateUser(ctx, tickets.NewUser{Email: "sk@example.com", Role: tickets.RoleModerator, Skills: skills}); !errors.Is(err, tickets.ErrInvalid) {
			t.Errorf("create with skills %q: %v, want ErrInvalid", skills, err)
		}
		if _, err := s.UpdateUser(ctx, mod.ID, tickets.UserUpdate{Skills: skills}); !errors.Is(err, tickets.ErrInvalid) {
			t.Errorf("update to skills %q: %v, want ErrInvalid", skills, err)
		}
	}
	if u, err := s.UpdateUser(ctx, mod.ID, tickets.UserUpdate{Skills: []string{"Français", "c++", "c#", "asp.net", "sql.server"}}); err != nil ||
		!cmp.Equal(u.Skills, []string{"asp.net", "c#", "c++", "français", "sql.server"}) {
		t.Errorf("skills %v, %v", u.Skills, err)
	}
}

func TestParseStatusAliases(t *testing.T) {
	for in, want := range map[string]tickets.Status{
		"todo": tickets.StatusTodo, "Open": tickets.StatusTodo, "to-do": tickets.StatusTodo,
		"in-progress": tickets.StatusInProgress, "In Progress": tickets.StatusInProgress, "doing": tickets.StatusInProgress,
		"completed": tickets.StatusCompleted, "done": tickets.StatusCompleted, "closed": tickets.StatusCompleted, "Resolved": tickets.StatusCompleted,
	} {
		got, err := tickets.ParseStatus(in)
		if err != nil || got != want {
			t.Errorf("ParseStatus(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := tickets.ParseStatus("maybe"); err == nil {
		t.Error("ParseStatus accepted maybe")
	}
}

// TestParticipants: a ticket's people are its requester, then those copied
// on it, each once; the requester is never stored as a copied person.
func TestParticipants(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	cc, _ := s.CreateUser(ctx, tickets.NewUser{Email: "cc@example.com"})
	tk, err := s.CreateTicket(ctx, tickets.NewTicket{Subject: "s", RequesterID: req.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{cc.ID, req.ID, cc.ID} {
		if err := s.AddParticipant(ctx, tk.ID, id); err != nil {
			t.Fatal(err)
		}
	}
	people, err := s.Participants(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, p := range people {
		emails = append(emails, p.Email)
	}
	if want := []string{"req@example.com", "cc@example.com"}; !slices.Equal(emails, want) {
		t.Fatalf("participants %v, want %v", emails, want)
	}
	var rows int
	if err := s.DB().QueryRow(ctx, `SELECT count(*) FROM ticket_participants WHERE ticket_id = $1`, tk.ID).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d participant rows (%v), want 1: the copied person", rows, err)
	}
	for _, email := range []string{"REQ@example.com", "cc@example.com"} {
		if ok, err := s.IsParticipant(ctx, tk.ID, email); err != nil || !ok {
			t.Errorf("IsParticipant(%s) = %v, %v; want true", email, ok, err)
		}
	}
	if ok, _ := s.IsParticipant(ctx, tk.ID, "stranger@example.com"); ok {
		t.Error("a stranger is a participant")
	}
}
