package workflows

import (
	"context"
	"fmt"
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
			return w.notifyAssigned(ctx, input("ticketd-10", assignedData{TicketID: tk.ID, AssigneeID: p.mail.ID,
				PreviousAssigneeID: &p.pg.ID, ActorID: &p.mail.ID, Channel: tickets.ChannelMail}, 0))
		}, []string{"reassignment pg@example.com"}},
		{"an admin's assignment mails the new assignee", func() (any, error) {
			return w.notifyAssigned(ctx, input("ticketd-11", assignedData{TicketID: tk.ID, AssigneeID: p.pg.ID,
				PreviousAssigneeID: &p.mail.ID, ActorID: &p.admin.ID, Channel: tickets.ChannelWeb}, 0))
		}, []string{"assignment pg@example.com", "reassignment mail@example.com"}},
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
