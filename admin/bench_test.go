package admin_test

import (
	"context"
	"net/http"
	"testing"
)

// seedTickets adds n tickets with varied subjects, priorities, statuses and
// assignees in one statement.
func (e *env) seedTickets(n int) {
	e.t.Helper()
	_, err := e.pool.Exec(context.Background(), `
		INSERT INTO tickets (subject, description, requester_id, assignee_id, priority, status, completed_at, skills)
		SELECT 'Ticket ' || i || CASE WHEN i % 10 = 0 THEN ' vpn drops' ELSE ' printer jam' END,
			'body of ticket ' || i || ' with some words about disks, mail and networks',
			$1, CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN $2::bigint ELSE $3::bigint END,
			(ARRAY['low','medium','high'])[1 + i % 3]::ticket_priority,
			(ARRAY['todo','in_progress','completed'])[1 + i % 3]::ticket_status,
			CASE WHEN i % 3 = 2 THEN now() END,
			CASE WHEN i % 5 = 0 THEN ARRAY['postgres'] ELSE ARRAY['billing'] END
		FROM generate_series(1, $4) AS i`, e.req.ID, e.mod.ID, e.mod2.ID, n)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.pool.Exec(context.Background(), `ANALYZE tickets`); err != nil {
		e.t.Fatal(err)
	}
}

// BenchmarkTicketList measures the tickets list page, rendered and sent,
// over 5,000 tickets: the default order, a full-text search, and a
// moderator's filtered view.
func BenchmarkTicketList(b *testing.B) {
	e := newEnv(b)
	e.seedTickets(5000)
	adminC := e.client()
	adminC.signIn(e.admin)
	modC := e.client()
	modC.signIn(e.mod)
	for _, bc := range []struct {
		name string
		c    *client
		path string
	}{
		{"admin default", adminC, "/tickets"},
		{"admin search", adminC, "/tickets?q=vpn"},
		{"admin page 100", adminC, "/tickets?page=100"},
		{"moderator open high", modC, "/tickets?status=todo&priority=high&skill=postgres"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if res := bc.c.get(bc.path); res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}

// BenchmarkAPIList measures GET /api/v1/tickets over 5,000 tickets.
func BenchmarkAPIList(b *testing.B) {
	e := newEnv(b)
	e.seedTickets(5000)
	tok := e.token(e.admin)
	for b.Loop() {
		if res := e.api(tok, "GET", "/tickets?limit=50", ""); res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}
