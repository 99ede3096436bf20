package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"ticketd/pgtest"
	"ticketd/testlog"
	"ticketd/tickets"
	"ticketd/workflows/triage"
)

func TestNotConfigured(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	st := tickets.NewStore(pool)
	p := seedPeople(t, st)
	w, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if w.Configured() {
		t.Error("configured without INNGEST_DEV or INNGEST_EVENT_KEY")
	}
	if err := w.Ready(context.Background()); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("Ready = %v, want ErrNotConfigured", err)
	}
	tk := openTicket(t, st, p.requester.ID, "VPN", "The VPN is down.")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.RunRelay(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunRelay = %v", err)
	}
	var sent bool
	if err := pool.QueryRow(context.Background(), `SELECT sent_at IS NOT NULL FROM event_outbox WHERE ticket_id = $1`, tk.ID).Scan(&sent); err != nil || sent {
		t.Errorf("the event left the outbox (%v)", err)
	}
}

func TestNewChecksSettings(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	for _, tc := range []struct {
		name    string
		opts    Options
		problem string
	}{
		{"event key without signing key", Options{EventKey: "k"}, "needs both INNGEST_EVENT_KEY and INNGEST_SIGNING_KEY"},
		{"self-hosted without keys", Options{BaseURL: "http://inngest.internal:8288"}, "needs both"},
		{"self-hosted without its way back", Options{BaseURL: "http://inngest.internal:8288", EventKey: "e",
			SigningKey: "signkey-prod-00"}, "INNGEST_SERVE_HOST"},
		{"base URL not absolute", Options{Dev: "1", BaseURL: "localhost:8288"}, "not an absolute URL"},
		{"no notifier", Options{Dev: "1", Notifier: nil}, "Notifier is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Pool = pool
			if tc.name != "no notifier" {
				o.Notifier = outboxNotifier{}
			}
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("New = %v, want an error about %q", err, tc.problem)
			}
		})
	}
	for _, dev := range []string{"1", "http://127.0.0.1:9", "true"} {
		w, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, Dev: dev})
		if err != nil || !w.Configured() {
			t.Errorf("INNGEST_DEV=%s: %v, configured %v", dev, err, w != nil && w.Configured())
		}
	}
	if w, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, Dev: "0"}); err != nil || w.Configured() {
		t.Errorf("INNGEST_DEV=0 configures the dev server (%v)", err)
	}
	w, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, BaseURL: "http://inngest.internal:8288", EventKey: "e",
		SigningKey: "signkey-prod-00", ServeOrigin: "https://desk.example.com"})
	if err != nil || !w.Configured() {
		t.Errorf("self-hosted with keys: %v", err)
	}
}

// TestSweepReemitsLostTriage: a ticket whose ticket.created went out long
// ago and which is still not triaged gets its event again, at most twice.
func TestSweepReemitsLostTriage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	st := tickets.NewStore(pool)
	p := seedPeople(t, st)
	w, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, Logger: testlog.New(t), Dev: "1", RetriageAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lost := openTicket(t, st, p.requester.ID, "Lost", "The engine lost this run.")
	fresh := openTicket(t, st, p.requester.ID, "Fresh", "Just sent.")
	waiting := openTicket(t, st, p.requester.ID, "Waiting", "Never sent: Inngest is down.")
	backdate := func(q string, args ...any) {
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	backdate(`UPDATE tickets SET created_at = now() - interval '1 hour'`)
	backdate(`UPDATE event_outbox SET sent_at = now() - interval '1 hour' WHERE ticket_id = $1`, lost.ID)
	backdate(`UPDATE event_outbox SET sent_at = now() WHERE ticket_id = $1`, fresh.ID)
	_ = waiting

	sweep := func(want int, why string) {
		t.Helper()
		n, err := w.sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("%s: re-emitted %d, want %d", why, n, want)
		}
	}
	lostAgain := func() { // the relay sent the new event; the engine lost it too
		backdate(`UPDATE event_outbox SET sent_at = now() - interval '1 hour' WHERE ticket_id = $1`, lost.ID)
	}
	sweep(1, "first sweep")
	sweep(0, "while the re-emitted event waits in the outbox")
	lostAgain()
	sweep(1, "lost again")
	lostAgain()
	sweep(0, "after two re-emissions")
	var events int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM event_outbox WHERE ticket_id = $1 AND name = 'ticket.created'`, lost.ID).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != maxCreatedEvents {
		t.Errorf("%d ticket.created events for the lost ticket, want %d", events, maxCreatedEvents)
	}
}

// TestRulesSimilarTickets: the rules engine's notes list Completed tickets
// that PostgreSQL full-text search finds similar, best first.
func TestRulesSimilarTickets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	st := tickets.NewStore(pool)
	p := seedPeople(t, st)
	done := tickets.Actor{UserID: &p.admin.ID, Channel: tickets.ChannelWeb}
	mk := func(subject, body string, complete bool) tickets.Ticket {
		tk, err := st.CreateTicket(ctx, tickets.NewTicket{Subject: subject, Description: body, RequesterID: p.requester.ID})
		if err != nil {
			t.Fatal(err)
		}
		if complete {
			if err := st.InTx(ctx, func(tx *tickets.Store) error {
				_, err := tx.SetStatus(ctx, tk.ID, tickets.StatusCompleted, done)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		return tk
	}
	vpn := mk("VPN drops every hour", "The VPN tunnel drops every hour and reconnects after a minute.", true)
	vpn2 := mk("VPN slow", "The VPN is slow in the afternoon.", true)
	mk("VPN tunnel drops again", "Same as last week, the VPN tunnel drops.", false) // not completed
	mk("Invoice copy", "Please send a copy of the invoice.", true)
	tk := mk("VPN tunnel keeps dropping", "Since Monday our VPN tunnel drops every few minutes.", false)

	rules := triage.NewRules(triage.RulesOptions{Similar: st})
	res, _, err := rules.Analyze(ctx, triage.Input{TicketID: tk.ID, Subject: tk.Subject, Body: tk.Description,
		Vocabulary: []string{"networking", "billing"}})
	if err != nil {
		t.Fatal(err)
	}
	notes := res.HelpfulNotes
	i, j := strings.Index(notes, "#"+itoa(vpn.ID)+" VPN drops every hour"), strings.Index(notes, "#"+itoa(vpn2.ID)+" VPN slow")
	if i < 0 || j < 0 || i > j {
		t.Errorf("notes do not list the similar tickets best first:\n%s", notes)
	}
	for _, not := range []string{"Invoice copy", "tunnel drops again", "#" + itoa(tk.ID) + " "} {
		if strings.Contains(notes, not) {
			t.Errorf("notes list %q:\n%s", not, notes)
		}
	}
	if !strings.HasPrefix(notes, "Triaged by the rules engine") {
		t.Errorf("the notes do not say the rules engine wrote them:\n%s", notes)
	}
}

func itoa(i int64) string { return EventID(i)[len("ticketd-"):] }

// TestRelaySendsEachEventOnceMore: a while after an event went out, the
// relay sends it once more with the same id, which rescues an event the
// engine took and then lost (Inngest runs an id once, so otherwise the
// second send starts nothing), and never a third time.
func TestRelaySendsEachEventOnceMore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	st := tickets.NewStore(pool)
	p := seedPeople(t, st)
	var mu sync.Mutex
	sends := map[string]int{}
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/dev":
			io.WriteString(w, `{"functions":[{"slug":"ticketd-triage"}]}`)
		case strings.HasPrefix(r.URL.Path, "/e/"):
			var batch []struct {
				ID string `json:"id"`
			}
			if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			ids := []string{}
			mu.Lock()
			for _, e := range batch {
				sends[e.ID]++
				ids = append(ids, "internal-"+e.ID)
			}
			mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"ids": ids, "status": 200})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(engine.Close)
	w, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, Logger: testlog.New(t), Dev: engine.URL,
		ResendAfter: 500 * time.Millisecond, RelayPoll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	relayCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.RunRelay(relayCtx) }()
	t.Cleanup(func() { stop(); <-done })

	tk := openTicket(t, st, p.requester.ID, "Lost in the engine", "Taken, then lost.")
	id := EventID(eventRowID(t, st, tk.ID, tickets.EventCreated))
	count := func() int { mu.Lock(); defer mu.Unlock(); return sends[id] }
	waitFor(t, "the event sent a second time", func() (bool, error) { return count() == 2, nil })
	time.Sleep(1500 * time.Millisecond)
	var pending int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM event_outbox WHERE resend_at IS NOT NULL OR sent_at IS NULL`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != 2 || pending != 0 {
		t.Errorf("event %s sent %d times, %d rows still to send; want 2 and 0", id, got, pending)
	}
}
