package smtpserver

import (
	"context"
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
