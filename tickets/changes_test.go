package tickets_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ticketd/tickets"
)

func eventNames(t *testing.T, s *tickets.Store, ticketID int64) []string {
	t.Helper()
	rows, err := s.DB().Query(context.Background(), `SELECT name FROM event_outbox WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	return names
}

func TestChangesWriteAuditAndEvents(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	mod, _ := s.CreateUser(ctx, tickets.NewUser{Email: "mod@example.com", Role: tickets.RoleModerator})
	tk, err := s.CreateTicket(ctx, tickets.NewTicket{Subject: "disk full", RequesterID: req.ID})
	if err != nil {
		t.Fatal(err)
	}
	web := tickets.Actor{UserID: &mod.ID, Channel: tickets.ChannelWeb}
	err = s.InTx(ctx, func(tx *tickets.Store) error {
		if _, err := tx.Assign(ctx, tk.ID, mod.ID, "by hand", web); err != nil {
			return err
		}
		if _, err := tx.SetPriority(ctx, tk.ID, tickets.PriorityHigh, web); err != nil {
			return err
		}
		c, err := tx.SetPriority(ctx, tk.ID, tickets.PriorityHigh, web)
		if err != nil || c.Changed {
			t.Errorf("setting the same priority again: %+v, %v", c, err)
		}
		if _, err := tx.SetSkills(ctx, tk.ID, []string{"Linux", "storage"}, web); err != nil {
			return err
		}
		c, err = tx.SetStatus(ctx, tk.ID, tickets.StatusCompleted, web)
		if err != nil || !c.Changed || c.Old != "todo" || c.New != "completed" {
			t.Errorf("SetStatus = %+v, %v", c, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Ticket(ctx, tk.ID)
	if got.Status != tickets.StatusCompleted || got.CompletedAt == nil || got.Priority != tickets.PriorityHigh ||
		got.AssigneeID == nil || *got.AssigneeID != mod.ID || !cmp.Equal(got.Skills, []string{"linux", "storage"}) {
		t.Fatalf("ticket after changes: %+v", got)
	}
	want := []string{tickets.EventAssigned, tickets.EventStatusChanged, tickets.EventCompleted}
	if diff := cmp.Diff(want, eventNames(t, s, tk.ID)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	trail, _ := s.AuditTrail(ctx, tk.ID)
	var actions []string
	for _, e := range trail {
		actions = append(actions, e.Action)
	}
	if diff := cmp.Diff([]string{"assign", "priority", "skills", "status"}, actions); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}

	// Reopening clears completed_at.
	if err := s.InTx(ctx, func(tx *tickets.Store) error {
		_, err := tx.SetStatus(ctx, tk.ID, tickets.StatusTodo, web)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Ticket(ctx, tk.ID); got.CompletedAt != nil {
		t.Error("reopened ticket kept completed_at")
	}
}

func TestAssignRefusesNonStaff(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	tk, _ := s.CreateTicket(ctx, tickets.NewTicket{Subject: "x", RequesterID: req.ID})
	_, err := s.Assign(ctx, tk.ID, req.ID, "", tickets.Actor{Channel: tickets.ChannelCLI})
	if !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("assigning to a requester: %v", err)
	}
	if _, err := s.Assign(ctx, 424242, req.ID, "", tickets.Actor{Channel: tickets.ChannelCLI}); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("assigning a missing ticket: %v", err)
	}
}

func TestApplyTriageAndThreadLookup(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	mod, _ := s.CreateUser(ctx, tickets.NewUser{Email: "mod@example.com", Role: tickets.RoleModerator})
	tk, _ := s.CreateTicket(ctx, tickets.NewTicket{Subject: "vpn down", RequesterID: req.ID})
	if _, err := s.InsertMessage(ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound, Kind: tickets.KindOpening,
		MessageID: "first@example.com", FromAddress: req.Email}); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(tx *tickets.Store) error {
		return tx.ApplyTriage(ctx, tk.ID, tickets.Triage{Summary: "VPN is down", Priority: tickets.PriorityHigh,
			Skills: []string{"networking"}, AssigneeID: &mod.ID, AssignmentReason: "matched skills: networking"})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Ticket(ctx, tk.ID)
	if got.Status != tickets.StatusInProgress || got.TriagedAt == nil || got.AssignmentReason != "matched skills: networking" {
		t.Fatalf("after triage: %+v", got)
	}
	if names := eventNames(t, s, tk.ID); len(names) != 0 {
		t.Errorf("triage emitted events %v", names)
	}
	id, matched, err := s.TicketByMessageID(ctx, []string{"unknown@x", "first@example.com"})
	if err != nil || id != tk.ID || matched != "first@example.com" {
		t.Fatalf("TicketByMessageID = %d %q %v", id, matched, err)
	}
	if _, _, err := s.TicketByMessageID(ctx, []string{"nope@x"}); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	ids, err := s.ThreadMessageIDs(ctx, tk.ID)
	if err != nil || !cmp.Equal(ids, []string{"first@example.com"}) {
		t.Fatalf("ThreadMessageIDs = %v, %v", ids, err)
	}
}
