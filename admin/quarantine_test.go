package admin_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"ticketd/tickets"
)

const bounce = "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n" +
	"To: support@example.com\r\n" +
	"Subject: Undelivered Mail Returned to Sender\r\n" +
	"Message-ID: <bounce-1@mx.example.net>\r\n" +
	"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"I'm sorry to have to inform you that your message could not be delivered.\r\n" +
	"<ghost@example.org>: host said: 550 5.1.1 user unknown\r\n"

func (e *env) hold(raw, kind, reason string) int64 {
	e.t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte(raw))
	var rawID, id int64
	if err := e.pool.QueryRow(ctx, `INSERT INTO raw_messages (sha256, data, source) VALUES ($1, $2, 'smtp') RETURNING id`,
		sum[:], []byte(raw)).Scan(&rawID); err != nil {
		e.t.Fatal(err)
	}
	if err := e.pool.QueryRow(ctx, `INSERT INTO quarantine (raw_message_id, auto_kind, reason, from_address, subject, message_id)
		VALUES ($1, $2, $3, 'mailer-daemon@mx.example.net', 'Undelivered Mail Returned to Sender', 'bounce-1@mx.example.net')
		RETURNING id`, rawID, kind, reason).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func TestQuarantine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.hold(bounce, "bounce", "a delivery failure that names no ticket")
	c := e.client()
	c.signIn(e.admin)

	list := c.get("/quarantine").body
	for _, want := range []string{"a delivery failure that names no ticket", "bounce", "Undelivered Mail Returned to Sender", "Open as ticket"} {
		if !strings.Contains(list, want) {
			t.Errorf("quarantine list lacks %q", want)
		}
	}
	show := c.get("/quarantine/" + itoa(id))
	if show.StatusCode != http.StatusOK || !strings.Contains(show.body, "550 5.1.1 user unknown") {
		t.Fatalf("held mail page: %d", show.StatusCode)
	}

	res := c.post("/quarantine/"+itoa(id)+"/release", nil)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/tickets/") {
		t.Fatalf("release: %d %s", res.StatusCode, loc)
	}
	tid := strings.TrimPrefix(loc, "/tickets/")
	var h struct {
		released bool
		by       *int64
		ticket   *int64
	}
	if err := e.pool.QueryRow(ctx, `SELECT released_at IS NOT NULL, released_by, released_ticket_id FROM quarantine WHERE id = $1`, id).
		Scan(&h.released, &h.by, &h.ticket); err != nil {
		t.Fatal(err)
	}
	if !h.released || h.by == nil || *h.by != e.admin.ID || h.ticket == nil || itoa(*h.ticket) != tid {
		t.Fatalf("quarantine row after release: %+v", h)
	}
	tk, err := e.st.Ticket(ctx, *h.ticket)
	if err != nil {
		t.Fatal(err)
	}
	if tk.AutoKind != "bounce" || tk.Subject != "Undelivered Mail Returned to Sender" {
		t.Fatalf("released ticket %+v", tk)
	}
	msgs, _ := e.st.Messages(ctx, tk.ID)
	if len(msgs) != 1 || msgs[0].RawMessageID == nil || !strings.Contains(msgs[0].TextBody, "user unknown") || msgs[0].AutoKind != "bounce" {
		t.Fatalf("released ticket's messages %+v", msgs)
	}
	if n := e.count(`SELECT count(*) FROM event_outbox WHERE ticket_id = $1 AND name = 'ticket.created'`, tk.ID); n != 1 {
		t.Fatalf("%d ticket.created events", n)
	}
	if n := e.count(`SELECT count(*) FROM raw_messages`); n != 1 {
		t.Fatalf("raw mail count %d: nothing may be deleted", n)
	}
	// A second release opens nothing more.
	c.post("/quarantine/"+itoa(id)+"/release", nil)
	if n := e.count(`SELECT count(*) FROM tickets WHERE auto_kind = 'bounce'`); n != 1 {
		t.Fatalf("%d released tickets, want 1", n)
	}
	if !strings.Contains(c.get("/quarantine/"+itoa(id)).body, "opened as a ticket already") {
		t.Error("no notice for the second release")
	}
	if strings.Contains(c.get("/quarantine").body, "Undelivered") {
		t.Error("a released mail is still listed as held")
	}
	if !strings.Contains(c.get("/quarantine?released=1").body, "ticket #"+tid) {
		t.Error("the released list does not link the ticket")
	}

	// Moderators may not release.
	id2 := e.hold(strings.Replace(bounce, "bounce-1", "bounce-2", 1), "auto-reply", "out of office")
	mod := e.client()
	mod.signIn(e.mod)
	if res := mod.post("/quarantine/"+itoa(id2)+"/release", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("moderator release: %d", res.StatusCode)
	}
	if n := e.count(`SELECT count(*) FROM quarantine WHERE released_at IS NULL`); n != 1 {
		t.Fatal("a moderator released held mail")
	}
}

func TestPeople(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.ticket("One", "x", e.req, &e.mod, "")
	e.ticket("Two", "x", e.req, &e.mod, "")
	c := e.client()
	c.signIn(e.admin)
	page := c.get("/people").body
	if !strings.Contains(page, "<strong>2</strong> <span class=\"muted small\">open (2 to do") {
		t.Errorf("people page lacks the moderator's load:\n%s", page)
	}

	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"short password", url.Values{"email": {"new@example.com"}, "role": {"moderator"}, "password": {"short"}}, http.StatusUnprocessableEntity, "at least 10"},
		{"bad address", url.Values{"email": {"not an address"}, "role": {"moderator"}, "password": {password}}, http.StatusUnprocessableEntity, "email address"},
		{"requester role", url.Values{"email": {"new@example.com"}, "role": {"user"}, "password": {password}}, http.StatusUnprocessableEntity, "moderator or admin"},
		{"already staff", url.Values{"email": {e.mod.Email}, "role": {"admin"}, "password": {password}}, http.StatusUnprocessableEntity, "on the staff already"},
		{"new moderator", url.Values{"email": {"new@example.com"}, "name": {"New Mod"}, "role": {"moderator"}, "skills": {"Postgres, networking"}, "password": {password}}, http.StatusSeeOther, ""},
		{"requester promoted", url.Values{"email": {e.req2.Email}, "role": {"admin"}, "password": {password}}, http.StatusSeeOther, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.post("/people", tc.form)
			if res.StatusCode != tc.status || !strings.Contains(res.body, tc.want) {
				t.Fatalf("%d, want %d with %q:\n%s", res.StatusCode, tc.status, tc.want, res.body)
			}
		})
	}
	nu, err := e.st.UserByEmail(ctx, "new@example.com")
	if err != nil || nu.Role != tickets.RoleModerator || strings.Join(nu.Skills, ",") != "networking,postgres" {
		t.Fatalf("new moderator %+v, %v", nu, err)
	}
	newMod := e.client()
	newMod.signIn(nu)
	promoted, _ := e.st.User(ctx, e.req2.ID)
	if promoted.Role != tickets.RoleAdmin {
		t.Fatalf("promoted requester has role %s", promoted.Role)
	}

	// Change role and skills, then deactivate: the session ends at once.
	res := c.post("/people/"+itoa(nu.ID), url.Values{"name": {"New Mod"}, "role": {"moderator"}, "skills": {"billing"}, "active": {"1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("update: %d", res.StatusCode)
	}
	if u, _ := e.st.User(ctx, nu.ID); strings.Join(u.Skills, ",") != "billing" {
		t.Fatalf("skills %v", u.Skills)
	}
	c.post("/people/"+itoa(nu.ID), url.Values{"name": {"New Mod"}, "role": {"moderator"}, "skills": {"billing"}})
	if u, _ := e.st.User(ctx, nu.ID); u.Active {
		t.Fatal("not deactivated")
	}
	if res := newMod.get("/tickets"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a deactivated moderator's session still opens /tickets: %d", res.StatusCode)
	}
	// Moderators may not add or change people.
	mod := e.client()
	mod.signIn(e.mod)
	if res := mod.post("/people", url.Values{"email": {"sneaky@example.com"}, "role": {"admin"}, "password": {password}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("moderator adds a person: %d", res.StatusCode)
	}
	if res := mod.post("/people/"+itoa(e.mod.ID), url.Values{"role": {"admin"}, "active": {"1"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("moderator promotes themselves: %d", res.StatusCode)
	}
	if u, _ := e.st.User(ctx, e.mod.ID); u.Role != tickets.RoleModerator {
		t.Fatal("a moderator promoted themselves")
	}
	if _, err := e.st.UserByEmail(ctx, "sneaky@example.com"); err == nil {
		t.Fatal("a moderator added a person")
	}
	// An admin cannot lock themselves out.
	res = c.post("/people/"+itoa(e.admin.ID), url.Values{"role": {"moderator"}, "active": {"1"}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("self-demotion: %d", res.StatusCode)
	}
	if u, _ := e.st.User(ctx, e.admin.ID); u.Role != tickets.RoleAdmin {
		t.Fatal("the admin demoted themselves")
	}
}

// TestReleaseWithoutMessageID: a held mail without a Message-ID of its own
// gets one like every stored id (no angle brackets), so replies thread to
// it.
func TestReleaseWithoutMessageID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.hold(strings.Replace(bounce, "Message-ID: <bounce-1@mx.example.net>\r\n", "", 1), "bounce", "no ticket")
	if _, err := e.pool.Exec(ctx, `UPDATE quarantine SET message_id = '' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signIn(e.admin)
	res := c.post("/quarantine/"+itoa(id)+"/release", nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("release: %d", res.StatusCode)
	}
	tid := strings.TrimPrefix(res.Header.Get("Location"), "/tickets/")
	want := "quarantine-" + itoa(id) + "@ticketd.invalid"
	var got string
	if err := e.pool.QueryRow(ctx, `SELECT message_id FROM messages WHERE ticket_id = $1`, tid).Scan(&got); err != nil || got != want {
		t.Fatalf("stored Message-ID %q (%v), want %q", got, err, want)
	}
	if res := e.api(e.token(e.admin), "POST", "/tickets/"+tid+"/reply", `{"body":"hello"}`); res.StatusCode != http.StatusCreated {
		t.Fatalf("reply: %d %s", res.StatusCode, res.body)
	}
	var data []byte
	if err := e.pool.QueryRow(ctx, `SELECT data FROM mail_outbox WHERE ticket_id = $1 AND kind = 'reply'`, tid).Scan(&data); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "References: <"+want+">") {
		t.Errorf("the reply does not thread to the released mail:\n%s", data)
	}
}
