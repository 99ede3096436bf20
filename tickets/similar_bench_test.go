package tickets_test

import (
	"context"
	"os"
	"slices"
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
// common words and a long tail, as real text has. The two are measured in
// turn in one loop, and the medians reported with their ratio, so that the
// load of a shared machine weighs on both alike. It logs the plan of the
// query on the full desk. The search must stay bounded: the ratio is what
// to watch as the desk grows.
func BenchmarkSimilarCompleted(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("TICKETD_BENCH_TICKETS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	empty := tickets.NewStore(pgtest.New(b))
	pool := pgtest.New(b)
	full := tickets.NewStore(pool)
	req, err := full.CreateUser(ctx, tickets.NewUser{Email: "requester@example.com"})
	if err != nil {
		b.Fatal(err)
	}
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
	// A ticket in the desk's own words: very common ones, and some of the
	// middle and the long tail of the vocabulary, as a real ticket mixes
	// "the printer" with "jams" and "bay 7".
	text := "w3 w41 w2210 w7305 w640\n\nw1 w2 w5 w12 w480 w3071 w15022 w9 w120 w860 w5120 w18007 w4 w33 w1500"
	q := tickets.SimilarQuery{Text: text, Limit: 8}
	var onEmpty, onFull []time.Duration
	for b.Loop() {
		for _, x := range []struct {
			st *tickets.Store
			d  *[]time.Duration
		}{{empty, &onEmpty}, {full, &onFull}} {
			start := time.Now()
			if _, err := x.st.SimilarCompleted(ctx, q); err != nil {
				b.Fatal(err)
			}
			*x.d = append(*x.d, time.Since(start))
		}
	}
	e, f := median(onEmpty), median(onFull)
	b.ReportMetric(float64(e.Microseconds())/1000, "ms-empty")
	b.ReportMetric(float64(f.Microseconds())/1000, "ms-full")
	b.ReportMetric(float64(f)/float64(e), "ratio")
	b.Log("plan on the full desk:\n" + explainSimilar(b, full, text))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
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
