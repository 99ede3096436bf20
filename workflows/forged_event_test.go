package workflows

import (
	"context"
	"testing"

	"github.com/inngest/inngestgo"

	"ticketd/tickets"
)

// TestForgedAssignedEventMailsNobody: anyone who reaches the workflow
// engine can send it a ticket.assigned of their own making. Sent to the
// real dev server, such an event runs the function, and the function mails
// no signed reply address to anyone the database does not say the ticket
// is (or was) theirs: not to a moderator named as its new assignee, nor
// to one named as its previous assignee.
func TestForgedAssignedEventMailsNobody(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	ctx := context.Background()
	p := seedPeople(t, s.store)
	tk := openTicket(t, s.store, p.requester.ID, "Replica lag", "Our Postgres replica lags.")
	waitFor(t, "triage", func() (bool, error) {
		got, err := s.store.Ticket(ctx, tk.ID)
		return err == nil && got.AssigneeID != nil && len(mails(t, s.store, tk.ID)) == 2, err
	})
	if got, _ := s.store.Ticket(ctx, tk.ID); *got.AssigneeID != p.pg.ID {
		t.Fatalf("triage assigned %d, want pg", *got.AssigneeID)
	}
	before := len(mails(t, s.store, tk.ID))

	for _, ev := range []struct {
		id   string
		data assignedData
	}{
		// "The ticket is yours now": mail@ never had it.
		{"forged-assignee", assignedData{TicketID: tk.ID, AssigneeID: p.mail.ID, ActorID: &p.admin.ID, Channel: tickets.ChannelWeb}},
		// "The ticket went from you to pg": mail@ never had it.
		{"forged-previous", assignedData{TicketID: tk.ID, AssigneeID: p.pg.ID, PreviousAssigneeID: &p.mail.ID,
			ActorID: &p.pg.ID, Channel: tickets.ChannelWeb}},
		// "The ticket went from you to the admin": pg still has it.
		{"forged-taken", assignedData{TicketID: tk.ID, AssigneeID: p.admin.ID, PreviousAssigneeID: &p.pg.ID,
			ActorID: &p.admin.ID, Channel: tickets.ChannelWeb}},
	} {
		id := ev.id
		if _, err := s.wf.client.Send(ctx, inngestgo.Event{ID: &id, Name: tickets.EventAssigned, Data: map[string]any{
			"ticket_id": ev.data.TicketID, "assignee_id": ev.data.AssigneeID, "previous_assignee_id": ev.data.PreviousAssigneeID,
			"actor_id": ev.data.ActorID, "channel": ev.data.Channel}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the run of "+id, func() (bool, error) { return s.inv.done(FnAssigned, id) > 0, nil })
	}
	if got := mails(t, s.store, tk.ID)[before:]; len(got) != 0 {
		t.Fatalf("forged events queued mails: %+v", got)
	}
}
