package tickets_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"ticketd/tickets"
)

// TestSearchBeforeAndAfterIndexing: a ticket is found by its words from the
// moment it is created, before its search document is stored, after its
// first change stores it, and after IndexSearch stores one that no change
// reached.
func TestSearchBeforeAndAfterIndexing(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	adm, _ := s.CreateUser(ctx, tickets.NewUser{Email: "adm@example.com", Role: tickets.RoleAdmin})
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	printer, err := s.CreateTicket(ctx, tickets.NewTicket{Subject: "Printer jams", Description: "The paper is stuck in tray two.", RequesterID: req.ID})
	if err != nil {
		t.Fatal(err)
	}
	login, err := s.CreateTicket(ctx, tickets.NewTicket{Subject: "Cannot sign in", Description: "The password reset mail never arrives.", RequesterID: req.ID})
	if err != nil {
		t.Fatal(err)
	}
	stored := func(id int64) bool {
		t.Helper()
		var ok bool
		if err := s.DB().QueryRow(ctx, `SELECT search IS NOT NULL FROM tickets WHERE id = $1`, id).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	found := func(query string) []int64 {
		t.Helper()
		var ids []int64
		for _, sort := range []string{"relevance", "priority"} {
			items, total, err := s.ListTickets(ctx, tickets.TicketFilter{Scope: tickets.ScopeFor(adm, false), Query: query, Sort: sort})
			if err != nil {
				t.Fatal(err)
			}
			if total != len(items) {
				t.Fatalf("%q: total %d, listed %d", query, total, len(items))
			}
			var got []int64
			for _, it := range items {
				got = append(got, it.ID)
			}
			slices.Sort(got)
			if sort != "relevance" && !slices.Equal(got, ids) {
				t.Fatalf("%q: sorted by %s %v, by relevance %v", query, sort, got, ids)
			}
			ids = got
		}
		return ids
	}

	if stored(printer.ID) || stored(login.ID) {
		t.Fatal("a new ticket has a stored search document; intake should leave it to the first change")
	}
	if got := found("tray"); !slices.Equal(got, []int64{printer.ID}) {
		t.Fatalf("before indexing, tray finds %v, want [%d]", got, printer.ID)
	}
	if got := found("printer -password"); !slices.Equal(got, []int64{printer.ID}) {
		t.Fatalf("before indexing, printer -password finds %v, want [%d]", got, printer.ID)
	}

	if _, err := s.SetStatus(ctx, printer.ID, tickets.StatusCompleted, tickets.Actor{Channel: tickets.ChannelSystem}); err != nil {
		t.Fatal(err)
	}
	if !stored(printer.ID) {
		t.Fatal("the first change did not store the search document")
	}
	if got := found("tray"); !slices.Equal(got, []int64{printer.ID}) {
		t.Fatalf("after the change, tray finds %v, want [%d]", got, printer.ID)
	}
	similar, err := s.SimilarCompleted(ctx, tickets.SimilarQuery{Text: "my printer jams again, paper stuck", Limit: 5})
	if err != nil || len(similar) != 1 || similar[0].ID != printer.ID {
		t.Fatalf("similar completed tickets: %+v, %v; want ticket %d", similar, err, printer.ID)
	}

	// IndexSearch leaves younger tickets to their first change.
	if n, err := s.IndexSearch(ctx, time.Hour, 10); err != nil || n != 0 {
		t.Fatalf("indexed %d young tickets, %v; want 0", n, err)
	}
	if n, err := s.IndexSearch(ctx, 0, 10); err != nil || n != 1 {
		t.Fatalf("indexed %d tickets, %v; want 1", n, err)
	}
	if !stored(login.ID) {
		t.Fatal("IndexSearch did not store the search document")
	}
	if got := found("password"); !slices.Equal(got, []int64{login.ID}) {
		t.Fatalf("after IndexSearch, password finds %v, want [%d]", got, login.ID)
	}
}

// TestSkillFilter: the skill filter finds the tickets that need the skill,
// and none whose skills are not set yet.
func TestSkillFilter(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	adm, _ := s.CreateUser(ctx, tickets.NewUser{Email: "adm@example.com", Role: tickets.RoleAdmin})
	req, _ := s.CreateUser(ctx, tickets.NewUser{Email: "req@example.com"})
	var ids []int64
	for _, subject := range []string{"printer", "network", "untriaged"} {
		tk, err := s.CreateTicket(ctx, tickets.NewTicket{Subject: subject, RequesterID: req.ID})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	for i, skills := range [][]string{{"printers", "hardware"}, {"networking"}} {
		if _, err := s.SetSkills(ctx, ids[i], skills, tickets.Actor{Channel: tickets.ChannelSystem}); err != nil {
			t.Fatal(err)
		}
	}
	for skill, want := range map[string][]int64{"printers": {ids[0]}, "hardware": {ids[0]}, "networking": {ids[1]}, "billing": nil} {
		items, _, err := s.ListTickets(ctx, tickets.TicketFilter{Scope: tickets.ScopeFor(adm, false), Skill: skill})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, it := range items {
			got = append(got, it.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("skill %s: tickets %v, want %v", skill, got, want)
		}
	}
}
