package triage

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"ticketd/tickets"
)

// Choice is who automatic assignment picked, and why.
type Choice struct {
	AssigneeID *int64 `json:"assignee_id"`
	Reason     string `json:"reason"`
	// Fallback: nobody holds any of the skills (or none were found), and
	// the ticket went to an admin (or anyone, when there is no admin).
	Fallback bool `json:"fallback,omitempty"`
}

// PickAssignee chooses the staff member for a ticket needing skills: the
// most skills in common, then the fewest open tickets, then the longest
// since their last assignment (never assigned counts as longest). Staff
// equal in all of these take turns by the ticket's number, so no one is
// first in line for being listed first. When
// nobody has any of the skills, an admin is chosen the same way by load, or
// any staff member when there is no admin. Staff whose address bounces are
// left out while anyone else is there: they would never hear of the
// ticket. Code decides this, never a model.
func PickAssignee(staff []tickets.Assignable, skills []string, ticketID int64) Choice {
	skills = tickets.NormalizeSkills(skills)
	reachable := slices.DeleteFunc(slices.Clone(staff), func(s tickets.Assignable) bool { return s.BouncingSince != nil })
	if len(reachable) > 0 {
		staff = reachable
	}
	type cand struct {
		tickets.Assignable
		matched []string
	}
	var all []cand
	best := 0
	for _, s := range staff {
		c := cand{Assignable: s}
		for _, sk := range skills {
			if slices.Contains(s.Skills, sk) {
				c.matched = append(c.matched, sk)
			}
		}
		best = max(best, len(c.matched))
		all = append(all, c)
	}
	if len(all) == 0 {
		return Choice{Reason: "no active moderator or admin to assign"}
	}
	var pool []cand
	var why string
	switch {
	case best > 0:
		for _, c := range all {
			if len(c.matched) == best {
				pool = append(pool, c)
			}
		}
	default:
		for _, c := range all {
			if c.Role == tickets.RoleAdmin {
				pool = append(pool, c)
			}
		}
		who := "admin"
		if len(pool) == 0 {
			pool, who = all, "moderator"
		}
		if len(skills) == 0 {
			why = "no skills identified; " + who
		} else {
			why = fmt.Sprintf("nobody has the skills %s; %s", strings.Join(skills, ", "), who)
		}
	}
	sort.SliceStable(pool, func(i, j int) bool {
		a, b := pool[i], pool[j]
		if a.OpenTickets != b.OpenTickets {
			return a.OpenTickets < b.OpenTickets
		}
		switch {
		case a.LastAssignedAt == nil && b.LastAssignedAt != nil:
			return true
		case a.LastAssignedAt != nil && b.LastAssignedAt == nil:
			return false
		case a.LastAssignedAt != nil && !a.LastAssignedAt.Equal(*b.LastAssignedAt):
			return a.LastAssignedAt.Before(*b.LastAssignedAt)
		}
		return false
	})
	tied := 1
	for tied < len(pool) && pool[tied].OpenTickets == pool[0].OpenTickets && sameTime(pool[tied].LastAssignedAt, pool[0].LastAssignedAt) {
		tied++
	}
	// The tied are in the order staff were listed; the ticket's number
	// picks among them.
	p := pool[int(uint64(ticketID)%uint64(tied))]
	load := fmt.Sprintf("%d open ticket%s", p.OpenTickets, plural(p.OpenTickets))
	id := p.ID
	if best > 0 {
		return Choice{AssigneeID: &id, Reason: fmt.Sprintf("matched skills: %s; %s", strings.Join(p.matched, ", "), load)}
	}
	return Choice{AssigneeID: &id, Reason: fmt.Sprintf("%s with %s", why, load), Fallback: true}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
