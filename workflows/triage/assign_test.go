package triage

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/tickets"
)

func TestPickAssignee(t *testing.T) {
	t.Parallel()
	at := func(h int) *time.Time { x := time.Date(2025, 1, 1, h, 0, 0, 0, time.UTC); return &x }
	staff := func(id int64, role tickets.Role, open int, last *time.Time, skills ...string) tickets.Assignable {
		return tickets.Assignable{User: tickets.User{ID: id, Role: role, Skills: skills, LastAssignedAt: last}, OpenTickets: open}
	}
	id := func(i int64) *int64 { return &i }
	bouncing := func(a tickets.Assignable) tickets.Assignable { a.BouncingSince = at(0); return a }
	for _, tc := range []struct {
		name   string
		staff  []tickets.Assignable
		skills []string
		want   Choice
	}{
		{
			name: "most skills in common wins over load",
			staff: []tickets.Assignable{
				staff(1, tickets.RoleModerator, 0, nil, "postgres"),
				staff(2, tickets.RoleModerator, 5, nil, "postgres", "networking"),
			},
			skills: []string{"networking", "postgres"},
			want:   Choice{AssigneeID: id(2), Reason: "matched skills: networking, postgres; 5 open tickets"},
		},
		{
			name: "equal skills: fewest open tickets",
			staff: []tickets.Assignable{
				staff(1, tickets.RoleModerator, 3, nil, "postgres"),
				staff(2, tickets.RoleModerator, 1, at(9), "postgres"),
			},
			skills: []string{"postgres"},
			want:   Choice{AssigneeID: id(2), Reason: "matched skills: postgres; 1 open ticket"},
		},
		{
			name: "equal skills and load: longest since last assignment",
			staff: []tickets.Assignable{
				staff(1, tickets.RoleModerator, 2, at(10), "email"),
				staff(2, tickets.RoleModerator, 2, at(8), "email"),
				staff(3, tickets.RoleModerator, 2, at(9), "email"),
			},
			skills: []string{"email"},
			want:   Choice{AssigneeID: id(2), Reason: "matched skills: email; 2 open tickets"},
		},
		{
			name: "never assigned counts as longest ago",
			staff: []tickets.Assignable{
				staff(1, tickets.RoleModerator, 0, at(1), "email"),
				staff(2, tickets.RoleModerator, 0, nil, "email"),
			},
			skills: []string{"email"},
			want:   Choice{AssigneeID: id(2), Reason: "matched skills: email; 0 open tickets"},
		},
		{
			name: "an admin with the skill competes like a moderator",
			staff: []tickets.Assignable{
				staff(1, tickets.RoleModerator, 4, nil, "billing"),
				staff(2, tickets.RoleAdmin, 0, nil, "billing"),
			},
			skills: []string{"billing"},
			want:   Choice{AssigneeID: id(2), Reason: "matched skills: billing; 0 open tickets"},
		},
		{
			name: "nobody has the skills: the least loaded admin",
			staff: []tickets.Assignable{
				staff(1, tickets.RoleModerator, 0, nil, "email"),
				staff(2, tickets.RoleAdmin, 3, nil),
				staff(3, tickets.RoleAdmin, 1, nil),
			},
			skills: []string{"kubernetes"},
			want:   Choice{AssigneeID: id(3), Reason: "nobody has the skills kubernetes; admin with 1 open ticket", Fallback: true},
		},
		{
			name: "no skills identified: an admin",
			staff: []tickets.Assignable{
				staff(1, tickets.RoleModerator, 0, nil, "email"),
				staff(2, tickets.RoleAdmin, 2, nil),
			},
			want: Choice{AssigneeID: id(2), Reason: "no skills identified; admin with 2 open tickets", Fallback: true},
		},
		{
			name: "no admin: the least loaded moderator",
			staff: []tickets.Assignable{
				staff(1, tickets.RoleModerator, 2, nil, "email"),
				staff(2, tickets.RoleModerator, 1, nil, "linux"),
			},
			skills: []string{"windows"},
			want:   Choice{AssigneeID: id(2), Reason: "nobody has the skills windows; moderator with 1 open ticket", Fallback: true},
		},
		{
			name: "an address that bounces is passed over",
			staff: []tickets.Assignable{
				bouncing(staff(1, tickets.RoleModerator, 0, nil, "postgres")),
				staff(2, tickets.RoleModerator, 4, nil, "postgres"),
			},
			skills: []string{"postgres"},
			want:   Choice{AssigneeID: id(2), Reason: "matched skills: postgres; 4 open tickets"},
		},
		{
			name: "a better match that bounces loses to a reachable one",
			staff: []tickets.Assignable{
				bouncing(staff(1, tickets.RoleModerator, 0, nil, "postgres", "networking")),
				staff(2, tickets.RoleAdmin, 0, nil),
			},
			skills: []string{"postgres", "networking"},
			want:   Choice{AssigneeID: id(2), Reason: "nobody has the skills networking, postgres; admin with 0 open tickets", Fallback: true},
		},
		{
			name: "only bouncing staff: still assigned",
			staff: []tickets.Assignable{
				bouncing(staff(1, tickets.RoleModerator, 0, nil, "postgres")),
			},
			skills: []string{"postgres"},
			want:   Choice{AssigneeID: id(1), Reason: "matched skills: postgres; 0 open tickets"},
		},
		{
			name: "nobody at all",
			want: Choice{AssigneeID: nil, Reason: "no active moderator or admin to assign"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, PickAssignee(tc.staff, tc.skills, 1)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestPickAssigneeTiesTakeTurns: staff equal in skills, load and wait take
// turns by ticket; the one listed first (the lowest id) is not always it.
func TestPickAssigneeTiesTakeTurns(t *testing.T) {
	t.Parallel()
	var staff []tickets.Assignable
	for id := int64(1); id <= 3; id++ {
		staff = append(staff, tickets.Assignable{User: tickets.User{ID: id, Role: tickets.RoleModerator, Skills: []string{"web"}}, OpenTickets: 2})
	}
	got := map[int64]int{}
	for ticket := int64(100); ticket < 130; ticket++ {
		c := PickAssignee(staff, []string{"web"}, ticket)
		if c.AssigneeID == nil {
			t.Fatal("nobody assigned")
		}
		got[*c.AssigneeID]++
		if again := PickAssignee(staff, []string{"web"}, ticket); *again.AssigneeID != *c.AssigneeID {
			t.Fatalf("ticket %d: %d, then %d: the choice must not change on a retry", ticket, *c.AssigneeID, *again.AssigneeID)
		}
	}
	if len(got) != 3 || got[1] != 10 || got[2] != 10 || got[3] != 10 {
		t.Errorf("30 tickets went %v, want 10 to each of the three", got)
	}
	// Load still comes first, then the wait.
	staff[2].OpenTickets = 1
	if c := PickAssignee(staff, []string{"web"}, 101); *c.AssigneeID != 3 {
		t.Errorf("the least loaded is 3, got %d", *c.AssigneeID)
	}
	staff[2].OpenTickets = 2
	last := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	staff[0].LastAssignedAt, staff[1].LastAssignedAt = &last, &last
	if c := PickAssignee(staff, []string{"web"}, 101); *c.AssigneeID != 3 {
		t.Errorf("3 was never assigned and has waited longest, got %d", *c.AssigneeID)
	}
}
