package workflows

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/pgtest"
	"ticketd/testlog"
	"ticketd/tickets"
	"ticketd/workflows/inngesttest"
	"ticketd/workflows/llmfake"
	"ticketd/workflows/triage"
)

func triaged(st *tickets.Store, id int64) func() (bool, error) {
	return func() (bool, error) {
		n, err := notifiedCount(st, id)
		if err != nil {
			return false, err
		}
		t, err := st.Ticket(context.Background(), id)
		return err == nil && t.TriagedAt != nil && n >= 2, err
	}
}

func notifiedCount(st *tickets.Store, id int64) (int, error) {
	var n int
	err := st.DB().QueryRow(context.Background(), `SELECT count(*) FROM mail_outbox WHERE ticket_id = $1`, id).Scan(&n)
	return n, err
}

func eventRowID(t testing.TB, st *tickets.Store, ticketID int64, name string) int64 {
	t.Helper()
	var id int64
	if err := st.DB().QueryRow(context.Background(), `SELECT id FROM event_outbox WHERE ticket_id = $1 AND name = $2
		ORDER BY id LIMIT 1`, ticketID, name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestTriageEndToEnd: a new ticket goes through the real dev server and is
// triaged by the rules engine, assigned to the moderator with the matching
// skills, set In-Progress, and both mails are queued; sending its event
// again runs nothing twice.
func TestTriageEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	ctx := context.Background()
	p := seedPeople(t, s.store)
	tk := openTicket(t, s.store, p.requester.ID, "Production database down",
		"Our production PostgreSQL stopped accepting connections 10 minutes ago. Nobody can work. Please help urgently.")
	waitFor(t, "the ticket's triage", triaged(s.store, tk.ID))

	got, err := s.store.Ticket(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != tickets.StatusInProgress || got.Priority != tickets.PriorityHigh ||
		got.AssigneeID == nil || *got.AssigneeID != p.pg.ID || !slices.Equal(got.Skills, []string{"postgres"}) {
		t.Errorf("ticket after triage: status %s priority %s assignee %v skills %v", got.Status, got.Priority, got.AssigneeID, got.Skills)
	}
	if got.AssignmentReason != "matched skills: postgres; 0 open tickets" {
		t.Errorf("assignment reason %q", got.AssignmentReason)
	}
	// The rules engine writes no first response of its own: the requester
	// gets the acknowledgement alone, not a second thank-you.
	if !strings.Contains(got.HelpfulNotes, "rules engine") || got.Summary == "" || got.FirstResponse != "" || got.Category != "incident" {
		t.Errorf("triage fields: summary %q category %q first response %q notes %q", got.Summary, got.Category, got.FirstResponse, got.HelpfulNotes)
	}
	want := []mail{
		{"acknowledgement", triageKey(tk.ID, "acknowledgement"), "ann@example.org"},
		{"assignment", triageKey(tk.ID, "assignment"), "pg@example.com"},
	}
	if diff := cmp.Diff(want, mails(t, s.store, tk.ID)); diff != "" {
		t.Errorf("queued mails (-want +got):\n%s", diff)
	}
	decisions, err := s.store.AIDecisions(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(decisions) != 1 || decisions[0].Provider != "rules" || decisions[0].PromptVersion != triage.RulesVersion ||
		len(decisions[0].InputHash) != 32 || decisions[0].Output == nil {
		t.Errorf("decisions: %+v", decisions)
	}
	trail, err := s.store.AuditTrail(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ai []string
	for _, e := range trail {
		if e.Channel == tickets.ChannelAI {
			ai = append(ai, e.Action)
		}
	}
	if diff := cmp.Diff([]string{"triage", "assign", "status"}, ai); diff != "" {
		t.Errorf("audit by the AI (-want +got):\n%s", diff)
	}

	// The relay sends the same outbox row again (as after a crash between
	// the send and the commit): Inngest knows the event id and starts no
	// second run.
	evID := eventRowID(t, s.store, tk.ID, tickets.EventCreated)
	if _, err := s.store.DB().Exec(ctx, `UPDATE event_outbox SET sent_at = NULL WHERE id = $1`, evID); err != nil {
		t.Fatal(err)
	}
	// Only inserts notify; wake the relay as its restart would.
	if _, err := s.store.DB().Exec(ctx, `SELECT pg_notify($1, '')`, tickets.EventsChannel); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resend", func() (bool, error) {
		var sent bool
		err := s.store.DB().QueryRow(ctx, `SELECT sent_at IS NOT NULL FROM event_outbox WHERE id = $1`, evID).Scan(&sent)
		return sent, err
	})
	// A second ticket after the resend, to know the engine has moved on.
	tk2 := openTicket(t, s.store, p.requester.ID, "Invoice question", "How do I download last month's invoice?")
	waitFor(t, "the second ticket's triage", triaged(s.store, tk2.ID))
	if n := s.inv.count(FnTriage, EventID(evID)); n != 1 {
		t.Errorf("event %s started %d triage runs, want 1", EventID(evID), n)
	}
	if n, _ := notifiedCount(s.store, tk.ID); n != 2 {
		t.Errorf("%d mails for the first ticket after the resend, want 2", n)
	}
	t2, _ := s.store.Ticket(ctx, tk2.ID)
	if t2.AssigneeID == nil || *t2.AssigneeID != p.mail.ID || t2.Priority != tickets.PriorityLow {
		t.Errorf("second ticket: assignee %v priority %s, want mail@ and low", t2.AssigneeID, t2.Priority)
	}
}

// TestNoEventLostWhileInngestIsDown stops the dev server, opens tickets,
// starts it again: every ticket is triaged, once.
func TestNoEventLostWhileInngestIsDown(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	ctx := context.Background()
	p := seedPeople(t, s.store)
	if err := s.wf.Ready(ctx); err != nil {
		t.Fatalf("Ready with the dev server up: %v", err)
	}

	s.dev.Stop()
	if err := s.wf.Ready(ctx); err == nil {
		t.Error("Ready says the engine is there while it is stopped")
	}
	var ids []int64
	for i, subj := range []string{"VPN down for the office", "Emails land in spam", "Slow query on Postgres", "Refund please", "How do I add a user?"} {
		tk := openTicket(t, s.store, p.requester.ID, subj, "Ticket number "+string(rune('A'+i))+". "+subj+".")
		ids = append(ids, tk.ID)
	}
	waitFor(t, "the relay to fail at least once for each event", func() (bool, error) {
		var n int
		err := s.store.DB().QueryRow(ctx, `SELECT count(*) FROM event_outbox
			WHERE sent_at IS NULL AND attempts > 0 AND last_error <> ''`).Scan(&n)
		return n == len(ids), err
	})
	for _, id := range ids {
		if tk, _ := s.store.Ticket(ctx, id); tk.TriagedAt != nil {
			t.Fatalf("ticket %d triaged with the engine down", id)
		}
	}

	s.dev.Restart(t)
	s.dev.Sync(t, s.appURL, 5)
	for _, id := range ids {
		waitFor(t, "triage after the restart", triaged(s.store, id))
	}
	for _, id := range ids {
		d, err := s.store.AIDecisions(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != 1 {
			t.Errorf("ticket %d has %d decisions, want 1", id, len(d))
		}
		if n, _ := notifiedCount(s.store, id); n != 2 {
			t.Errorf("ticket %d has %d mails, want 2", id, n)
		}
		if n := s.inv.count(FnTriage, EventID(eventRowID(t, s.store, id, tickets.EventCreated))); n != 1 {
			t.Errorf("ticket %d: %d triage runs, want 1", id, n)
		}
	}
	var unsent int
	if err := s.store.DB().QueryRow(ctx, `SELECT count(*) FROM event_outbox WHERE sent_at IS NULL`).Scan(&unsent); err != nil || unsent != 0 {
		t.Errorf("%d events unsent (%v)", unsent, err)
	}
}

// TestTriageWithModel runs triage through the dev server with the real
// langchaingo client against the fake model: a good answer is used; a model
// that answers 429 every time is retried by Inngest, and on the last attempt
// the rules engine decides.
func TestTriageWithModel(t *testing.T) {
	t.Parallel()
	fake, err := llmfake.Start(llmfake.Options{Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	log := testlog.New(t)
	rules := triage.NewRules(triage.RulesOptions{})
	llm, err := triage.New(context.Background(), triage.Config{Provider: "openai", Model: "fake-triage",
		BaseURL: fake.URL, Timeout: 2 * time.Second}, rules, log)
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{analyzer: llm, retries: 1, log: log})
	ctx := context.Background()
	p := seedPeople(t, s.store)

	good := openTicket(t, s.store, p.requester.ID, "Mail server rejects everything",
		"Our mail server rejects all incoming email since 14:00. Customers can't reach us. This is an outage.")
	waitFor(t, "triage by the model", triaged(s.store, good.ID))
	tk, _ := s.store.Ticket(ctx, good.ID)
	if tk.AssigneeID == nil || *tk.AssigneeID != p.mail.ID || tk.Priority != tickets.PriorityHigh {
		t.Errorf("model triage: assignee %v priority %s", tk.AssigneeID, tk.Priority)
	}
	d, _ := s.store.AIDecisions(ctx, good.ID)
	if len(d) != 1 || d[0].Provider != "openai" || d[0].Model != "fake-triage" || d[0].Error != "" {
		t.Errorf("decisions: %+v", d)
	}

	fake.SetScenario(llmfake.RateLimited)
	limited := openTicket(t, s.store, p.requester.ID, "DNS change", "Please point app.example.org to the new load balancer when you have time.")
	waitFor(t, "triage with the model rate limited", triaged(s.store, limited.ID))
	d, _ = s.store.AIDecisions(ctx, limited.ID)
	var providers []string
	for _, x := range d {
		providers = append(providers, x.Provider)
	}
	if diff := cmp.Diff([]string{"openai", "openai", "rules"}, providers); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	if len(d) == 3 && (!strings.Contains(d[0].Error, "429") || !strings.Contains(d[2].Error, "decided by the rules engine")) {
		t.Errorf("decision errors %q / %q", d[0].Error, d[2].Error)
	}
	var out triage.Result
	if len(d) == 3 {
		_ = json.Unmarshal(d[2].Output, &out)
	}
	tk, _ = s.store.Ticket(ctx, limited.ID)
	if out.Engine != "rules" || tk.AssigneeID == nil || *tk.AssigneeID != p.pg.ID || tk.Status != tickets.StatusInProgress {
		t.Errorf("fallback triage: engine %q assignee %v status %s", out.Engine, tk.AssigneeID, tk.Status)
	}
}

// TestTicketEvents runs the other workflows through the dev server: a
// manual assignment mails the new and the previous moderator, completion
// mails the requester (and the status change to Completed adds nothing), a
// requester's reply is forwarded to the assignee, a moderator's is not.
func TestTicketEvents(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	ctx := context.Background()
	p := seedPeople(t, s.store)
	tk := openTicket(t, s.store, p.requester.ID, "Replica lag", "Our Postgres replica is 3 hours behind.")
	waitFor(t, "triage", triaged(s.store, tk.ID))

	admin := tickets.Actor{UserID: &p.admin.ID, Channel: tickets.ChannelWeb}
	err := s.store.InTx(ctx, func(tx *tickets.Store) error {
		_, err := tx.Assign(ctx, tk.ID, p.mail.ID, "by hand", admin)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	assigned := EventID(eventRowID(t, s.store, tk.ID, tickets.EventAssigned))
	waitFor(t, "the assignment mails", func() (bool, error) { n, err := notifiedCount(s.store, tk.ID); return n == 4, err })

	reply := func(author tickets.User) int64 {
		var id int64
		err := s.store.InTx(ctx, func(tx *tickets.Store) error {
			m, err := tx.InsertMessage(ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound, Kind: tickets.KindReply,
				AuthorID: &author.ID, MessageID: "reply-" + author.Email + "@example.org", FromAddress: author.Email,
				TextBody: "Any news?", ReplyText: "Any news?"})
			if err != nil {
				return err
			}
			id = m.ID
			_, err = tx.EnqueueEvent(ctx, tickets.EventReplied, tk.ID, map[string]any{"ticket_id": tk.ID, "message_id": m.ID, "author_id": author.ID})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	reply(p.mail) // staff: not forwarded
	reply(p.requester)
	waitFor(t, "the forwarded reply", func() (bool, error) { n, err := notifiedCount(s.store, tk.ID); return n == 5, err })

	err = s.store.InTx(ctx, func(tx *tickets.Store) error {
		_, err := tx.SetStatus(ctx, tk.ID, tickets.StatusCompleted, tickets.Actor{UserID: &p.mail.ID, Channel: tickets.ChannelMail})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	completed := EventID(eventRowID(t, s.store, tk.ID, tickets.EventCompleted))
	waitFor(t, "the completion mail", func() (bool, error) { n, err := notifiedCount(s.store, tk.ID); return n == 6, err })
	statusEv := EventID(eventRowID(t, s.store, tk.ID, tickets.EventStatusChanged))
	waitFor(t, "the status workflow", func() (bool, error) { return s.inv.count(FnStatusChanged, statusEv) == 1, nil })

	var fwdRow int64 // the requester's reply, which came second
	if err := s.store.DB().QueryRow(ctx, `SELECT max(id) FROM event_outbox WHERE ticket_id = $1 AND name = $2`,
		tk.ID, tickets.EventReplied).Scan(&fwdRow); err != nil {
		t.Fatal(err)
	}
	forwarded := EventID(fwdRow)
	want := []mail{
		{"acknowledgement", triageKey(tk.ID, "acknowledgement"), "ann@example.org"},
		{"assignment", triageKey(tk.ID, "assignment"), "pg@example.com"},
		{"assignment", assigned + "/assignment", "mail@example.com"},
		{"reassignment", assigned + "/reassignment", "pg@example.com"},
		{"forward", forwarded + "/forward", "mail@example.com"},
		{"completion", completed + "/completion", "ann@example.org"},
	}
	got := mails(t, s.store, tk.ID)
	slices.SortStableFunc(got[2:4], func(a, b mail) int { return strings.Compare(a.Kind, b.Kind) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queued mails (-want +got):\n%s", diff)
	}
}

// TestEventsWaitForTheDevServerToSync: a dev server that has not synced
// ticketd's functions (just started, or restarted) would take events and
// start nothing; the relay holds them until the functions are there.
func TestEventsWaitForTheDevServerToSync(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{unsynced: true})
	ctx := context.Background()
	p := seedPeople(t, s.store)
	tk := openTicket(t, s.store, p.requester.ID, "VPN down", "The VPN is down for the whole office.")
	waitFor(t, "the relay to hold the event", func() (bool, error) {
		var held bool
		err := s.store.DB().QueryRow(ctx, `SELECT sent_at IS NULL AND last_error LIKE '%not synced%'
			FROM event_outbox WHERE ticket_id = $1`, tk.ID).Scan(&held)
		return held, err
	})
	if n, err := s.dev.Functions(); err != nil || n != 0 {
		t.Fatalf("the dev server knows %d functions (%v)", n, err)
	}
	s.dev.Sync(t, s.appURL, 5)
	waitFor(t, "triage after the sync", triaged(s.store, tk.ID))
}

// TestTriageUpdateAnswerLost: through the dev server, the update step
// commits but its answer to Inngest is lost once (a 502 from a proxy, a
// crash after COMMIT). Inngest runs the step again; the requester and the
// assignee are each mailed once all the same.
func TestTriageUpdateAnswerLost(t *testing.T) {
	pool := pgtest.New(t)
	st := tickets.NewStore(pool)
	var (
		mu      sync.Mutex
		handler http.Handler = http.NotFoundHandler()
		dropped bool
	)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := handler
		mu.Unlock()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.String()
		mu.Lock()
		drop := !dropped && r.Method == http.MethodPost && strings.Contains(body, `"update"`)
		if drop {
			dropped = true
		}
		mu.Unlock()
		if drop {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(app.Close)
	appURL := app.URL + "/api/inngest"
	dev := inngesttest.Start(t, inngesttest.Options{AppURL: appURL})
	wf, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, Logger: testlog.New(t), Dev: dev.URL, RelayPoll: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/inngest", wf.Handler())
	mu.Lock()
	handler = mux
	mu.Unlock()
	dev.Sync(t, appURL, 5)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wf.RunRelay(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	p := seedPeople(t, st)
	tk := openTicket(t, st, p.requester.ID, "Replica lag", "Our Postgres replica lags.")
	waitFor(t, "triage and the dropped response", func() (bool, error) {
		got, err := st.Ticket(context.Background(), tk.ID)
		mu.Lock()
		d := dropped
		mu.Unlock()
		return err == nil && got.TriagedAt != nil && d, err
	})
	waitFor(t, "the run to end", func() (bool, error) {
		var ended bool
		err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM mail_outbox WHERE ticket_id = $1)`, tk.ID).Scan(&ended)
		return ended, err
	})
	if diff := cmp.Diff([]string{"acknowledgement " + p.requester.Email, "assignment " + p.pg.Email}, kinds(mails(t, st, tk.ID))); diff != "" {
		t.Errorf("mails (-want +got):\n%s", diff)
	}
}
