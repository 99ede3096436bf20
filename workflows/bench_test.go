package workflows

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"ticketd/pgtest"
	"ticketd/tickets"
	"ticketd/workflows/llmfake"
	"ticketd/workflows/triage"
)

// benchTickets are the texts the benchmarks triage, in turn.
var benchTickets = [][2]string{
	{"Production database down", "Our production PostgreSQL stopped accepting connections. Nobody can work."},
	{"Emails land in spam", "Notifications to our customers end up in spam since last week. Could you check DKIM?"},
	{"How do I add a user?", "How do I invite a colleague to our account? No rush."},
	{"VPN drops", "The VPN tunnel drops every hour for the Berlin office."},
	{"Charged twice", "My card was charged twice this month, please refund the duplicate payment."},
}

// BenchmarkTriage measures triage throughput, one ticket per iteration:
//
//   - rules-direct: the rules engine called in-process (with its
//     full-text search on PostgreSQL), the baseline of the same run;
//   - llm-direct: the real langchaingo client and validation against the
//     fake model answering at once, in-process;
//   - devserver-rules and devserver-llm: b.N tickets opened at once (ticket
//     and event in one transaction, as intake does) and triaged through the
//     relay and the real Inngest dev server, until each is In-Progress with
//     both mails queued. These report p50 and p99 from the ticket's commit
//     to its In-Progress commit, both by the database's clock;
//   - devserver-rules-one-at-a-time: the same, each ticket opened after the
//     previous one is done, the latency of one ticket on an idle system.
//
// Run: go test ./workflows -run '^$' -bench Triage -benchtime 200x
func BenchmarkTriage(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.Run("rules-direct", func(b *testing.B) {
		pool := pgtest.New(b)
		st := tickets.NewStore(pool)
		seedCompleted(b, st, 200)
		rules := triage.NewRules(triage.RulesOptions{Similar: st, Logger: quiet})
		benchDirect(b, rules)
	})
	b.Run("llm-direct", func(b *testing.B) {
		fake := startBenchFake(b)
		llm, err := triage.New(context.Background(), triage.Config{Provider: "openai", Model: "fake-triage",
			BaseURL: fake.URL, Concurrency: 1}, triage.NewRules(triage.RulesOptions{}), quiet)
		if err != nil {
			b.Fatal(err)
		}
		benchDirect(b, llm)
	})
	b.Run("devserver-rules", func(b *testing.B) {
		benchDevServer(b, nil, quiet, false)
	})
	b.Run("devserver-rules-one-at-a-time", func(b *testing.B) {
		benchDevServer(b, nil, quiet, true)
	})
	b.Run("devserver-llm", func(b *testing.B) {
		fake := startBenchFake(b)
		llm, err := triage.New(context.Background(), triage.Config{Provider: "openai", Model: "fake-triage",
			BaseURL: fake.URL, Concurrency: 16}, triage.NewRules(triage.RulesOptions{}), quiet)
		if err != nil {
			b.Fatal(err)
		}
		benchDevServer(b, llm, quiet, false)
	})
}

func startBenchFake(b *testing.B) *llmfake.Server {
	fake, err := llmfake.Start(llmfake.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fake.Close)
	return fake
}

func seedCompleted(b *testing.B, st *tickets.Store, n int) {
	ctx := context.Background()
	u, err := st.CreateUser(ctx, tickets.NewUser{Email: "old@example.org"})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		tk := benchTickets[i%len(benchTickets)]
		t, err := st.CreateTicket(ctx, tickets.NewTicket{Subject: fmt.Sprintf("%s (%d)", tk[0], i), Description: tk[1], RequesterID: u.ID})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.InTx(ctx, func(tx *tickets.Store) error {
			_, err := tx.SetStatus(ctx, t.ID, tickets.StatusCompleted, tickets.Actor{Channel: tickets.ChannelSystem})
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDirect(b *testing.B, a triage.Analyzer) {
	ctx := context.Background()
	vocab := []string{"accounts", "billing", "email", "networking", "postgres"}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		tk := benchTickets[i%len(benchTickets)]
		if _, _, err := a.Analyze(ctx, triage.Input{TicketID: int64(i + 1000), Subject: tk[0], Body: tk[1], Vocabulary: vocab}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Minutes(), "tickets/min")
}

// benchDevServer opens b.N tickets at once, or, serial, each after the
// previous one is triaged (the latency of one ticket on an idle system).
func benchDevServer(b *testing.B, a triage.Analyzer, log *slog.Logger, serial bool) {
	ctx := context.Background()
	s := newStack(b, stackOptions{analyzer: a, log: log})
	p := seedPeople(b, s.store)
	// Warm up: the first run of a function is slower.
	warm := openTicket(b, s.store, p.requester.ID, benchTickets[0][0], benchTickets[0][1])
	waitFor(b, "the warm-up ticket", triaged(s.store, warm.ID))

	b.ResetTimer()
	start := time.Now()
	ids := make([]int64, b.N)
	for i := range ids {
		tk := benchTickets[i%len(benchTickets)]
		ids[i] = openTicket(b, s.store, p.requester.ID, tk[0], tk[1]).ID
		if serial {
			waitFor(b, "the ticket's triage", triaged(s.store, ids[i]))
		}
	}
	waitFor(b, "every ticket's triage", func() (bool, error) {
		var n int
		err := s.store.DB().QueryRow(ctx, `
			SELECT count(*) FROM tickets t WHERE t.id = ANY($1) AND t.status = 'in_progress'
				AND (SELECT count(*) FROM mail_outbox m WHERE m.ticket_id = t.id) = 2`, ids).Scan(&n)
		return n == len(ids), err
	})
	elapsed := time.Since(start)
	b.StopTimer()

	rows, err := s.store.DB().Query(ctx, `SELECT EXTRACT(EPOCH FROM triaged_at - created_at) * 1000
		FROM tickets WHERE id = ANY($1)`, ids)
	if err != nil {
		b.Fatal(err)
	}
	var ms []float64
	for rows.Next() {
		var v float64
		if err := rows.Scan(&v); err != nil {
			b.Fatal(err)
		}
		ms = append(ms, v)
	}
	rows.Close()
	slices.Sort(ms)
	pct := func(q float64) float64 { return ms[min(len(ms)-1, int(q*float64(len(ms))))] }
	b.ReportMetric(float64(b.N)/elapsed.Minutes(), "tickets/min")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
