package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/inngest/inngestgo"
	"github.com/jackc/pgx/v5"

	"ticketd/tickets"
)

// sweepEvery is how often the relay looks for tickets whose triage run was
// lost.
const sweepEvery = time.Minute

// maxCreatedEvents bounds the ticket.created events of one ticket: the first
// and at most two re-emitted by the sweep.
const maxCreatedEvents = 3

// RunRelay sends the event outbox to Inngest until ctx ends. Rows are taken
// in id order with FOR UPDATE SKIP LOCKED, so replicas share the work, sent
// with the event id "ticketd-<row id>" (Inngest runs each id once), and
// marked sent in the same transaction; a failed send leaves them for later,
// with backoff. ResendAfter later each event is sent once more with the
// same id, which starts nothing unless the engine lost the event after
// taking it (a self-hosted Inngest or its Redis restarting at that
// moment). A PostgreSQL notification from each committed insert wakes
// the relay at once; it polls as well. With Inngest not configured it only
// warns: events keep in the outbox.
func (w *Workflows) RunRelay(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("event relay panicked", "err", r)
			err = fmt.Errorf("workflows: event relay panicked: %v", r)
		}
	}()
	if !w.configured {
		n, _, _ := w.store.OutboxBacklog(ctx)
		w.log.Warn("Inngest is not configured: events wait in the outbox and no triage runs; set INNGEST_DEV=1 for the dev server, or INNGEST_EVENT_KEY and INNGEST_SIGNING_KEY",
			"unsent_events", n)
		<-ctx.Done()
		return nil
	}
	wake := make(chan struct{}, 1)
	listening := make(chan bool, 1)
	go w.listen(ctx, wake, listening)

	poll := w.opts.RelayPoll
	var lastSweep time.Time
	failing := false
	for {
		if ctx.Err() != nil {
			return nil
		}
		if w.selfHosted && !w.registered {
			if err := w.registerSelfHosted(ctx); err != nil {
				if !failing && ctx.Err() == nil {
					w.log.Warn("cannot register ticketd's functions with Inngest; events wait in the outbox", "err", err)
				}
				failing = true
			} else {
				w.registered = true
			}
		}
		sent, err := w.relayOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				w.log.Warn("Inngest did not take the events; they wait in the outbox", "err", err)
			}
			failing = true
		case err == nil && sent > 0 && failing:
			// The events that failed meanwhile need not wait out their
			// backoff now.
			n, rerr := w.store.RetryDeferredEvents(ctx)
			w.log.Info("Inngest takes events again", "deferred_events", n)
			if rerr != nil {
				w.log.Warn("event relay: reset backoff", "err", rerr)
			}
			failing = false
			continue
		}
		if err == nil && sent == w.opts.RelayBatch {
			continue // more are waiting
		}
		if w.opts.RetriageAfter > 0 && time.Since(lastSweep) >= sweepEvery {
			lastSweep = time.Now()
			if n, err := w.sweep(ctx); err != nil {
				w.log.Warn("re-triage sweep failed", "err", err)
			} else if n > 0 {
				w.log.Warn("re-emitted ticket.created for tickets whose triage was lost", "tickets", n)
				continue
			}
		}
		wait := poll
		if due, ok, err := w.store.NextEventDue(ctx); err == nil && ok {
			wait = min(wait, max(time.Until(due), 10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case ok := <-listening:
			if ok {
				poll = w.opts.RelayPoll
			} else {
				poll = min(w.opts.RelayPoll, time.Second)
			}
		case <-time.After(wait):
		}
	}
}

// listen turns notifications on tickets.EventsChannel into wake-ups, and
// reports on listening whether it is listening, reconnecting with backoff.
func (w *Workflows) listen(ctx context.Context, wake chan<- struct{}, listening chan<- bool) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("event relay listener panicked", "err", r)
		}
	}()
	report := func(ok bool) {
		select {
		case listening <- ok:
		default:
		}
	}
	delay := time.Second
	for ctx.Err() == nil {
		err := func() error {
			conn, err := w.opts.Pool.Acquire(ctx)
			if err != nil {
				return err
			}
			// The connection ends LISTENing with this function; it goes
			// back to the pool only after UNLISTEN.
			defer func() {
				c, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				if _, err := conn.Exec(c, "UNLISTEN *"); err != nil {
					conn.Conn().Close(c)
				}
				conn.Release()
			}()
			if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{tickets.EventsChannel}.Sanitize()); err != nil {
				return err
			}
			report(true)
			delay = time.Second
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					return err
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		report(false)
		w.log.Warn("event relay: LISTEN failed, polling meanwhile", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// relayOnce sends one batch of due events, with the sent events due to be
// sent once more, and returns how many Inngest took.
func (w *Workflows) relayOnce(ctx context.Context) (int, error) {
	var sent, took int
	var sendErr error
	err := w.store.InTx(ctx, func(tx *tickets.Store) error {
		events, err := tx.PendingEvents(ctx, w.opts.RelayBatch)
		if err != nil {
			return err
		}
		if w.opts.ResendAfter > 0 && len(events) < w.opts.RelayBatch {
			again, err := tx.DueResends(ctx, w.opts.RelayBatch-len(events))
			if err != nil {
				return err
			}
			events = append(events, again...)
		}
		if len(events) == 0 {
			return nil
		}
		var ok []tickets.OutboxEvent
		var failed []failedEvent
		if err := w.engineReady(ctx); err != nil {
			for _, e := range events {
				failed = append(failed, failedEvent{e, err})
			}
		} else {
			ok, failed = w.send(ctx, events)
		}
		var first, again []int64
		for _, e := range ok {
			if e.Resend {
				again = append(again, e.ID)
			} else {
				first = append(first, e.ID)
			}
		}
		if len(first) > 0 {
			if err := tx.MarkEventsSent(ctx, first, w.opts.ResendAfter); err != nil {
				return err
			}
		}
		if len(again) > 0 {
			if err := tx.MarkResent(ctx, again); err != nil {
				return err
			}
		}
		sent, took = len(first), len(ok)
		if len(failed) > 0 {
			// A restarted dev server must sync again; a self-hosted server
			// keeps the functions, and registering once more after an
			// outage costs one request.
			w.syncedAt, w.registered = time.Time{}, false
		}
		for _, f := range failed {
			sendErr = f.err
			if f.event.Resend {
				// Not urgent: the first send most likely got through.
				if err := tx.DeferResend(ctx, f.event.ID, backoff(5)); err != nil {
					return err
				}
				continue
			}
			if err := tx.DeferEvent(ctx, f.event.ID, backoff(f.event.Attempts), f.err.Error()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("relay events: %w", err)
	}
	if sent > 0 {
		w.opts.Metrics.EventsSent(sent)
		w.log.Debug("relayed events", "count", sent, "sent_again", took-sent)
	}
	return took, sendErr
}

type failedEvent struct {
	event tickets.OutboxEvent
	err   error
}

// send hands events to Inngest, all in one request; when Inngest refuses
// the request as malformed, one by one, so one bad event does not hold up
// the rest.
func (w *Workflows) send(ctx context.Context, events []tickets.OutboxEvent) (ok []tickets.OutboxEvent, failed []failedEvent) {
	batch := make([]any, len(events))
	for i, e := range events {
		batch[i] = toInngest(e)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := w.client.SendMany(ctx, batch)
	if err == nil {
		return events, nil
	}
	if len(events) == 1 || !strings.HasPrefix(err.Error(), "bad request") {
		for _, e := range events {
			failed = append(failed, failedEvent{e, err})
		}
		return nil, failed
	}
	for i, e := range events {
		if _, err := w.client.Send(ctx, batch[i]); err != nil {
			w.log.Error("Inngest refused an event", "event_id", e.ID, "event", e.Name, "err", err)
			failed = append(failed, failedEvent{e, err})
		} else {
			ok = append(ok, e)
		}
	}
	return ok, failed
}

// EventID is the Inngest event id of an outbox row.
func EventID(rowID int64) string { return "ticketd-" + strconv.FormatInt(rowID, 10) }

func toInngest(e tickets.OutboxEvent) inngestgo.Event {
	id := EventID(e.ID)
	data := map[string]any{}
	if err := json.Unmarshal(e.Data, &data); err != nil || data == nil {
		data = map[string]any{}
	}
	return inngestgo.Event{ID: &id, Name: e.Name, Data: data, Timestamp: inngestgo.Timestamp(e.CreatedAt)}
}

// backoff is how long a failed event waits: 1s doubling to 30s, with
// jitter so replicas do not retry in step. Each try is one request per
// batch, so a short ceiling costs little and events flow soon after Inngest
// returns.
func backoff(attempts int) time.Duration {
	d := time.Second << min(attempts, 5)
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

// sweep re-emits ticket.created for tickets whose triage never happened,
// one replica at a time.
func (w *Workflows) sweep(ctx context.Context) (int, error) {
	n := 0
	err := w.store.InTx(ctx, func(tx *tickets.Store) error {
		var got bool
		if err := tx.DB().QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('ticketd.retriage'))`).Scan(&got); err != nil || !got {
			return err
		}
		ids, err := tx.UntriagedStale(ctx, w.opts.RetriageAfter, maxCreatedEvents, 100)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.EnqueueEvent(ctx, tickets.EventCreated, id, createdData{TicketID: id, Retry: true}); err != nil {
				return err
			}
			w.log.Warn("ticket was never triaged; emitting ticket.created again", "ticket_id", id)
		}
		n = len(ids)
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return 0, nil
	}
	return n, err
}
