package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"ticketd/admin"
	"ticketd/signing"
	"ticketd/tickets"
)

var signInLinkRE = regexp.MustCompile(`/portal/login\?token=([a-z0-9]+)`)

// mailedLink finds the sign-in link in the mail queued for addr. The mail
// is quoted-printable, so soft line breaks are undone first.
func (e *env) mailedLink(addr string) string {
	e.t.Helper()
	var data []byte
	err := e.pool.QueryRow(context.Background(), `SELECT data FROM mail_outbox
		WHERE kind = 'sign-in' AND $1 = ANY(recipients) ORDER BY id DESC LIMIT 1`, addr).Scan(&data)
	if err != nil {
		e.t.Fatalf("no sign-in mail for %s: %v", addr, err)
	}
	text := strings.ReplaceAll(strings.ReplaceAll(string(data), "=\r\n", ""), "=3D", "=")
	m := signInLinkRE.FindStringSubmatch(text)
	if m == nil {
		e.t.Fatalf("no sign-in link in the mail:\n%s", text)
	}
	return m[1]
}

func TestPortalSignInLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mine := e.ticket("My printer", "broken", e.req, &e.mod, "")
	e.ticket("Their printer", "broken too", e.req2, &e.mod, "")
	c := e.client()

	// Known and unknown addresses get the same page; only the known one a mail.
	known := c.post("/portal/signin", url.Values{"email": {"Req@Example.com"}})
	unknown := c.post("/portal/signin", url.Values{"email": {"stranger@example.com"}})
	if known.StatusCode != http.StatusOK || unknown.StatusCode != http.StatusOK {
		t.Fatalf("statuses %d and %d", known.StatusCode, unknown.StatusCode)
	}
	strip := func(s, email string) string { return strings.ReplaceAll(s, email, "") }
	if strip(known.body, "req@example.com") != strip(unknown.body, "stranger@example.com") {
		t.Fatal("the answer differs between a known and an unknown address")
	}
	if n := e.count(`SELECT count(*) FROM mail_outbox WHERE kind = 'sign-in'`); n != 1 {
		t.Fatalf("%d sign-in mails, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM portal_sign_in_tokens`); n != 1 {
		t.Fatalf("%d tokens, want 1", n)
	}
	token := e.mailedLink("req@example.com")
	if n := e.count(`SELECT count(*) FROM portal_sign_in_tokens WHERE token_hash = $1`, []byte(token)); n != 0 {
		t.Fatal("the token is stored in the clear")
	}

	// Opening the link only shows a button: a mail scanner fetching it
	// does not use it up.
	for i := 0; i < 2; i++ {
		res := c.get("/portal/login?token=" + token)
		if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "req@example.com") {
			t.Fatalf("GET link %d: %d", i, res.StatusCode)
		}
	}
	res := c.post("/portal/login", url.Values{"token": {token}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/portal" {
		t.Fatalf("sign in by link: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	home := c.get("/portal")
	if !strings.Contains(home.body, "My printer") || strings.Contains(home.body, "Their printer") {
		t.Fatalf("my tickets shows the wrong tickets:\n%s", home.body)
	}
	if !strings.Contains(home.body, `id="group-in_progress"`) || !strings.Contains(home.body, `id="group-completed"`) {
		t.Fatal("my tickets is not grouped by status")
	}
	if c.get("/portal/tickets/"+itoa(mine.ID)).StatusCode != http.StatusOK {
		t.Fatal("cannot open my own ticket")
	}
	// The button clicked twice: the second click finds the link used
	// and the person signed in already.
	if res := c.post("/portal/login", url.Values{"token": {token}}); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/portal" {
		t.Fatalf("second click: %d %s, want the portal", res.StatusCode, res.Header.Get("Location"))
	}
	// A link works once.
	again := e.client()
	if res := again.post("/portal/login", url.Values{"token": {token}}); res.StatusCode != http.StatusGone {
		t.Fatalf("second use: %d, want 410", res.StatusCode)
	}
	if res := again.get("/portal/login?token=" + token); res.StatusCode != http.StatusGone {
		t.Fatalf("opening a used link: %d, want 410", res.StatusCode)
	}
	// A link-signed-in requester gets no staff pages.
	if res := c.get("/tickets"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("requester on /tickets: %d", res.StatusCode)
	}
}

func TestPortalSignInLinkExpiresAndLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *admin.Options) {
		o.SignInLinkTTL = time.Second
		o.Limits = admin.Limits{LinksPerAddress: 2}
	})
	c := e.client()
	c.post("/portal/signin", url.Values{"email": {e.req.Email}})
	token := e.mailedLink(e.req.Email)
	if _, err := e.pool.Exec(context.Background(), `UPDATE portal_sign_in_tokens SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if res := c.post("/portal/login", url.Values{"token": {token}}); res.StatusCode != http.StatusGone {
		t.Fatalf("expired link: %d, want 410", res.StatusCode)
	}
	// The third request within the window mails nothing, and says the same.
	first := c.post("/portal/signin", url.Values{"email": {e.req.Email}})
	third := c.post("/portal/signin", url.Values{"email": {e.req.Email}})
	if first.body != third.body {
		t.Fatal("the limited answer differs")
	}
	if n := e.count(`SELECT count(*) FROM mail_outbox WHERE kind = 'sign-in'`); n != 2 {
		t.Fatalf("%d sign-in mails, want 2", n)
	}
}

func TestSignedTicketLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mine := e.ticket("Mine", "x", e.req, &e.mod, "")
	theirs := e.ticket("Theirs", "y", e.req2, &e.mod, "")
	sign := func(u tickets.User, ticketID int64, p signing.Purpose, exp time.Duration) string {
		return e.keys.Sign(signing.Claims{Purpose: p, TicketID: ticketID, UserID: u.ID, Expires: time.Now().Add(exp)})
	}
	for _, tc := range []struct {
		name     string
		path     string
		status   int
		location string
	}{
		{"valid link", "/t/" + itoa(mine.ID) + "?k=" + sign(e.req, mine.ID, signing.PurposeLink, time.Hour), http.StatusSeeOther, "/portal/tickets/" + itoa(mine.ID)},
		{"outbound's default form", "/tickets/" + itoa(mine.ID) + "?token=" + sign(e.req, mine.ID, signing.PurposeLink, time.Hour), http.StatusSeeOther, "/portal/tickets/" + itoa(mine.ID)},
		{"token of another ticket", "/t/" + itoa(theirs.ID) + "?k=" + sign(e.req, mine.ID, signing.PurposeLink, time.Hour), http.StatusForbidden, ""},
		{"signed for a ticket that is not theirs", "/t/" + itoa(theirs.ID) + "?k=" + sign(e.req, theirs.ID, signing.PurposeLink, time.Hour), http.StatusNotFound, ""},
		{"expired", "/t/" + itoa(mine.ID) + "?k=" + sign(e.req, mine.ID, signing.PurposeLink, -time.Minute), http.StatusForbidden, ""},
		{"reply token used as a link", "/t/" + itoa(mine.ID) + "?k=" + sign(e.req, mine.ID, signing.PurposeReply, time.Hour), http.StatusForbidden, ""},
		{"tampered", "/t/" + itoa(mine.ID) + "?k=" + sign(e.req, mine.ID, signing.PurposeLink, time.Hour) + "a", http.StatusForbidden, ""},
		{"staff link asks for the password", "/t/" + itoa(mine.ID) + "?k=" + sign(e.mod, mine.ID, signing.PurposeLink, time.Hour), http.StatusSeeOther, "/signin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client()
			res := c.get(tc.path)
			if res.StatusCode != tc.status || res.Header.Get("Location") != tc.location {
				t.Fatalf("%d %q, want %d %q", res.StatusCode, res.Header.Get("Location"), tc.status, tc.location)
			}
			signedIn := c.get("/portal").StatusCode == http.StatusOK
			if signedIn != strings.HasPrefix(tc.location, "/portal/") {
				t.Fatalf("signed in: %v", signedIn)
			}
		})
	}
	// The staff member's link leads to the ticket after the password.
	c := e.client()
	c.get("/t/" + itoa(mine.ID) + "?k=" + sign(e.mod, mine.ID, signing.PurposeLink, time.Hour))
	res := c.post("/signin", url.Values{"email": {e.mod.Email}, "password": {password}})
	if got := res.Header.Get("Location"); got != "/tickets/"+itoa(mine.ID) {
		t.Fatalf("after the password: %q", got)
	}
}

// TestSignedLinkKeepsAnotherSession: anyone can send anyone a signed link
// of their own, so opening one never silently replaces the session of
// somebody else signed in on the browser. Staff stay themselves; another
// requester is asked, and only the button switches.
func TestSignedLinkKeepsAnotherSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer jam", "it jams", e.req, &e.mod, "")
	link := "/t/" + itoa(tk.ID) + "?k=" + e.linkToken(e.req, tk.ID)
	signedInAs := func(c *client, who tickets.User) bool {
		t.Helper()
		res := c.get("/portal")
		return res.StatusCode == http.StatusOK && strings.Contains(res.body, who.Email)
	}

	staff := e.client()
	staff.signIn(e.mod)
	for _, path := range []string{link, "/tickets/" + itoa(tk.ID) + "?token=" + e.linkToken(e.req, tk.ID)} {
		res := staff.get(path)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/tickets/"+itoa(tk.ID) {
			t.Fatalf("staff opening %s: %d %q, want the staff page", path, res.StatusCode, res.Header.Get("Location"))
		}
	}
	if res := staff.get("/tickets/" + itoa(tk.ID)); res.StatusCode != http.StatusOK {
		t.Fatalf("the moderator's session is gone: %d", res.StatusCode)
	}
	if signedInAs(staff, e.req) {
		t.Fatal("the moderator's browser is signed in as the requester")
	}

	other := e.client()
	other.signInLink(e.req2, e.ticket("Theirs", "y", e.req2, nil, "").ID)
	res := other.get(link)
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "You are signed in as <strong>"+e.req2.Email) {
		t.Fatalf("another requester opening the link: %d, want the question\n%s", res.StatusCode, res.body)
	}
	if !signedInAs(other, e.req2) {
		t.Fatal("opening the link changed the session")
	}
	res = other.post("/t/"+itoa(tk.ID), url.Values{"k": {e.linkToken(e.req, tk.ID)}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/portal/tickets/"+itoa(tk.ID) {
		t.Fatalf("confirming: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if !signedInAs(other, e.req) {
		t.Fatal("the button did not sign in the link's owner")
	}
}

// TestPortalWritesThroughIntake opens a ticket and replies on the portal;
// both arrive as mail through the real intake, with source "web".
func TestPortalWritesThroughIntake(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	seed := e.ticket("Seed", "x", e.req, nil, "")
	c := e.client()
	c.signInLink(e.req, seed.ID)

	// Validation errors keep what was typed.
	res := c.post("/portal/new", url.Values{"subject": {""}, "body": {"keep this text"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.body, "keep this text") {
		t.Fatalf("empty subject: %d", res.StatusCode)
	}

	form := url.Values{"subject": {"Grüße: the VPN drops"}, "body": {"It drops every hour.\nSince Monday."}, "nonce": {"new-ticket-nonce-1"}}
	res = c.post("/portal/new", form)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/tickets/") {
		t.Fatalf("new ticket: %d %s %s", res.StatusCode, loc, res.body)
	}
	id := strings.TrimPrefix(loc, "/portal/tickets/")
	var tk tickets.Ticket
	if err := e.pool.QueryRow(ctx, `SELECT id, subject, requester_id FROM tickets WHERE id = $1`, id).Scan(&tk.ID, &tk.Subject, &tk.RequesterID); err != nil {
		t.Fatal(err)
	}
	if tk.Subject != "Grüße: the VPN drops" || tk.RequesterID != e.req.ID {
		t.Fatalf("ticket %+v", tk)
	}
	if n := e.count(`SELECT count(*) FROM raw_messages r JOIN messages m ON m.raw_message_id = r.id
		WHERE m.ticket_id = $1 AND r.source = 'web'`, tk.ID); n != 1 {
		t.Fatalf("the opening mail is not a raw message from the web (%d)", n)
	}
	if n := e.count(`SELECT count(*) FROM event_outbox WHERE ticket_id = $1 AND name = 'ticket.created'`, tk.ID); n != 1 {
		t.Fatalf("%d ticket.created events, want 1", n)
	}
	// The same form posted again opens no second ticket.
	c.post("/portal/new", form)
	if n := e.count(`SELECT count(*) FROM tickets WHERE requester_id = $1`, e.req.ID); n != 2 {
		t.Fatalf("%d tickets of the requester, want 2 (seed and new)", n)
	}

	// A reply joins the thread by the signed reply address.
	res = c.post(loc+"/reply", url.Values{"body": {"Still dropping."}, "nonce": {"reply-nonce-0001"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != loc {
		t.Fatalf("reply: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	var rule, text string
	err := e.pool.QueryRow(ctx, `SELECT thread_rule, reply_text FROM messages WHERE ticket_id = $1 AND kind = 'reply'`, tk.ID).Scan(&rule, &text)
	if err != nil {
		t.Fatal(err)
	}
	if rule != "reply-address" || text != "Still dropping." {
		t.Fatalf("reply threaded by %q with text %q", rule, text)
	}
	page := c.get(loc).body
	if !strings.Contains(page, "Still dropping.") || !strings.Contains(page, "Your reply was added.") {
		t.Fatal("the portal does not show the reply")
	}
	// Replying to someone else's ticket is a 404 and stores nothing.
	other := e.ticket("Other", "z", e.req2, nil, "")
	if res := c.post("/portal/tickets/"+itoa(other.ID)+"/reply", url.Values{"body": {"hi"}}); res.StatusCode != http.StatusNotFound {
		t.Fatalf("reply to another's ticket: %d", res.StatusCode)
	}
	if n := e.count(`SELECT count(*) FROM messages WHERE ticket_id = $1`, other.ID); n != 1 {
		t.Fatalf("another's ticket has %d messages", n)
	}
}

func TestPortalShowsFirstResponseAndStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tk := e.ticket("Refund", "money back", e.req, nil, "")
	err := e.st.InTx(ctx, func(tx *tickets.Store) error {
		if err := tx.ApplyTriage(ctx, tk.ID, tickets.Triage{FirstResponse: "We will refund you within 3 days.",
			HelpfulNotes: "staff eyes only: customer is VIP", Priority: tickets.PriorityMedium, AssigneeID: &e.mod.ID}); err != nil {
			return err
		}
		_, err := tx.SetStatus(ctx, tk.ID, tickets.StatusCompleted, tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signInLink(e.req, tk.ID)
	page := c.get("/portal/tickets/" + itoa(tk.ID)).body
	if !strings.Contains(page, "We will refund you within 3 days.") || !strings.Contains(page, `id="status">Completed`) {
		t.Fatal("the portal lacks the first response or the status")
	}
	if strings.Contains(page, "VIP") {
		t.Fatal("the portal shows the helpful notes")
	}
	home := c.get("/portal").body
	i := strings.Index(home, `id="group-completed"`)
	if i < 0 || !strings.Contains(home[i:], "Refund") {
		t.Fatal("the ticket is not under Completed")
	}
}
