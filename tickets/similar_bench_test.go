package tickets_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"ticketd/pgtest"
	"ticketd/tickets"
)

// BenchmarkSimilarCompleted measures the similar-ticket search that triage
// runs for every new ticket, on an empty desk (the baseline) and on a desk of
// TICKETD_BENCH_TICKETS Completed tickets (default 20,000), each a
// description of 60 words drawn from a vocabulary of 20,000 with a few very
// common words and a long tail, as real text has. It logs the plan of the
// query on the full desk. The search must stay bounded: the ratio of the two
// timings is what to watch as the desk grows.
func BenchmarkSimilarCompleted(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("TICKETD_BENCH_TICKETS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	pool := pgtest.New(b)
	st := tickets.NewStore(pool)
	req, err := st.CreateUser(ctx, tickets.NewUser{Email: "requester@example.com"})
	if err != nil {
		b.Fatal(err)
	}
	text := "Label printer in bay 7 jams\n\nThe zebra label printer at the packing station jams every few labels since the driver update; " +
		"w12 w480 w3071 w15022 our pickers print at bay 9 meanwhile."
	search := func(b *testing.B) {
		for b.Loop() {
			if _, err := st.SimilarCompleted(ctx, tickets.SimilarQuery{Text: text, Limit: 8}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("empty", search)

	began := time.Now()
	// Word i of the vocabulary is drawn with a probability falling as a
	// power of its rank: w1 is in most descriptions, w19999 in few.
	if _, err := pool.Exec(ctx, `
		INSERT INTO tickets (subject, description, requester_id, status, priority, created_at, updated_at, completed_at, search)
		SELECT subject, description, $1, 'completed', 'medium', c, c, c + interval '1 hour',
			ticket_search_document(subject, '', description)
		FROM (
			SELECT g, now() - (($2 - g) * interval '1 minute') AS c,
				(SELECT string_agg('w' || (1 + floor(power(random(), 4) * 20000))::int, ' ') FROM generate_series(1, 6 + (g % 2))) AS subject,
				(SELECT string_agg('w' || (1 + floor(power(random(), 4) * 20000))::int, ' ') FROM generate_series(1, 60 + (g % 2))) AS description
			FROM generate_series(1, $2) g) x`, req.ID, n); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE tickets`); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d Completed tickets written and analysed in %s", n, time.Since(began).Round(time.Second))
	b.Run(fmt.Sprintf("tickets=%d", n), search)
	b.Log("plan on the full desk:\n" + explainSimilar(b, st, text))
}

// explainSimilar runs the search's statement under EXPLAIN ANALYZE, with
// the bounds the search sets.
func explainSimilar(b *testing.B, st *tickets.Store, text string) string {
	var plan strings.Builder
	err := tickets.ExplainSimilar(context.Background(), st, tickets.SimilarQuery{Text: text, Limit: 8}, &plan)
	if err != nil {
		b.Fatal(err)
	}
	return plan.String()
}
