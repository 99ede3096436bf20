package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"ticketd/admin"
	"ticketd/tickets"
)

func TestNewRequiresOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	full := admin.Options{Pool: e.pool, Notifier: e.notifier, Deliver: e.intake.Deliver, Keys: e.keys,
		BaseURL: "https://support.example.com", SupportAddress: support}
	for _, tc := range []struct {
		name   string
		change func(*admin.Options)
		want   string
	}{
		{"no pool", func(o *admin.Options) { o.Pool = nil }, "Pool"},
		{"no notifier", func(o *admin.Options) { o.Notifier = nil }, "Notifier"},
		{"no intake", func(o *admin.Options) { o.Deliver = nil }, "Deliver"},
		{"no keys", func(o *admin.Options) { o.Keys = nil }, "Keys"},
		{"relative base url", func(o *admin.Options) { o.BaseURL = "/support" }, "BaseURL"},
		{"bad support address", func(o *admin.Options) { o.SupportAddress = "support" }, "SupportAddress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := full
			tc.change(&o)
			if _, err := admin.New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := admin.New(full); err != nil {
		t.Fatalf("New with every option: %v", err)
	}
}

func TestSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	inactive := e.user("gone@example.com", "", tickets.RoleModerator, nil)
	off := false
	if _, err := e.st.UpdateUser(ctx, inactive.ID, tickets.UserUpdate{Active: &off}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		email    string
		password string
		status   int
	}{
		{"admin", e.admin.Email, password, http.StatusSeeOther},
		{"moderator, address in other case", strings.ToUpper(e.mod.Email), password, http.StatusSeeOther},
		{"wrong password", e.admin.Email, "not the password", http.StatusUnprocessableEntity},
		{"unknown address", "nobody@example.com", password, http.StatusUnprocessableEntity},
		{"requester with a password", e.req.Email, password, http.StatusUnprocessableEntity},
		{"deactivated moderator", inactive.Email, password, http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client()
			res := c.post("/signin", url.Values{"email": {tc.email}, "password": {tc.password}})
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, res.body)
			}
			list := c.get("/tickets")
			signedIn := list.StatusCode == http.StatusOK
			if signedIn != (tc.status == http.StatusSeeOther) {
				t.Fatalf("after sign-in /tickets answers %d", list.StatusCode)
			}
			if !signedIn && !strings.Contains(res.body, "Wrong email or password") {
				t.Fatalf("failure page does not say why: %s", res.body)
			}
		})
	}
}

func TestSignInRedirectsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "jammed", e.req, &e.mod, "")
	c := e.client()
	res := c.get("/tickets/" + itoa(tk.ID))
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/signin" {
		t.Fatalf("anonymous ticket page: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res = c.post("/signin", url.Values{"email": {e.mod.Email}, "password": {password}})
	if got, want := res.Header.Get("Location"), "/tickets/"+itoa(tk.ID); got != want {
		t.Fatalf("after sign-in: redirect to %q, want %q", got, want)
	}
}

// TestSessionFixation plants a session before sign-in, as an attacker who
// set the victim's cookie would, and checks that signing in moves to a new
// session id and the planted one is worth nothing.
func TestSessionFixation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client()
	c.get("/tickets") // stores where to go after sign-in: a session exists now
	before := c.cookie("ticketd_session")
	if before == "" {
		t.Fatal("no session cookie before sign-in")
	}
	c.signIn(e.admin)
	after := c.cookie("ticketd_session")
	if after == "" || after == before {
		t.Fatalf("session id before %q and after sign-in %q: want a new one", before, after)
	}
	if n := e.count(`SELECT count(*) FROM sessions WHERE token = $1`, before); n != 0 {
		t.Fatalf("the planted session is still stored")
	}
	attacker := e.client()
	u, _ := url.Parse(e.srv.URL)
	attacker.jar.SetCookies(u, []*http.Cookie{{Name: "ticketd_session", Value: before, Path: "/"}})
	if res := attacker.get("/tickets"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the planted session id opens /tickets: %d", res.StatusCode)
	}
	if res := c.get("/tickets"); res.StatusCode != http.StatusOK {
		t.Fatalf("the signed-in session: %d", res.StatusCode)
	}

	// Signing out ends the session on the server, not only in the browser.
	c.post("/signout", nil)
	if n := e.count(`SELECT count(*) FROM sessions WHERE token = $1`, after); n != 0 {
		t.Fatal("session still stored after sign-out")
	}
}

// TestPasswordChangeEndsSessions: a new password ends the account's other
// sessions; the admin who changes their own stays signed in.
func TestPasswordChangeEndsSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mod, self, other := e.client(), e.client(), e.client()
	mod.signIn(e.mod)
	self.signIn(e.admin)
	other.signIn(e.admin)
	form := func(u tickets.User, pw string) url.Values {
		return url.Values{"name": {u.Name}, "role": {string(u.Role)}, "skills": {strings.Join(u.Skills, ",")},
			"active": {"1"}, "password": {pw}}
	}
	if res := self.post("/people/"+itoa(e.mod.ID), form(e.mod, "a new password for mo")); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("changing the moderator's password: %d %s", res.StatusCode, res.body)
	}
	if res := mod.get("/tickets"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the moderator's session outlived the password change: %d", res.StatusCode)
	}
	if res := self.post("/people/"+itoa(e.admin.ID), form(e.admin, "a new password for me")); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("changing one's own password: %d %s", res.StatusCode, res.body)
	}
	if res := self.get("/tickets"); res.StatusCode != http.StatusOK {
		t.Errorf("the admin who changed their own password was signed out: %d", res.StatusCode)
	}
	if res := other.get("/tickets"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the admin's other session outlived the password change: %d", res.StatusCode)
	}
	// A change without a new password ends nothing.
	if res := self.post("/people/"+itoa(e.mod2.ID), form(e.mod2, "")); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("renaming: %d", res.StatusCode)
	}
	if res := self.get("/tickets"); res.StatusCode != http.StatusOK {
		t.Errorf("signed out by a change without a password: %d", res.StatusCode)
	}
}

func TestSignInRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *admin.Options) {
		o.Limits = admin.Limits{FreeFailures: 3, FreeFailuresPerIP: 5, FirstDelay: time.Hour}
	})
	c := e.client()
	wrong := url.Values{"email": {e.admin.Email}, "password": {"guess"}}
	for i := 0; i < 3; i++ {
		if res := c.post("/signin", wrong); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("failure %d: %d", i+1, res.StatusCode)
		}
	}
	res := c.post("/signin", url.Values{"email": {e.admin.Email}, "password": {password}})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right password after 3 failures from this address: %d, want 429 with Retry-After", res.StatusCode)
	}
	if c.get("/tickets").StatusCode == http.StatusOK {
		t.Fatal("signed in past the limit")
	}
	// Another account from the same address still works until the address
	// reaches its own limit.
	c.signIn(e.mod)
	c2 := e.client()
	other := url.Values{"email": {e.mod2.Email}, "password": {"guess"}}
	for i := 4; i <= 5; i++ {
		if res := c2.post("/signin", other); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("failure %d from this address: %d", i, res.StatusCode)
		}
	}
	res = c2.post("/signin", url.Values{"email": {e.mod2.Email}, "password": {password}})
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 5 failures from one address: %d, want 429", res.StatusCode)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Disk full", "help", e.req, &e.mod, "")
	c := e.client()
	c.signIn(e.admin)
	path := "/tickets/" + itoa(tk.ID) + "/status"
	tok := c.token()
	for _, tc := range []struct {
		name   string
		form   url.Values
		origin string
	}{
		{"no token", url.Values{"status": {"completed"}}, e.srv.URL},
		{"forged token", url.Values{"status": {"completed"}, "csrf_token": {strings.Repeat("A", 88)}}, e.srv.URL},
		{"token from another site's page", url.Values{"status": {"completed"}, "csrf_token": {tok}}, "https://evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.postRaw(path, tc.form, tc.origin)
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", res.StatusCode)
			}
			got, _ := e.st.Ticket(context.Background(), tk.ID)
			if got.Status != tickets.StatusTodo {
				t.Fatalf("the refused post changed the status to %s", got.Status)
			}
		})
	}
	res := c.postRaw(path, url.Values{"status": {"completed"}, "csrf_token": {tok}}, e.srv.URL)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("with the token: %d %s", res.StatusCode, res.body)
	}
	got, _ := e.st.Ticket(context.Background(), tk.ID)
	if got.Status != tickets.StatusCompleted {
		t.Fatalf("status %s after a good post", got.Status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		t.Run("secure="+map[bool]string{false: "false", true: "true"}[secure], func(t *testing.T) {
			e := newEnv(t, func(o *admin.Options) { o.SecureCookies = secure })
			c := e.client()
			res := c.get("/signin")
			h := res.Header
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP allows inline code: %q", csp)
			}
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
				"Referrer-Policy": "same-origin", "Cache-Control": "no-store"} {
				if got := h.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if got := h.Get("Strict-Transport-Security") != ""; got != secure {
				t.Errorf("HSTS sent: %v, want %v", got, secure)
			}
			// Sign in over plain HTTP only when cookies are not Secure: the
			// test server has no TLS.
			res = c.post("/signin", url.Values{"email": {e.admin.Email}, "password": {password}})
			var session *http.Cookie
			for _, ck := range res.Cookies() {
				if ck.Name == "ticketd_session" {
					session = ck
				}
			}
			if session == nil {
				t.Fatal("no session cookie set at sign-in")
			}
			if !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure != secure {
				t.Errorf("session cookie HttpOnly=%v SameSite=%v Secure=%v", session.HttpOnly, session.SameSite, session.Secure)
			}
		})
	}
}

func TestStaticAndUnknownPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client()
	res := c.get("/static/style.css")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("stylesheet: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res := c.get("/no/such/page"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown page: %d", res.StatusCode)
	}
}
