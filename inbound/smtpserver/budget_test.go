package smtpserver

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBudget(100)

	// A message larger than the whole budget runs alone.
	if err := b.acquire(ctx, 500); err != nil {
		t.Fatal(err)
	}
	small := make(chan struct{})
	go func() {
		if err := b.acquire(ctx, 10); err == nil {
			close(small)
		}
	}()
	waitQueued(t, b, 1)
	select {
	case <-small:
		t.Fatal("a small message started beside one larger than the budget")
	default:
	}
	b.release(500)
	<-small

	// Waiters go in order: a large one queued before a small one is not
	// overtaken, even though the small one would fit.
	if err := b.acquire(ctx, 60); err != nil { // used: 10 + 60
		t.Fatal(err)
	}
	large, late := make(chan struct{}), make(chan struct{})
	go func() {
		if err := b.acquire(ctx, 50); err == nil {
			close(large)
		}
	}()
	waitQueued(t, b, 1)
	go func() {
		if err := b.acquire(ctx, 5); err == nil {
			close(late)
		}
	}()
	waitQueued(t, b, 2)
	select {
	case <-late:
		t.Fatal("a small message overtook a large one waiting before it")
	default:
	}
	b.release(60) // used 10: the large one (50) and then the small one (5) fit
	<-large
	<-late

	// A waiter whose context ends leaves the queue and takes nothing.
	cctx, cancel := context.WithCancel(ctx)
	gave := make(chan error)
	go func() { gave <- b.acquire(cctx, 90) }()
	waitQueued(t, b, 1)
	cancel()
	if err := <-gave; err == nil {
		t.Fatal("acquire with a cancelled context succeeded while the budget was full")
	}
	b.release(10)
	b.release(50)
	b.release(5)
	b.mu.Lock()
	used, waiting := b.used, len(b.waiters)
	b.mu.Unlock()
	if used != 0 || waiting != 0 {
		t.Errorf("after releasing everything: used %d, %d waiting", used, waiting)
	}
}

func waitQueued(t *testing.T, b *budget, n int) {
	t.Helper()
	for i := 0; ; i++ {
		b.mu.Lock()
		got := len(b.waiters)
		b.mu.Unlock()
		if got == n {
			return
		}
		if i > 5000 {
			t.Fatalf("%d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// dataSession is a session of s for calling Data directly, with the size
// the client declared (0: none).
func dataSession(s *Server, sizeHint int64) *session {
	log := slog.New(slog.DiscardHandler)
	return &session{s: s, c: &conn{s: s, log: log}, log: log, sizeHint: sizeHint}
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// TestBudgetAfterBusy: a small message that waited too long for its share
// is answered 452 and gives back nothing it did not take.
func TestBudgetAfterBusy(t *testing.T) {
	t.Parallel()
	s, err := New(Options{
		Deliver:          func(context.Context, []byte, Envelope) error { return nil },
		Accepts:          func(string) bool { return true },
		MaxMessageBytes:  1000,
		MaxInflightBytes: 1000,
		ReadTimeout:      50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.budget.acquire(context.Background(), 1000); err != nil { // another message holds it all
		t.Fatal(err)
	}
	if err := dataSession(s, 0).Data(strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); !errors.Is(err, errBusy) {
		t.Fatalf("Data: %v, want 452", err)
	}
	if used := s.budget.inUse(); used != 1000 {
		t.Errorf("budget in use %d after the refused message, want 1000 (the other message's)", used)
	}
}

// TestBudgetSizeUnderstated: a message larger than the SIZE its client
// declared takes a full share before the rest is read, so a lie does not
// get past the budget; one about its declared size is delivered.
func TestBudgetSizeUnderstated(t *testing.T) {
	t.Parallel()
	var delivered int
	s, err := New(Options{
		Deliver:          func(_ context.Context, raw []byte, _ Envelope) error { delivered = len(raw); return nil },
		Accepts:          func(string) bool { return true },
		MaxMessageBytes:  100_000,
		MaxInflightBytes: 10_000,
		ReadTimeout:      50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.budget.acquire(context.Background(), 9_000); err != nil { // other mail in flight
		t.Fatal(err)
	}
	big := "Subject: hi\r\n\r\n" + strings.Repeat("x", 50_000) + "\r\n"
	if err := dataSession(s, 1).Data(strings.NewReader(big)); !errors.Is(err, errBusy) {
		t.Errorf("a %d-byte message declared as 1 byte: %v (%d bytes delivered), want 452", len(big), err, delivered)
	}
	// Alone on the server, the same message is taken, declared size or
	// not, although it is larger than the whole budget.
	s.budget.release(9_000)
	for _, hint := range []int64{0, 1, 40_000} {
		delivered = 0
		if err := dataSession(s, hint).Data(strings.NewReader(big)); err != nil || delivered != len(big) {
			t.Errorf("alone, declared as %d bytes: %v, %d bytes delivered", hint, err, delivered)
		}
	}
	if err := s.budget.acquire(context.Background(), 9_000); err != nil {
		t.Fatal(err)
	}
	small := "Subject: hi\r\n\r\n" + strings.Repeat("x", 500) + "\r\n"
	if err := dataSession(s, int64(len(small))-10).Data(strings.NewReader(small)); err != nil || delivered != len(small) {
		t.Errorf("a message about its declared size: %v, %d bytes delivered", err, delivered)
	}
	if used := s.budget.inUse(); used != 9_000 {
		t.Errorf("budget in use %d afterwards, want 9000 (the other mail's)", used)
	}
}
