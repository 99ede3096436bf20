package workflows

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ticketd/pgtest"
	"ticketd/testlog"
)

// TestUnsignedCallsOnlyFromLoopback: in dev mode, where the dev server
// signs nothing, the public handler refuses every call and the loopback
// handler refuses callers elsewhere; with a signing key, an unsigned call
// runs nothing on either.
func TestUnsignedCallsOnlyFromLoopback(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	dev, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, Dev: "http://127.0.0.1:1", Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := New(Options{Pool: pool, Notifier: outboxNotifier{}, EventKey: "event-key", BaseURL: "http://127.0.0.1:1", ServeOrigin: "http://desk.example",
		SigningKey: "signkey-prod-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !dev.AcceptsUnsigned() || signed.AcceptsUnsigned() {
		t.Fatalf("AcceptsUnsigned: dev %v, signed %v", dev.AcceptsUnsigned(), signed.AcceptsUnsigned())
	}
	// What an attacker posts: run notify-assigned with an event of theirs.
	call := func(h http.Handler, remote string) int {
		req := httptest.NewRequest(http.MethodPost, "http://desk.example/api/inngest?fnId=ticketd-notify-assigned&stepId=step",
			strings.NewReader(`{"event":{"name":"ticket.assigned","data":{"ticket_id":1,"assignee_id":2}},"ctx":{"run_id":"r1"},"steps":{}}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tc := range []struct {
		name   string
		h      http.Handler
		remote string
	}{
		{"dev mode, public listener, from afar", dev.PublicHandler(), "203.0.113.7:5000"},
		{"dev mode, public listener, through a proxy on the host", dev.PublicHandler(), "127.0.0.1:5000"},
		{"dev mode, loopback handler, from afar", dev.Handler(), "203.0.113.7:5000"},
		{"signed mode, public listener", signed.PublicHandler(), "203.0.113.7:5000"},
		{"signed mode, loopback handler", signed.Handler(), "127.0.0.1:5000"},
	} {
		if code := call(tc.h, tc.remote); code != http.StatusUnauthorized {
			t.Errorf("%s: an unsigned call answered %d, want 401", tc.name, code)
		}
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM mail_outbox`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d mails queued, %v", n, err)
	}
}
