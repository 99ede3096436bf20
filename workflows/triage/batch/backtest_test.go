package batch_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"ticketd/pgtest"
	"ticketd/tickets"
	"ticketd/workflows/triage"
	"ticketd/workflows/triage/batch"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// topic is a kind of ticket a desk gets again and again, and what its staff
// settle on for it. Where the desk's way differs from what the rules read
// (corrected), staff corrected the engine on most such tickets.
type topic struct {
	subject, body string
	priority      tickets.Priority
	skills        []string
	corrected     bool
}

// deskTopics are the tickets of a warehouse business whose staff route and
// rate some kinds of ticket their own way: shipping labels are urgent and
// the warehouse team's; closed posting periods belong to SAP, not billing;
// slow meeting-room Wi-Fi waits; reception scanners stop visitors at the
// door.
var deskTopics = []topic{
	{"Label printer in bay %d jams", "The label printer in bay %d jams every few labels since %s. The pickers print their labels at bay %d meanwhile.",
		tickets.PriorityHigh, []string{"warehouse"}, true},
	{"Posting period closed for cost centre %d", "We cannot book the supplier invoices on cost centre %d: the posting period %s is closed. Could you open it for %d days?",
		tickets.PriorityMedium, []string{"sap"}, true},
	{"Wi-Fi slow in meeting room %d", "The Wi-Fi in meeting room %d is slow in the afternoons since %s and video calls stutter. Room %d is fine.",
		tickets.PriorityLow, []string{"networking"}, true},
	{"Reception scanner %d shows error E%d", "The ID scanner at reception desk %d shows error E%d since %s when we scan visitor cards, so badges cannot be printed.",
		tickets.PriorityHigh, []string{"frontdesk"}, true},
	{"Password reset for %s", "Please reset the password of %s in the %s team, the account is locked after the holiday. She is back on %s.",
		tickets.PriorityMedium, []string{"accounts"}, false},
	{"Invoice copy for %s", "Could you send me a copy of your invoice for %s? Our auditor asks for it, reference %d.",
		tickets.PriorityLow, []string{"billing"}, false},
}

var (
	names  = []string{"Ana", "Ben", "Chiara", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kira", "Lars"}
	teams  = []string{"sales", "finance", "logistics", "purchasing", "support", "quality"}
	months = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October"}
)

// fill writes a topic's template with varied names, numbers and dates.
func fill(r *rand.Rand, tmpl string) string {
	var args []any
	for i := 0; i+1 < len(tmpl); i++ {
		if tmpl[i] != '%' {
			continue
		}
		switch tmpl[i+1] {
		case 'd':
			args = append(args, 1+r.IntN(40))
		case 's':
			switch r.IntN(3) {
			case 0:
				args = append(args, names[r.IntN(len(names))])
			case 1:
				args = append(args, teams[r.IntN(len(teams))])
			default:
				args = append(args, months[r.IntN(len(months))])
			}
		}
	}
	return fmt.Sprintf(tmpl, args...)
}

// TestBackTestLearnsFromHistory: on a desk whose 2,000 Completed tickets
// carry what staff settled on, correcting the rules on four kinds of ticket,
// the back-test with history beats the rules alone on the newer tickets,
// for priority and for skills, and every ticket it measures was opened
// after the history it learned from.
func TestBackTestLearnsFromHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	st := tickets.NewStore(pool)
	req, err := st.CreateUser(ctx, tickets.NewUser{Email: "requester@shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	for i, skills := range [][]string{nil, {"warehouse", "printing"}, {"sap", "billing"}, {"networking"}, {"frontdesk", "accounts"}, {"billing", "accounts"}} {
		role := tickets.RoleModerator
		if i == 0 {
			role = tickets.RoleAdmin
		}
		if _, err := st.CreateUser(ctx, tickets.NewUser{Email: fmt.Sprintf("staff%d@shop.example", i), Role: role, Skills: skills}); err != nil {
			t.Fatal(err)
		}
	}
	vocab, err := st.SkillVocabulary(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The rules alone read the corrected topics otherwise than the desk
	// settles them: else this test would measure nothing.
	rules := triage.NewRules(triage.RulesOptions{})
	r := rand.New(rand.NewPCG(1, 2))
	for _, tp := range deskTopics {
		res, _, err := rules.Analyze(ctx, triage.Input{Subject: fill(r, tp.subject), Body: fill(r, tp.body), Vocabulary: vocab})
		if err != nil {
			t.Fatal(err)
		}
		same := res.Priority == tp.priority && slices.Equal(res.Skills, tp.skills)
		if same == tp.corrected {
			t.Fatalf("topic %q: the rules read %s %v, the desk settles %s %v; corrected is %v", tp.subject, res.Priority, res.Skills, tp.priority, tp.skills, tp.corrected)
		}
	}

	// 2,000 Completed tickets over 200 days, in one statement. On one in
	// ten of the corrected kinds, staff let the engine's reading stand.
	const n = 2000
	var subjects, bodies, prios, skills []string
	var created []time.Time
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	for i := range n {
		tp := deskTopics[r.IntN(len(deskTopics))]
		subject, body := fill(r, tp.subject), fill(r, tp.body)
		prio, sk := tp.priority, tp.skills
		if tp.corrected && r.IntN(10) == 0 {
			res, _, err := rules.Analyze(ctx, triage.Input{Subject: subject, Body: body, Vocabulary: vocab})
			if err != nil {
				t.Fatal(err)
			}
			prio, sk = res.Priority, res.Skills
		}
		subjects, bodies = append(subjects, subject), append(bodies, body)
		prios, skills = append(prios, string(prio)), append(skills, strings.Join(sk, ","))
		created = append(created, start.Add(time.Duration(i)*150*time.Minute))
	}
	began := time.Now()
	if _, err := pool.Exec(ctx, `
		INSERT INTO tickets (subject, description, requester_id, status, priority, skills, created_at, updated_at,
			triaged_at, completed_at, search)
		SELECT s, d, $1, 'completed', p::ticket_priority, string_to_array(nullif(k, ''), ','), c, c, c, c + interval '2 hours',
			ticket_search_document(s, '', d)
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS x(s, d, p, k, c)`,
		req.ID, subjects, bodies, prios, skills, created); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE tickets`); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Completed tickets written in %s", n, time.Since(began).Round(time.Millisecond))

	rep, err := batch.BackTest(ctx, st, batch.BackTestOptions{Tickets: n, Learn: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Learned != 1800 || rep.Measured != 200 || !rep.Split.Equal(created[1800]) {
		t.Fatalf("learned from %d, measured %d from %s; want 1800, 200 from %s", rep.Learned, rep.Measured, rep.Split, created[1800])
	}
	var b strings.Builder
	rep.RulesAlone.WriteText(&b, false)
	b.WriteString("\n")
	rep.WithHistory.WriteText(&b, false)
	t.Logf("history decided %d of %d\n%s", rep.UsedHistory, rep.Measured, b.String())
	alone, with := rep.RulesAlone.Rates, rep.WithHistory.Rates
	if with.PriorityExact <= alone.PriorityExact || with.SkillsExact <= alone.SkillsExact {
		t.Errorf("with history: priority %.3f, skills %.3f; rules alone: %.3f, %.3f: the history does not help",
			with.PriorityExact, with.SkillsExact, alone.PriorityExact, alone.SkillsExact)
	}
	if with.PriorityExact < 0.85 || with.SkillsExact < 0.85 {
		t.Errorf("with history: priority exact %.3f, skills exact %.3f; want at least 0.85 each", with.PriorityExact, with.SkillsExact)
	}
}
