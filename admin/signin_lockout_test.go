package admin_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"ticketd/admin"
)

// clientFrom is a browser on another host: its connections come from the
// local address local (on Linux the whole of 127.0.0.0/8 is loopback).
func (e *env) clientFrom(local string) *client {
	c := e.client()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c.http.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	return c
}

// TestStrangerCannotLockOutStaff: five wrong passwords from anyone used to
// lock a staff account for 15 minutes. Now a stranger guessing at the
// admin's account from another address only makes their own next guess
// wait, longer at each one; the admin, from their address, signs in as
// ever, mistakes included.
func TestStrangerCannotLockOutStaff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *admin.Options) {
		o.Limits = admin.Limits{FreeFailures: 3, FreeFailuresPerIP: 5, FirstDelay: time.Hour, Window: 2 * time.Hour}
	})
	stranger := e.clientFrom("127.0.0.2")
	guess := func(email, pw string) *http.Response {
		t.Helper()
		return stranger.post("/signin", url.Values{"email": {email}, "password": {pw}}).Response
	}
	for i := range 3 {
		if res := guess(e.admin.Email, "guess-"+strconv.Itoa(i)); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("the stranger's guess %d: %d", i+1, res.StatusCode)
		}
	}
	for i := range 20 {
		if res := guess(e.admin.Email, "guess-again-"+strconv.Itoa(i)); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the stranger's guess %d past the free ones: %d, want 429", i+4, res.StatusCode)
		}
	}
	// Even the right password is not checked for the stranger's address
	// while it waits.
	if res := guess(e.admin.Email, password); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right password from the stranger's address: %d, want 429", res.StatusCode)
	}

	// The admin, from their own address, mistypes once and signs in.
	adm := e.clientFrom("127.0.0.1")
	if res := adm.post("/signin", url.Values{"email": {e.admin.Email}, "password": {"typo"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("the admin's typo: %d", res.StatusCode)
	}
	adm.signIn(e.admin)
	if res := adm.get("/tickets"); res.StatusCode != http.StatusOK {
		t.Fatalf("the admin is locked out: %d", res.StatusCode)
	}

	// A stranger guessing across accounts (password spraying) is slowed
	// by their address too, whatever account they try.
	sprayer := e.clientFrom("127.0.0.3")
	for i := range 5 {
		email := "nobody" + strconv.Itoa(i) + "@example.com"
		if res := sprayer.post("/signin", url.Values{"email": {email}, "password": {"Winter2026!"}}); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("spray %d: %d", i+1, res.StatusCode)
		}
	}
	if res := sprayer.post("/signin", url.Values{"email": {e.mod.Email}, "password": {password}}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the sprayer's next account: %d, want 429", res.StatusCode)
	}
	// The moderator is not slowed by it.
	mod := e.clientFrom("127.0.0.4")
	mod.signIn(e.mod)
}

// TestSignInWaitsGrow: each failure past the free ones doubles the wait
// before the next password from that address is checked. Time passes by
// moving the recorded failures back by the wait the server asked for.
func TestSignInWaitsGrow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *admin.Options) {
		o.Limits = admin.Limits{FreeFailures: 1, FreeFailuresPerIP: 100, FirstDelay: time.Hour, Window: 48 * time.Hour}
	})
	c := e.clientFrom("127.0.0.5")
	wrong := url.Values{"email": {e.admin.Email}, "password": {"guess"}}
	var waits []int
	for round := range 3 {
		if res := c.post("/signin", wrong); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("round %d: a wrong password after its wait: %d", round+1, res.StatusCode)
		}
		res := c.post("/signin", wrong)
		if res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("round %d: at once after a failure: %d, want 429", round+1, res.StatusCode)
		}
		secs, err := strconv.Atoi(res.Header.Get("Retry-After"))
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, secs)
		if _, err := e.pool.Exec(context.Background(), `UPDATE web_attempts SET created_at = created_at - make_interval(secs => $1)`, secs); err != nil {
			t.Fatal(err)
		}
	}
	// An hour, two, four: each within a minute of twice the one before.
	for i, w := range waits {
		want := 3600 << i
		if w > want || w < want-60 {
			t.Errorf("waits in seconds %v, want about %d for the %d. failure past the free one", waits, want, i+1)
		}
	}
}
