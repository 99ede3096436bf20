// Package testlog sends a test's slog output to t.Log, so logs show only
// for failing tests (or with -v), beside the test that wrote them.
package testlog

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// A goroutine may still log after the test ended; t.Log would panic.
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// New returns a debug-level logger writing to t.Log until t ends.
func New(t testing.TB) *slog.Logger {
	w := &writer{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
