package tickets_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/tickets"
)

func TestVisibleTicketScopes(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	cc, _ := s.CreateUser(ctx, tickets.NewUser{Email: "cc@example.com"})
	stranger, _ := s.CreateUser(ctx, tickets.NewUser{Email: "stranger@example.com"})
	mod, _ := s.CreateUser(ctx, tickets.NewUser{Email: "mod@example.com", Role: tickets.RoleModerator})
	mod2, _ := s.CreateUser(ctx, tickets.NewUser{Email: "mod2@example.com", Role: tickets.RoleModerator})
	adm, _ := s.CreateUser(ctx, tickets.NewUser{Email: "adm@example.com", Role: tickets.RoleAdmin})
	assigned, _ := s.CreateTicket(ctx, tickets.NewTicket{Subject: "assigned", RequesterID: req.ID})
	open, _ := s.CreateTicket(ctx, tickets.NewTicket{Subject: "open", RequesterID: req.ID})
	if err := s.AddParticipant(ctx, assigned.ID, cc.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.InTx(ctx, func(tx *tickets.Store) error {
		_, err := tx.Assign(ctx, assigned.ID, mod.ID, "", tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		scope  tickets.Scope
		ticket int64
		sees   bool
	}{
		{"admin", tickets.ScopeFor(adm, false), assigned.ID, true},
		{"assignee", tickets.ScopeFor(mod, false), assigned.ID, true},
		{"other moderator", tickets.ScopeFor(mod2, true), assigned.ID, false},
		{"moderator, unassigned hidden", tickets.ScopeFor(mod, false), open.ID, false},
		{"moderator, unassigned shown", tickets.ScopeFor(mod, true), open.ID, true},
		{"requester", tickets.ScopeFor(req, false), assigned.ID, true},
		{"copied person", tickets.ScopeFor(cc, false), assigned.ID, true},
		{"copied person, other ticket", tickets.ScopeFor(cc, false), open.ID, false},
		{"stranger", tickets.ScopeFor(stranger, true), assigned.ID, false},
		{"zero scope sees nothing", tickets.Scope{}, assigned.ID, false},
		{"no such ticket", tickets.ScopeFor(adm, false), 999999, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.VisibleTicket(ctx, tc.scope, tc.ticket, false)
			if sees := err == nil; sees != tc.sees {
				t.Fatalf("sees: %v (%v), want %v", sees, err, tc.sees)
			}
			if err != nil && !errors.Is(err, tickets.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			items, total, err := s.ListTickets(ctx, tickets.TicketFilter{Scope: tc.scope})
			if err != nil {
				t.Fatal(err)
			}
			listed := false
			for _, it := range items {
				listed = listed || it.ID == tc.ticket
			}
			if listed != tc.sees || total != len(items) {
				t.Fatalf("listed: %v of %d (total %d), want %v", listed, len(items), total, tc.sees)
			}
		})
	}
}

func TestCountTicketsByStatus(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	for i, st := range []tickets.Status{tickets.StatusTodo, tickets.StatusTodo, tickets.StatusCompleted} {
		tk, _ := s.CreateTicket(ctx, tickets.NewTicket{Subject: "t", RequesterID: req.ID})
		if err := s.InTx(ctx, func(tx *tickets.Store) error {
			_, err := tx.SetStatus(ctx, tk.ID, st, tickets.Actor{Channel: tickets.ChannelSystem})
			return err
		}); err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
	}
	got, err := s.CountTicketsByStatus(ctx, tickets.TicketFilter{Scope: tickets.Scope{All: true}, Status: tickets.StatusCompleted})
	if err != nil {
		t.Fatal(err)
	}
	want := map[tickets.Status]int{tickets.StatusTodo: 2, tickets.StatusInProgress: 0, tickets.StatusCompleted: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
}

// TestRepliesTouchTheTicket: a message added after the opening one is
// activity, so the "updated" sort brings its ticket up; the opening one is
// not.
func TestRepliesTouchTheTicket(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	var ids []int64
	for _, subject := range []string{"older", "newer"} {
		tk, err := s.CreateTicket(ctx, tickets.NewTicket{Subject: subject, RequesterID: req.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.InsertMessage(ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound, Kind: tickets.KindOpening,
			MessageID: subject + "@example.com", FromAddress: req.Email}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	order := func() []int64 {
		t.Helper()
		items, _, err := s.ListTickets(ctx, tickets.TicketFilter{Scope: tickets.Scope{All: true}, Sort: "updated", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, it := range items {
			out = append(out, it.ID)
		}
		return out
	}
	if diff := cmp.Diff([]int64{ids[1], ids[0]}, order()); diff != "" {
		t.Fatalf("before the reply (-want +got):\n%s", diff)
	}
	if _, err := s.InsertMessage(ctx, tickets.Message{TicketID: ids[0], Direction: tickets.Inbound, Kind: tickets.KindReply,
		MessageID: "reply@example.com", FromAddress: req.Email}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{ids[0], ids[1]}, order()); diff != "" {
		t.Errorf("after a reply to the older ticket (-want +got):\n%s", diff)
	}
}

// TestPortalTokenSingleUse uses one sign-in secret from many goroutines at
// once: exactly one wins.
func TestPortalTokenSingleUse(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	secret, err := s.CreatePortalToken(ctx, u.ID, time.Minute, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.PortalTokenUser(ctx, secret); err != nil || got.ID != u.ID {
		t.Fatalf("PortalTokenUser: %v, %v", got.ID, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.ConsumePortalToken(ctx, secret); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, tickets.ErrNotFound) {
				t.Errorf("consume: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d uses of one secret succeeded, want 1", wins)
	}
	if _, err := s.PortalTokenUser(ctx, secret); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("a used secret still names its user: %v", err)
	}
	expired, _ := s.CreatePortalToken(ctx, u.ID, -time.Second, "")
	if _, err := s.ConsumePortalToken(ctx, expired); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("expired secret: %v", err)
	}
}

func TestWebAttemptsAndPrune(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.RecordWebAttempts(ctx, "ip:1", "account:a"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordWebAttempts(ctx, "ip:1"); err != nil {
		t.Fatal(err)
	}
	got, err := s.CountWebAttempts(ctx, time.Now().Add(-time.Minute), "ip:1", "account:a", "account:b")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"ip:1": 2, "account:a": 1}, got); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
	if got, _ := s.CountWebAttempts(ctx, time.Now().Add(time.Minute), "ip:1"); got["ip:1"] != 0 {
		t.Fatal("attempts before the window count")
	}
	if _, err := s.DB().Exec(ctx, `UPDATE web_attempts SET created_at = now() - interval '2 days' WHERE key = 'account:a'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES ('old', '\x00', now() - interval '1 minute'),
		('live', '\x00', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneWebState(ctx, 24*time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d rows, %v; want the old attempt and the expired session", n, err)
	}
	var tokens []string
	rows, _ := s.DB().Query(ctx, `SELECT token FROM sessions`)
	for rows.Next() {
		var tok string
		rows.Scan(&tok)
		tokens = append(tokens, tok)
	}
	rows.Close()
	if diff := cmp.Diff([]string{"live"}, tokens); diff != "" {
		t.Fatalf("sessions left (-want +got):\n%s", diff)
	}
}

func TestStaffLoads(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	mod, _ := s.CreateUser(ctx, tickets.NewUser{Email: "mod@example.com", Role: tickets.RoleModerator})
	idle, _ := s.CreateUser(ctx, tickets.NewUser{Email: "idle@example.com", Role: tickets.RoleModerator})
	sys := tickets.Actor{Channel: tickets.ChannelSystem}
	for _, st := range []tickets.Status{tickets.StatusTodo, tickets.StatusInProgress, tickets.StatusInProgress, tickets.StatusCompleted} {
		tk, _ := s.CreateTicket(ctx, tickets.NewTicket{Subject: "t", RequesterID: req.ID})
		if err := s.InTx(ctx, func(tx *tickets.Store) error {
			if _, err := tx.Assign(ctx, tk.ID, mod.ID, "", sys); err != nil {
				return err
			}
			_, err := tx.SetStatus(ctx, tk.ID, st, sys)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	loads, err := s.StaffLoads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][3]int{}
	for _, l := range loads {
		got[l.User.Email] = [3]int{l.Todo, l.InProgress, l.Completed}
	}
	want := map[string][3]int{mod.Email: {1, 2, 1}, idle.Email: {0, 0, 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("loads (-want +got):\n%s", diff)
	}
}
