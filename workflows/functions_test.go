package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/inngest/inngestgo"

	"ticketd/pgtest"
	"ticketd/testlog"
	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// These tests call the functions directly, without Inngest: outside a run,
// step.Run just runs its step. The dev server tests show the same code
// under Inngest.

func newDirect(t *testing.T, analyzer triage.Analyzer) (*Workflows, *tickets.Store, people) {
	t.Helper()
	pool := pgtest.New(t)
	w, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, Analyzer: analyzer, Logger: testlog.New(t), Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return w, w.store, seedPeople(t, w.store)
}

func input[T any](eventID string, data T, attempt int) inngestgo.Input[T] {
	in := inngestgo.Input[T]{}
	in.Event.ID = &eventID
	in.Event.Data = data
	in.InputCtx.RunID = "run-" + eventID
	in.InputCtx.Attempt = attempt
	return in
}

func kinds(ms []mail) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Kind+" "+m.To)
	}
	return out
}

func TestTriageFunction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, st *tickets.Store, p people) tickets.Ticket
		runs    int
		mails   []string
		status  tickets.Status
	}{
		{
			name: "triaged once though the event runs twice",
			prepare: func(t *testing.T, st *tickets.Store, p people) tickets.Ticket {
				return openTicket(t, st, p.requester.ID, "Emails bounce", "Our newsletter emails bounce since Monday.")
			},
			runs:   2,
			mails:  []string{"acknowledgement ann@example.org", "assignment mail@example.com"},
			status: tickets.StatusInProgress,
		},
		{
			name: "automatic mail gets no acknowledgement",
			prepare: func(t *testing.T, st *tickets.Store, p people) tickets.Ticket {
				tk, err := st.CreateTicket(ctx, tickets.NewTicket{Subject: "[ALERT] disk 91% on db1", Description: "Postgres volume at 91%.",
					RequesterID: p.requester.ID, AutoKind: "auto-generated"})
				if err != nil {
					t.Fatal(err)
				}
				return tk
			},
			runs:   1,
			mails:  []string{"assignment pg@example.com"},
			status: tickets.StatusInProgress,
		},
		{
			name: "a person's assignment before triage stands, and triage does not mail it again",
			prepare: func(t *testing.T, st *tickets.Store, p people) tickets.Ticket {
				tk := openTicket(t, st, p.requester.ID, "Emails bounce", "Our newsletter emails bounce.")
				err := st.InTx(ctx, func(tx *tickets.Store) error {
					_, err := tx.Assign(ctx, tk.ID, p.admin.ID, "I take it", tickets.Actor{UserID: &p.admin.ID, Channel: tickets.ChannelWeb})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return tk
			},
			runs:   1,
			mails:  []string{"acknowledgement ann@example.org"},
			status: tickets.StatusInProgress,
		},
		{
			name: "completed before triage: no acknowledgement",
			prepare: func(t *testing.T, st *tickets.Store, p people) tickets.Ticket {
				tk := openTicket(t, st, p.requester.ID, "Never mind", "Solved it myself, sorry.")
				err := st.InTx(ctx, func(tx *tickets.Store) error {
					_, err := tx.SetStatus(ctx, tk.ID, tickets.StatusCompleted, tickets.Actor{UserID: &p.admin.ID, Channel: tickets.ChannelWeb})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return tk
			},
			runs:   1,
			mails:  []string{"assignment admin@example.com"},
			status: tickets.StatusCompleted,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, st, p := newDirect(t, nil)
			tk := tc.prepare(t, st, p)
			for i := range tc.runs {
				if _, err := w.triageTicket(ctx, input(fmt.Sprintf("ticketd-%d", i+1), createdData{TicketID: tk.ID}, 0)); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.mails, kinds(mails(t, st, tk.ID))); diff != "" {
				t.Errorf("mails (-want +got):\n%s", diff)
			}
			got, _ := st.Ticket(ctx, tk.ID)
			if got.Status != tc.status || got.TriagedAt == nil {
				t.Errorf("status %s, triaged at %v", got.Status, got.TriagedAt)
			}
			if d, _ := st.AIDecisions(ctx, tk.ID); len(d) != 1 {
				t.Errorf("%d decisions, want 1", len(d))
			}
		})
	}
}

// unavailable is a model that never answers.
type unavailable struct{}

func (unavailable) Analyze(ctx context.Context, in triage.Input) (triage.Result, triage.Decision, error) {
	return triage.Result{}, triage.Decision{Provider: "openai", Model: "down", Err: "connection refused"},
		fmt.Errorf("%w: connection refused", triage.ErrUnavailable)
}

func TestTriageFallsBackOnLastAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, st, p := newDirect(t, unavailable{})
	tk := openTicket(t, st, p.requester.ID, "VPN down", "The VPN is down for the whole office.")
	for attempt := range 2 {
		if _, err := w.triageTicket(ctx, input("ticketd-1", createdData{TicketID: tk.ID}, attempt)); err == nil {
			t.Fatalf("attempt %d succeeded with the model down", attempt)
		}
	}
	if got, _ := st.Ticket(ctx, tk.ID); got.TriagedAt != nil {
		t.Fatal("triaged before the last attempt")
	}
	if _, err := w.triageTicket(ctx, input("ticketd-1", createdData{TicketID: tk.ID}, 2)); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Ticket(ctx, tk.ID)
	if got.Status != tickets.StatusInProgress || got.AssigneeID == nil || *got.AssigneeID != p.pg.ID {
		t.Errorf("after the fallback: %s, assignee %v", got.Status, got.AssigneeID)
	}
	d, _ := st.AIDecisions(ctx, tk.ID)
	var rows []string
	for _, x := range d {
		rows = append(rows, fmt.Sprintf("%s valid=%v", x.Provider, x.Output != nil))
	}
	if diff := cmp.Diff([]string{"openai valid=false", "openai valid=false", "openai valid=false", "rules valid=true"}, rows); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
}

func TestNotificationFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, st, p := newDirect(t, nil)
	tk := openTicket(t, st, p.requester.ID, "Replica lag", "Our Postgres replica lags.")
	if _, err := w.triageTicket(ctx, input("ticketd-1", createdData{TicketID: tk.ID}, 0)); err != nil {
		t.Fatal(err)
	}
	before := len(mails(t, st, tk.ID))
	message := func(author tickets.User, internal bool) int64 {
		m, err := st.InsertMessage(ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound, Kind: tickets.KindReply,
			Internal: internal, AuthorID: &author.ID, MessageID: fmt.Sprintf("m%d-%v@example.org", author.ID, internal),
			FromAddress: author.Email, TextBody: "hello"})
		if err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	fromRequester, fromStaff, note := message(p.requester, false), message(p.pg, false), message(p.pg, true)
	for _, tc := range []struct {
		name string
		run  func() (any, error)
		want []string // new mails
	}{
		{"self-assignment mails nobody but the previous assignee", func() (any, error) {
			assign(t, st, tk.ID, p.mail.ID, p.mail.ID)
			return w.notifyAssigned(ctx, input("ticketd-10", assignedData{TicketID: tk.ID, AssigneeID: p.mail.ID,
				PreviousAssigneeID: &p.pg.ID, ActorID: &p.mail.ID, Channel: tickets.ChannelMail}, 0))
		}, []string{"reassignment pg@example.com"}},
		{"an admin's assignment mails the new assignee", func() (any, error) {
			assign(t, st, tk.ID, p.pg.ID, p.admin.ID)
			return w.notifyAssigned(ctx, input("ticketd-11", assignedData{TicketID: tk.ID, AssigneeID: p.pg.ID,
				PreviousAssigneeID: &p.mail.ID, ActorID: &p.admin.ID, Channel: tickets.ChannelWeb}, 0))
		}, []string{"assignment pg@example.com", "reassignment mail@example.com"}},
		{"an event claiming an assignment the ticket does not have mails nobody", func() (any, error) {
			return w.notifyAssigned(ctx, input("ticketd-19", assignedData{TicketID: tk.ID, AssigneeID: p.mail.ID,
				PreviousAssigneeID: &p.admin.ID, ActorID: &p.admin.ID, Channel: tickets.ChannelWeb}, 0))
		}, nil},
		{"the same event again mails nobody", func() (any, error) {
			return w.notifyAssigned(ctx, input("ticketd-11", assignedData{TicketID: tk.ID, AssigneeID: p.pg.ID,
				PreviousAssigneeID: &p.mail.ID, ActorID: &p.admin.ID, Channel: tickets.ChannelWeb}, 0))
		}, nil},
		{"status to Completed: the completion mail says it", func() (any, error) {
			return w.notifyStatusChanged(ctx, input("ticketd-12", statusData{TicketID: tk.ID, From: tickets.StatusInProgress,
				To: tickets.StatusCompleted, ActorID: &p.pg.ID}, 0))
		}, nil},
		{"reopened by the requester: they know", func() (any, error) {
			return w.notifyStatusChanged(ctx, input("ticketd-13", statusData{TicketID: tk.ID, From: tickets.StatusCompleted,
				To: tickets.StatusTodo, ActorID: &p.requester.ID}, 0))
		}, nil},
		{"moved back to To-Do by a moderator", func() (any, error) {
			return w.notifyStatusChanged(ctx, input("ticketd-14", statusData{TicketID: tk.ID, From: tickets.StatusInProgress,
				To: tickets.StatusTodo, ActorID: &p.pg.ID}, 0))
		}, []string{"status ann@example.org"}},
		{"completion", func() (any, error) {
			return w.notifyCompleted(ctx, input("ticketd-15", completedData{TicketID: tk.ID, ActorID: &p.pg.ID}, 0))
		}, []string{"completion ann@example.org"}},
		{"a requester's reply goes to the assignee", func() (any, error) {
			return w.forwardReply(ctx, input("ticketd-16", repliedData{TicketID: tk.ID, MessageID: fromRequester, AuthorID: &p.requester.ID}, 0))
		}, []string{"forward pg@example.com"}},
		{"a moderator's reply is not forwarded", func() (any, error) {
			return w.forwardReply(ctx, input("ticketd-17", repliedData{TicketID: tk.ID, MessageID: fromStaff, AuthorID: &p.pg.ID}, 0))
		}, nil},
		{"an internal note is not forwarded", func() (any, error) {
			return w.forwardReply(ctx, input("ticketd-18", repliedData{TicketID: tk.ID, MessageID: note, AuthorID: &p.pg.ID}, 0))
		}, nil},
	} {
		// In order: each row adds to the same ticket's mails.
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.run(); err != nil {
				t.Fatal(err)
			}
			all := mails(t, st, tk.ID)
			got := kinds(all[before:])
			before = len(all)
			if tc.want == nil {
				tc.want = []string{}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("new mails (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTriagePassesOverBouncingStaff: a moderator whose address bounces
// would never hear of the ticket (mail to them is suppressed); another with
// the skills gets it.
func TestTriagePassesOverBouncingStaff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, st, p := newDirect(t, nil)
	pg2, err := st.CreateUser(ctx, tickets.NewUser{Email: "pg2@example.com", Name: "pg2", Role: tickets.RoleModerator,
		Skills: []string{"postgres", "networking"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(ctx, `UPDATE users SET bouncing_since = now() WHERE id = $1`, p.pg.ID); err != nil {
		t.Fatal(err)
	}
	tk := openTicket(t, st, p.requester.ID, "Replica lag", "Our Postgres replica lags.")
	if _, err := w.triageTicket(ctx, input("ticketd-1", createdData{TicketID: tk.ID}, 0)); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Ticket(ctx, tk.ID)
	if got.AssigneeID == nil || *got.AssigneeID != pg2.ID {
		t.Errorf("assignee %v, want pg2 (%d): %s bounces", got.AssigneeID, pg2.ID, p.pg.Email)
	}
}

// TestTriageWithAnyModeratorSkill: a skill of the moderators' vocabulary
// ("français") stands in a triage as it is; it once failed triage's own
// check on every attempt, the rules engine's included.
func TestTriageWithAnyModeratorSkill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, st, p := newDirect(t, nil)
	if _, err := st.CreateUser(ctx, tickets.NewUser{Email: "fr@example.com", Name: "fr", Role: tickets.RoleModerator,
		Skills: tickets.SplitSkills("français, email")}); err != nil {
		t.Fatal(err)
	}
	tk := openTicket(t, st, p.requester.ID, "Support en français", "Bonjour, je voudrais de l'aide en français: mon email ne marche pas.")
	var lastErr error
	for attempt := range 3 { // Retries: 2, so attempt 2 is the last
		_, lastErr = w.triageTicket(ctx, input("ticketd-1", createdData{TicketID: tk.ID}, attempt))
	}
	got, _ := st.Ticket(ctx, tk.ID)
	if lastErr != nil || got.TriagedAt == nil || !slices.Contains(got.Skills, "français") {
		t.Errorf("triaged at %v with skills %v; last attempt: %v", got.TriagedAt, got.Skills, lastErr)
	}
}

// TestLateTriageKeepsPeoplesChanges: a priority and notes a person set
// before triage ran (Inngest was down, or the model slow) stand.
func TestLateTriageKeepsPeoplesChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, st, p := newDirect(t, nil)
	tk := openTicket(t, st, p.requester.ID, "Question", "How do I export my invoices?")
	err := st.InTx(ctx, func(tx *tickets.Store) error {
		a := tickets.Actor{UserID: &p.admin.ID, Channel: tickets.ChannelWeb}
		if _, err := tx.SetPriority(ctx, tk.ID, tickets.PriorityHigh, a); err != nil {
			return err
		}
		if _, err := tx.SetSkills(ctx, tk.ID, []string{"email"}, a); err != nil {
			return err
		}
		_, err := tx.SetHelpfulNotes(ctx, tk.ID, "VIP customer, call them back.", a)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.triageTicket(ctx, input("ticketd-1", createdData{TicketID: tk.ID}, 0)); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Ticket(ctx, tk.ID)
	if got.Priority != tickets.PriorityHigh || got.HelpfulNotes != "VIP customer, call them back." || got.TriagedAt == nil || got.Summary == "" {
		t.Errorf("after triage: priority %s, notes %q, triaged %v, summary %q", got.Priority, got.HelpfulNotes, got.TriagedAt, got.Summary)
	}
	// The skills a person set choose the assignee too.
	if !cmp.Equal(got.Skills, []string{"email"}) || got.AssigneeID == nil || *got.AssigneeID != p.mail.ID {
		t.Errorf("skills %v, assignee %v; want email and %s", got.Skills, got.AssigneeID, p.mail.Email)
	}
}

// TestTriageMailsCommitWithTheUpdate: the update step commits and Inngest
// never gets its result (the process dies, the response is lost), so it
// runs the step again, which finds the ticket triaged. The mails were
// queued in the update's transaction, once.
func TestTriageMailsCommitWithTheUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, st, p := newDirect(t, nil)
	tk := openTicket(t, st, p.requester.ID, "Replica lag", "Our Postgres replica lags.")
	// What the memoised analyse step returned.
	an, err := w.analyse(ctx, tk.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	// First execution of the update step: committed, result lost.
	if _, err := w.update(ctx, tk.ID, an.Result); err != nil {
		t.Fatal(err)
	}
	want := []string{"acknowledgement " + p.requester.Email, "assignment " + p.pg.Email}
	if diff := cmp.Diff(want, kinds(mails(t, st, tk.ID))); diff != "" {
		t.Errorf("mails queued with the update (-want +got):\n%s", diff)
	}
	// Inngest runs the step again, and the run goes on as triageTicket does.
	up, err := w.update(ctx, tk.ID, an.Result)
	if err != nil || up.Applied {
		t.Fatalf("the update again: %+v, %v", up, err)
	}
	if _, err := w.notifyTriage(ctx, tk.ID, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, kinds(mails(t, st, tk.ID))); diff != "" {
		t.Errorf("mails after the run (-want +got):\n%s", diff)
	}
}

// TestReassignedRightAfterTriage: an admin reassigns the ticket as soon as
// triage has written it. Triage's choice was told with the update, and is
// told of the reassignment; the new assignee gets one assignment mail.
func TestReassignedRightAfterTriage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, st, p := newDirect(t, nil)
	tk := openTicket(t, st, p.requester.ID, "Replica lag", "Our Postgres replica lags.")
	an, _ := w.analyse(ctx, tk.ID, 0)
	up, err := w.update(ctx, tk.ID, an.Result)
	if err != nil || !up.Applied || *up.AssigneeID != p.pg.ID {
		t.Fatalf("update: %+v %v", up, err)
	}
	err = st.InTx(ctx, func(tx *tickets.Store) error {
		_, err := tx.Assign(ctx, tk.ID, p.mail.ID, "", tickets.Actor{UserID: &p.admin.ID, Channel: tickets.ChannelWeb})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.notifyAssigned(ctx, input("ticketd-9", assignedData{TicketID: tk.ID, AssigneeID: p.mail.ID,
		PreviousAssigneeID: &p.pg.ID, ActorID: &p.admin.ID, Channel: tickets.ChannelWeb}, 0)); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range mails(t, st, tk.ID) {
		got[m.Kind+" "+m.To]++
	}
	want := map[string]int{"acknowledgement " + p.requester.Email: 1, "assignment " + p.pg.Email: 1,
		"assignment " + p.mail.Email: 1, "reassignment " + p.pg.Email: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mails (-want +got):\n%s", diff)
	}
}

// TestModelAnswerWithNUL: a model answering garbage with NUL characters in
// it. Its answer is kept as text PostgreSQL can store, and the ticket is
// triaged (once stored answers were refused, on every attempt).
func TestModelAnswerWithNUL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": "x", "object": "chat.completion", "created": 0, "model": "m",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": "\x00\x00garbage"}}},
		})
	}))
	t.Cleanup(srv.Close)
	rules := triage.NewRules(triage.RulesOptions{})
	llm, err := triage.New(ctx, triage.Config{Provider: "openai", BaseURL: srv.URL + "/v1", Model: "m"}, rules, testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	w, st, p := newDirect(t, llm)
	tk := openTicket(t, st, p.requester.ID, "Replica lag", "Our Postgres replica lags.")
	var lastErr error
	for attempt := range 3 { // Retries: 2
		_, lastErr = w.triageTicket(ctx, input("ticketd-1", createdData{TicketID: tk.ID}, attempt))
	}
	got, _ := st.Ticket(ctx, tk.ID)
	if got.TriagedAt == nil {
		t.Errorf("never triaged; last attempt: %v", lastErr)
	}
	var raw string
	if err := st.DB().QueryRow(ctx, `SELECT raw_output FROM ai_decisions WHERE ticket_id = $1 ORDER BY id LIMIT 1`, tk.ID).Scan(&raw); err != nil ||
		!strings.HasPrefix(raw, "garbage") {
		t.Errorf("stored answer %q, %v; want the model's text without NUL", raw, err)
	}
}

// assign gives ticket id to assignee as actor, as the web does.
func assign(t *testing.T, st *tickets.Store, id, assignee, actor int64) {
	t.Helper()
	ctx := context.Background()
	if err := st.InTx(ctx, func(tx *tickets.Store) error {
		_, err := tx.Assign(ctx, id, assignee, "test", tickets.Actor{UserID: &actor, Channel: tickets.ChannelWeb})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
