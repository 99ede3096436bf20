package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/metrics"
	"ticketd/tickets"
)

// SenderOptions configure the Sender.
type SenderOptions struct {
	Pool      *pgxpool.Pool // required
	Transport Transport     // required: a *Relay or a *Maildir
	Logger    *slog.Logger
	Metrics   *metrics.Metrics // mails sent and failed attempts; nil records nothing
	// BatchSize is how many mails one claim takes (default 32); Workers how
	// many of them are delivered at once (default 4).
	BatchSize int
	Workers   int
	// SendTimeout bounds one delivery (default 2m). Lease is how long a
	// claimed mail stays reserved for this sender (default 10m); it must
	// exceed SendTimeout, or another sender could take a mail still being
	// sent.
	SendTimeout time.Duration
	Lease       time.Duration
	// RetryMin and RetryMax bound the exponential backoff after a
	// temporary failure (defaults 1m and 1h); a mail still failing
	// GiveUpAfter after it was queued fails for good (default 72h).
	RetryMin    time.Duration
	RetryMax    time.Duration
	GiveUpAfter time.Duration
	// PollInterval is the longest the sender sleeps without a
	// notification (default 30s).
	PollInterval time.Duration
}

// Sender delivers the mail outbox. Several senders, in one process or in
// several replicas, can run on one database: each mail is claimed by one of
// them (FOR UPDATE SKIP LOCKED) and then reserved for a lease.
//
// A mail is sent at least once, and twice only in one window: the relay
// accepted it (250) but the sender stopped before it recorded that, or the
// connection broke while waiting for that 250. The mail is then sent again
// once its lease passes, with the same bytes and Message-ID, which most
// mailbox providers recognise as a duplicate. Recording happens right
// after each 250 and is retried, which keeps the window to a crash or a
// database outage at that moment.
type Sender struct {
	o   SenderOptions
	log *slog.Logger
	st  *tickets.Store
}

// NewSender returns a Sender; Run starts it.
func NewSender(o SenderOptions) *Sender {
	if o.BatchSize <= 0 {
		o.BatchSize = 32
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 2 * time.Minute
	}
	if o.Lease <= 0 {
		o.Lease = 10 * time.Minute
	}
	if o.Lease < o.SendTimeout+30*time.Second {
		o.Lease = o.SendTimeout + 30*time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Minute
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Hour
	}
	if o.GiveUpAfter <= 0 {
		o.GiveUpAfter = 72 * time.Hour
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 30 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{o: o, log: log, st: tickets.NewStore(o.Pool)}
}

// Run delivers mail until ctx ends, waking when a transaction queues mail
// (LISTEN mail_outbox), when a retry falls due, and every PollInterval. On
// the way out it finishes the deliveries in flight (each bounded by
// SendTimeout) and gives back claimed mails it did not start. It returns
// nil when ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	if s.o.Pool == nil || s.o.Transport == nil {
		return errors.New("outbound: sender needs a Pool and a Transport")
	}
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.listen(ctx, wake)
	}()
	defer wg.Wait()

	failures := 0
	for {
		_, err := s.DeliverDue(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := s.o.PollInterval
		if err != nil {
			failures++
			wait = min(time.Duration(failures)*time.Second, s.o.PollInterval)
			s.log.Error("mail outbox", "err", err)
		} else {
			failures = 0
			next, ok, err := s.st.NextMailDue(ctx)
			if err != nil {
				s.log.Error("mail outbox", "err", err)
			} else if ok {
				wait = min(max(next, 10*time.Millisecond), wait)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// listen signals wake whenever mail is queued, reconnecting after errors.
func (s *Sender) listen(ctx context.Context, wake chan<- struct{}) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("mail outbox listener panicked", "err", fmt.Errorf("panic: %v", p), "stack", string(debug.Stack()))
		}
	}()
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	backoff := time.Second
	for ctx.Err() == nil {
		err := func() error {
			conn, err := s.o.Pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "LISTEN "+tickets.MailOutboxChannel); err != nil {
				return err
			}
			backoff = time.Second
			signal() // mail queued while nobody listened
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					if ctx.Err() == nil {
						// The connection is broken or in an unknown state.
						conn.Conn().Close(context.Background())
					}
					return err
				}
				signal()
			}
		}()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("mail outbox: not listening for new mail; polling until reconnected", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.o.PollInterval)
	}
}

// DeliverDue delivers every mail that is due, batch by batch, and returns
// how many it handed to the transport successfully.
func (s *Sender) DeliverDue(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		leased := time.Now().Add(s.o.Lease)
		mails, err := s.st.ClaimMail(ctx, s.o.BatchSize, s.o.Lease)
		if err != nil {
			return total, err
		}
		if len(mails) == 0 {
			return total, nil
		}
		total += s.deliverBatch(ctx, mails, leased)
	}
	return total, nil
}

// deliverBatch delivers claimed mails, Workers at a time. The claim holds
// until leased; a mail whose turn comes too late for its delivery to end
// within it has its lease renewed first, or is left alone when another
// sender has claimed it since.
func (s *Sender) deliverBatch(ctx context.Context, mails []tickets.OutboxMail, leased time.Time) int {
	jobs := make(chan tickets.OutboxMail)
	var mu sync.Mutex
	sent := 0
	var wg sync.WaitGroup
	for range min(s.o.Workers, len(mails)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range jobs {
				if time.Until(leased) < s.o.SendTimeout+s.o.Lease/10 && !s.renew(ctx, m) {
					continue
				}
				if s.deliver(ctx, m) {
					mu.Lock()
					sent++
					mu.Unlock()
				}
			}
		}()
	}
	i := 0
feed:
	for ; i < len(mails) && ctx.Err() == nil; i++ {
		select {
		case jobs <- mails[i]:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	// Shutting down: claimed mails not started go back at once.
	for _, m := range mails[i:] {
		if err := s.st.ReleaseMail(context.WithoutCancel(ctx), m.ID, m.Attempts); err != nil {
			s.log.Warn("mail outbox: release", "message_id", m.MessageID, "err", err)
		}
	}
	return sent
}

// renew extends the claim on m before its delivery; false means m is not
// to be sent now: another sender claimed it, or the database could not
// say.
func (s *Sender) renew(ctx context.Context, m tickets.OutboxMail) bool {
	held, err := s.st.RenewMailLease(ctx, m.ID, m.Attempts, s.o.Lease)
	switch {
	case err != nil:
		s.log.Warn("mail outbox: renewing a claim", "message_id", m.MessageID, "err", err)
	case !held:
		s.log.Info("mail outbox: claim lost while waiting; another sender has the mail", "message_id", m.MessageID)
	}
	return err == nil && held
}

// deliver sends one mail and records the outcome. A delivery that started
// is finished even when ctx ends, within SendTimeout.
func (s *Sender) deliver(ctx context.Context, m tickets.OutboxMail) (ok bool) {
	log := s.log.With("message_id", m.MessageID, "kind", m.Kind, "attempt", m.Attempts)
	if m.TicketID != nil {
		log = log.With("ticket_id", *m.TicketID)
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error("mail delivery panicked", "err", fmt.Errorf("panic: %v", p), "stack", string(debug.Stack()))
			ok = false
		}
	}()
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.SendTimeout)
	err := s.o.Transport.Send(sendCtx, m.EnvelopeFrom, m.Recipients, m.Data)
	cancel()

	// Record the outcome even while shutting down, retrying while the
	// database is unreachable: an unrecorded 250 means a second delivery.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.Lease/2)
	defer rcancel()
	record := func(f func(context.Context) error) {
		for wait := 50 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
			err := f(rctx)
			if err == nil {
				return
			}
			if rctx.Err() != nil {
				log.Error("mail outbox: could not record the delivery outcome; it will be tried again", "err", err)
				return
			}
			log.Warn("mail outbox: recording the delivery outcome", "err", err)
			select {
			case <-rctx.Done():
			case <-time.After(wait):
			}
		}
	}

	switch {
	case err == nil:
		record(func(ctx context.Context) error {
			held, cleared, err := s.st.MarkMailSent(ctx, m.ID, m.Attempts)
			if err == nil && !held {
				log.Warn("mail sent after its lease passed; another sender may send it too")
			}
			if len(cleared) > 0 {
				log.Info("bouncing mark cleared: the relay accepted mail to the address", "addresses", cleared)
			}
			return err
		})
		s.o.Metrics.MailSent()
		log.Info("mail sent", "to", m.Recipients)
		return true
	case Permanent(err):
		record(func(ctx context.Context) error {
			_, err := s.st.MarkMailFailed(ctx, m.ID, m.Attempts, err.Error())
			return err
		})
		s.o.Metrics.DeliveryFailed(true)
		log.Error("mail refused for good", "to", m.Recipients, "err", err)
		return false
	default:
		wait := s.backoff(m.Attempts)
		record(func(ctx context.Context) error {
			_, failed, rerr := s.st.MarkMailRetry(ctx, m.ID, m.Attempts, wait, s.o.GiveUpAfter, err.Error())
			if rerr == nil && failed {
				log.Error("mail given up after failing since it was queued", "queued_at", m.CreatedAt, "err", err)
			}
			return rerr
		})
		s.o.Metrics.DeliveryFailed(false)
		log.Warn("mail not sent; will try again", "to", m.Recipients, "retry_in", wait, "err", err)
		return false
	}
}

// backoff is RetryMin doubled per attempt, capped at RetryMax, with ±20%
// jitter so that mails failed together do not retry together.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.o.RetryMin
	for i := 1; i < attempt && d < s.o.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.o.RetryMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
