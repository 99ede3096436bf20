package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/inngest/inngestgo"
	"github.com/inngest/inngestgo/step"

	"ticketd/inbound/mailparse"
	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// Function IDs, as Inngest shows them (prefixed with the app id).
const (
	FnTriage        = "triage"
	FnAssigned      = "notify-assigned"
	FnStatusChanged = "notify-status-changed"
	FnCompleted     = "notify-completed"
	FnReplied       = "forward-reply"
)

type createdData struct {
	TicketID int64 `json:"ticket_id"`
	Retry    bool  `json:"retry,omitempty"` // re-emitted by the relay's sweep
}

type assignedData struct {
	TicketID           int64           `json:"ticket_id"`
	AssigneeID         int64           `json:"assignee_id"`
	PreviousAssigneeID *int64          `json:"previous_assignee_id"`
	ActorID            *int64          `json:"actor_id"`
	Channel            tickets.Channel `json:"channel"`
}

type statusData struct {
	TicketID int64           `json:"ticket_id"`
	From     tickets.Status  `json:"from"`
	To       tickets.Status  `json:"to"`
	ActorID  *int64          `json:"actor_id"`
	Channel  tickets.Channel `json:"channel"`
}

type completedData struct {
	TicketID int64           `json:"ticket_id"`
	ActorID  *int64          `json:"actor_id"`
	Channel  tickets.Channel `json:"channel"`
}

type repliedData struct {
	TicketID  int64  `json:"ticket_id"`
	MessageID int64  `json:"message_id"`
	AuthorID  *int64 `json:"author_id"`
}

func (w *Workflows) register() error {
	retries := inngestgo.IntPtr(w.opts.Retries)
	fns := []error{}
	triageOpts := inngestgo.FunctionOpts{ID: FnTriage, Name: "Triage a new ticket", Retries: retries}
	if w.modelLimit {
		// Bounds the triage steps running at once, and with them the model
		// calls, across every replica. The rules engine needs no bound.
		triageOpts.Concurrency = &inngestgo.ConfigConcurrency{
			Step: []inngestgo.ConfigStepConcurrency{{Limit: w.opts.LLMConcurrency}},
		}
	}
	_, err := inngestgo.CreateFunction(w.client, triageOpts, inngestgo.EventTrigger(tickets.EventCreated, nil), w.triageTicket)
	fns = append(fns, err)
	_, err = inngestgo.CreateFunction(w.client, inngestgo.FunctionOpts{
		ID: FnAssigned, Name: "Mail the new assignee", Retries: retries,
	}, inngestgo.EventTrigger(tickets.EventAssigned, nil), w.notifyAssigned)
	fns = append(fns, err)
	_, err = inngestgo.CreateFunction(w.client, inngestgo.FunctionOpts{
		ID: FnStatusChanged, Name: "Mail the requester a status change", Retries: retries,
	}, inngestgo.EventTrigger(tickets.EventStatusChanged, nil), w.notifyStatusChanged)
	fns = append(fns, err)
	_, err = inngestgo.CreateFunction(w.client, inngestgo.FunctionOpts{
		ID: FnCompleted, Name: "Mail the requester the completion", Retries: retries,
	}, inngestgo.EventTrigger(tickets.EventCompleted, nil), w.notifyCompleted)
	fns = append(fns, err)
	_, err = inngestgo.CreateFunction(w.client, inngestgo.FunctionOpts{
		ID: FnReplied, Name: "Forward a requester's reply to the assignee", Retries: retries,
	}, inngestgo.EventTrigger(tickets.EventReplied, nil), w.forwardReply)
	fns = append(fns, err)
	if err := errors.Join(fns...); err != nil {
		return fmt.Errorf("workflows: register functions: %w", err)
	}
	return nil
}

// eventKey is the stable identity of the triggering event, for dedupe keys:
// the outbox id the relay sent it with, or the run when it came from
// elsewhere.
func eventKey[T any](in inngestgo.Input[T]) string {
	if in.Event.ID != nil && *in.Event.ID != "" {
		return *in.Event.ID
	}
	return "run-" + in.InputCtx.RunID
}

// analysis is the result of the analyse step.
type analysis struct {
	Skip       string        `json:"skip,omitempty"` // why there is nothing to triage
	Result     triage.Result `json:"result"`
	DecisionID int64         `json:"decision_id"`
}

// updated is the result of the update step.
type updated struct {
	Applied    bool             `json:"applied"`
	AssigneeID *int64           `json:"assignee_id"`
	Assigned   bool             `json:"assigned"` // triage chose the assignee (not kept one)
	Status     tickets.Status   `json:"status"`
	Priority   tickets.Priority `json:"priority"`
	Notified   notified         `json:"notified"` // the mails queued with the triage
}

// notified is the result of a notify step.
type notified struct {
	Acknowledgement bool `json:"acknowledgement"`
	Assignment      bool `json:"assignment"`
}

// triageKey names the mails of a ticket's triage. It is derived from the
// ticket.created event of that ticket, of which there is one per ticket, and
// not from the outbox row: a ticket.created the relay re-emits for a lost
// run then cannot queue a second acknowledgement.
func triageKey(ticketID int64, mail string) string {
	return "ticket.created/" + strconv.FormatInt(ticketID, 10) + "/" + mail
}

// triageTicket analyses a new ticket, assigns it, updates it and queues the
// requester's acknowledgement and the assignee's mail, each a durable step.
func (w *Workflows) triageTicket(ctx context.Context, in inngestgo.Input[createdData]) (any, error) {
	id := in.Event.Data.TicketID
	if id <= 0 {
		return nil, inngestgo.NoRetryError(fmt.Errorf("ticket.created without ticket_id"))
	}
	an, err := step.Run(ctx, "analyse", func(ctx context.Context) (analysis, error) {
		return w.analyse(ctx, id, in.InputCtx.Attempt)
	})
	if err != nil {
		return nil, err
	}
	if an.Skip != "" {
		if an.Skip == skipGone {
			return map[string]any{"ticket_id": id, "skipped": an.Skip}, nil
		}
		// Triaged already, by an earlier run of a re-emitted or replayed
		// event. Queue its mails should that run have stopped before; the
		// dedupe keys make this a no-op when it did not.
		n, err := step.Run(ctx, "notify", func(ctx context.Context) (notified, error) {
			return w.notifyTriage(ctx, id, nil)
		})
		return map[string]any{"ticket_id": id, "skipped": an.Skip, "notified": n}, err
	}
	// One step chooses the assignee and writes the triage with its mails:
	// each step costs a round trip through Inngest's queue.
	up, err := step.Run(ctx, "update", func(ctx context.Context) (updated, error) {
		return w.update(ctx, id, an.Result)
	})
	if err != nil {
		return nil, err
	}
	if !up.Applied {
		// Triaged meanwhile, and its mails queued with it; or this run's
		// own update committed and its answer was lost. Either way the
		// mails are queued already, and the dedupe keys make this a
		// no-op.
		n, err := step.Run(ctx, "notify", func(ctx context.Context) (notified, error) {
			return w.notifyTriage(ctx, id, nil)
		})
		return map[string]any{"ticket_id": id, "skipped": "triaged meanwhile", "notified": n}, err
	}
	return map[string]any{"ticket_id": id, "priority": up.Priority, "assignee_id": up.AssigneeID,
		"engine": an.Result.Engine, "notified": up.Notified}, nil
}

const (
	skipGone    = "ticket deleted"
	skipTriaged = "already triaged"
)

// analyse runs the analyzer and stores its decision. While the model is
// unavailable the step fails and Inngest retries it; on the last attempt the
// rules engine decides instead.
func (w *Workflows) analyse(ctx context.Context, id int64, attempt int) (analysis, error) {
	log := w.log.With("ticket_id", id)
	t, err := w.store.Ticket(ctx, id)
	if errors.Is(err, tickets.ErrNotFound) {
		return analysis{Skip: skipGone}, nil
	}
	if err != nil {
		return analysis{}, err
	}
	if t.TriagedAt != nil {
		return analysis{Skip: skipTriaged}, nil
	}
	desk, err := triage.LoadDesk(ctx, w.store)
	if err != nil {
		return analysis{}, err
	}
	input := desk.Input(id, t.Subject, t.Description)
	res, d, err := w.opts.Analyzer.Analyze(ctx, input)
	if err != nil {
		w.opts.Metrics.Triage(d.Provider, "error")
		if _, serr := w.saveDecision(ctx, id, d, nil); serr != nil {
			if attempt < w.opts.Retries {
				return analysis{}, errors.Join(err, serr)
			}
			// The last attempt decides all the same.
			log.Error("could not record the failed triage decision", "err", serr)
		}
		if attempt < w.opts.Retries {
			log.Warn("triage analysis failed, Inngest will retry", "attempt", attempt, "err", err)
			return analysis{}, fmt.Errorf("analyse ticket %d: %w", id, err)
		}
		log.Warn("triage analysis failed on the last attempt, the rules engine decides", "attempt", attempt, "err", err)
		cause := err
		res, d, err = w.opts.Rules.Analyze(ctx, input)
		if err != nil {
			return analysis{}, fmt.Errorf("analyse ticket %d with the rules: %w", id, err)
		}
		d.Err = fmt.Sprintf("decided by the rules engine: the model failed %d times, last: %v", attempt+1, cause)
	}
	did, err := w.saveDecision(ctx, id, d, &res)
	if err != nil {
		return analysis{}, err
	}
	outcome := "ok"
	if d.Err != "" {
		outcome = "fallback"
	}
	w.opts.Metrics.Triage(d.Provider, outcome)
	log.Info("triage analysed", "engine", res.Engine, "priority", res.Priority, "skills", res.Skills)
	return analysis{Result: res, DecisionID: did}, nil
}

func (w *Workflows) saveDecision(ctx context.Context, id int64, d triage.Decision, res *triage.Result) (int64, error) {
	// What a model answered is kept as text PostgreSQL stores: no NUL, valid
	// UTF-8.
	storable := func(s string) string { return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "") }
	row := tickets.AIDecision{TicketID: id, Provider: d.Provider, Model: d.Model, PromptVersion: d.PromptVersion,
		InputHash: d.InputHash, RawOutput: storable(d.RawOutput), LatencyMS: int(d.Latency.Milliseconds()), Error: storable(d.Err),
		PromptTokens: d.PromptTokens, CompletionTokens: d.CompletionTokens}
	if len(d.Messages) > 0 {
		msgs := make([]triage.Message, len(d.Messages))
		for i, m := range d.Messages {
			msgs[i] = triage.Message{Role: m.Role, Content: storable(m.Content)}
		}
		b, err := json.Marshal(msgs)
		if err != nil {
			return 0, fmt.Errorf("encode messages of ticket %d: %w", id, err)
		}
		row.Messages = b
	}
	if row.Provider == "" {
		row.Provider = "unknown"
	}
	if row.InputHash == nil {
		row.InputHash = []byte{}
	}
	if res != nil {
		b, err := json.Marshal(res)
		if err != nil {
			return 0, fmt.Errorf("encode triage of ticket %d: %w", id, err)
		}
		row.Output = b
	}
	saved, err := w.store.InsertAIDecision(ctx, row)
	if err != nil {
		return 0, err
	}
	return saved.ID, nil
}

// update chooses the assignee and writes the triage in one transaction
// with the ticket locked, with the mails it causes (DESIGN.md:
// notifications are written in the transaction of the change they
// announce); a ticket triaged meanwhile is left alone. An assignee a person
// chose stands; skills a person set before triage choose the assignee.
func (w *Workflows) update(ctx context.Context, id int64, r triage.Result) (updated, error) {
	var up updated
	err := w.store.InTx(ctx, func(tx *tickets.Store) error {
		t, err := tx.TicketForUpdate(ctx, id)
		if err != nil {
			return err
		}
		if t.TriagedAt != nil {
			return nil
		}
		assignee, reason, assigned := t.AssigneeID, t.AssignmentReason, false
		if assignee == nil {
			skills := r.Skills
			if len(t.Skills) > 0 {
				// A person set the skills before triage ran; they stand
				// (see ApplyTriage).
				skills = t.Skills
			}
			staff, err := tx.AssignableStaff(ctx)
			if err != nil {
				return err
			}
			c := triage.PickAssignee(staff, skills, id)
			assignee, reason, assigned = c.AssigneeID, c.Reason, c.AssigneeID != nil
			if c.AssigneeID != nil {
				w.log.Info("triage assignment", "ticket_id", id, "assignee_id", *c.AssigneeID, "reason", c.Reason)
			} else {
				w.log.Warn("triage found nobody to assign", "ticket_id", id, "reason", c.Reason)
			}
		}
		tr := tickets.Triage{
			Summary: r.Summary, HelpfulNotes: r.HelpfulNotes, FirstResponse: r.FirstResponse,
			Category: r.Category, Language: r.Language, Priority: r.Priority,
			Skills: r.Skills, SuggestedSkills: r.SuggestedSkills,
			AssigneeID: assignee, AssignmentReason: reason,
		}
		if err := tx.ApplyTriage(ctx, id, tr); err != nil {
			return err
		}
		after, err := tx.Ticket(ctx, id)
		if err != nil {
			return err
		}
		n, err := w.queueTriageMails(ctx, tx, after, &assigned)
		if err != nil {
			return err
		}
		up = updated{Applied: true, AssigneeID: after.AssigneeID, Assigned: assigned,
			Status: after.Status, Priority: after.Priority, Notified: n}
		return nil
	})
	if err != nil {
		return updated{}, fmt.Errorf("apply triage to ticket %d: %w", id, err)
	}
	return up, nil
}

// notifyTriage queues the mails of a ticket triaged before (by a run that
// may have stopped before it queued them), in a transaction of its own.
func (w *Workflows) notifyTriage(ctx context.Context, id int64, assigned *bool) (notified, error) {
	var n notified
	err := w.store.InTx(ctx, func(tx *tickets.Store) error {
		t, err := tx.Ticket(ctx, id)
		if errors.Is(err, tickets.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err = w.queueTriageMails(ctx, tx, t, assigned)
		return err
	})
	if err != nil {
		return notified{}, fmt.Errorf("queue triage mails of ticket %d: %w", id, err)
	}
	return n, nil
}

// queueTriageMails queues, on tx, the requester's acknowledgement and the
// assignee's mail. assigned says whether triage chose the assignee; nil
// means it is not known (a re-run), and then the assignee is mailed unless
// a ticket.assigned event already told them. The dedupe keys make a second
// call a no-op.
func (w *Workflows) queueTriageMails(ctx context.Context, tx *tickets.Store, t tickets.Ticket, assigned *bool) (notified, error) {
	var n notified
	if t.Status != tickets.StatusCompleted && mailparse.Kind(t.AutoKind).MayAnswer() {
		if err := w.opts.Notifier.Acknowledgement(ctx, tx, triageKey(t.ID, "acknowledgement"), t.ID); err != nil {
			return n, err
		}
		n.Acknowledgement = true
	}
	mail := assigned != nil && *assigned
	if assigned == nil && t.AssigneeID != nil {
		told, err := tx.HasEvent(ctx, t.ID, tickets.EventAssigned)
		if err != nil {
			return n, err
		}
		mail = !told
	}
	if mail && t.AssigneeID != nil {
		if err := w.opts.Notifier.Assignment(ctx, tx, triageKey(t.ID, "assignment"), t.ID, *t.AssigneeID); err != nil {
			return n, err
		}
		n.Assignment = true
	}
	return n, nil
}

// notifyAssigned mails the new assignee of a manual assignment, and the
// previous one when the Notifier can. Nobody is told what they did
// themselves.
//
// Each of these mails carries a reply address signed for its recipient on
// the ticket, and the event is only a claim (anyone who reaches the
// workflow engine can send one): the database decides. The new assignee
// is mailed only while the ticket is theirs, the previous one only if the
// ticket was theirs and is no longer.
func (w *Workflows) notifyAssigned(ctx context.Context, in inngestgo.Input[assignedData]) (any, error) {
	d, key := in.Event.Data, eventKey(in)
	return step.Run(ctx, "notify", func(ctx context.Context) (map[string]bool, error) {
		out := map[string]bool{}
		err := w.store.InTx(ctx, func(tx *tickets.Store) error {
			t, err := tx.Ticket(ctx, d.TicketID)
			if errors.Is(err, tickets.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if t.AssigneeID == nil || *t.AssigneeID != d.AssigneeID {
				w.log.Warn("assignment mail not sent: the ticket is not the assignee's the event names",
					"ticket_id", d.TicketID, "assignee_id", d.AssigneeID)
			} else if d.ActorID == nil || *d.ActorID != d.AssigneeID {
				if err := w.opts.Notifier.Assignment(ctx, tx, key+"/assignment", d.TicketID, d.AssigneeID); err != nil {
					return err
				}
				out["assignment"] = true
			}
			r, ok := w.opts.Notifier.(reassigner)
			prev := d.PreviousAssigneeID
			if !ok || prev == nil || *prev == d.AssigneeID || (d.ActorID != nil && *d.ActorID == *prev) {
				return nil
			}
			held, err := tx.WasAssignee(ctx, d.TicketID, *prev)
			if err != nil {
				return err
			}
			if !held || (t.AssigneeID != nil && *t.AssigneeID == *prev) {
				w.log.Warn("reassignment mail not sent: the ticket was never the previous assignee's the event names, or still is",
					"ticket_id", d.TicketID, "previous_assignee_id", *prev)
				return nil
			}
			if err := r.Reassigned(ctx, tx, key+"/reassignment", d.TicketID, *prev, d.AssigneeID); err != nil {
				return err
			}
			out["reassignment"] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("queue assignment mails of ticket %d: %w", d.TicketID, err)
		}
		return out, nil
	})
}

// notifyStatusChanged tells the requester about a status change they did
// not make themselves. Completion has its own mail (ticket.completed), so a
// change to Completed sends nothing here; reopening and moves between To-Do
// and In-Progress do.
func (w *Workflows) notifyStatusChanged(ctx context.Context, in inngestgo.Input[statusData]) (any, error) {
	d, key := in.Event.Data, eventKey(in)
	return step.Run(ctx, "notify", func(ctx context.Context) (string, error) {
		if d.To == tickets.StatusCompleted || d.From == d.To {
			return "skipped: completion has its own mail", nil
		}
		var out string
		err := w.store.InTx(ctx, func(tx *tickets.Store) error {
			t, err := tx.Ticket(ctx, d.TicketID)
			if errors.Is(err, tickets.ErrNotFound) {
				out = "skipped: " + skipGone
				return nil
			}
			if err != nil {
				return err
			}
			if d.ActorID != nil && *d.ActorID == t.RequesterID {
				out = "skipped: the requester made the change"
				return nil
			}
			out = "queued"
			return w.opts.Notifier.StatusChanged(ctx, tx, key+"/status", d.TicketID, d.From, d.To)
		})
		if err != nil {
			return "", fmt.Errorf("queue status mail of ticket %d: %w", d.TicketID, err)
		}
		return out, nil
	})
}

// notifyCompleted sends the requester the closure notice in the thread.
func (w *Workflows) notifyCompleted(ctx context.Context, in inngestgo.Input[completedData]) (any, error) {
	d, key := in.Event.Data, eventKey(in)
	return step.Run(ctx, "notify", func(ctx context.Context) (string, error) {
		err := w.store.InTx(ctx, func(tx *tickets.Store) error {
			return w.opts.Notifier.Completion(ctx, tx, key+"/completion", d.TicketID)
		})
		if errors.Is(err, tickets.ErrNotFound) {
			return "skipped: " + skipGone, nil
		}
		if err != nil {
			return "", fmt.Errorf("queue completion mail of ticket %d: %w", d.TicketID, err)
		}
		return "queued", nil
	})
}

// forwardReply forwards a requester's (or a CC'd person's) reply to the
// assignee. Staff replies and internal notes are not forwarded.
func (w *Workflows) forwardReply(ctx context.Context, in inngestgo.Input[repliedData]) (any, error) {
	d, key := in.Event.Data, eventKey(in)
	return step.Run(ctx, "forward", func(ctx context.Context) (string, error) {
		var out string
		err := w.store.InTx(ctx, func(tx *tickets.Store) error {
			m, err := tx.Message(ctx, d.MessageID)
			if errors.Is(err, tickets.ErrNotFound) {
				out = "skipped: message deleted"
				return nil
			}
			if err != nil {
				return err
			}
			if m.Internal || m.Direction != tickets.Inbound {
				out = "skipped: not a mail from the requester's side"
				return nil
			}
			author := m.AuthorID
			if author == nil {
				author = d.AuthorID
			}
			if author != nil {
				u, err := tx.User(ctx, *author)
				if err != nil && !errors.Is(err, tickets.ErrNotFound) {
					return err
				}
				if err == nil && u.Role.IsStaff() {
					out = "skipped: written by staff"
					return nil
				}
			}
			out = "queued"
			return w.opts.Notifier.ForwardToAssignee(ctx, tx, key+"/forward", d.MessageID)
		})
		if err != nil {
			return "", fmt.Errorf("forward reply %d of ticket %d: %w", d.MessageID, d.TicketID, err)
		}
		return out, nil
	})
}
