package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"ticketd/tickets"
)

// TestAdminClearsBouncing: an address a returned report marked gets no
// sign-in link; the People page lists it with the report; a moderator
// cannot clear it, an admin can, and the next sign-in link goes out.
func TestAdminClearsBouncing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var mailID, rawID int64
	if err := e.pool.QueryRow(ctx, `INSERT INTO mail_outbox (kind, message_id, recipients, data, status, sent_at)
		VALUES ('sign-in', 'earlier@example.com', '{req@example.com}', 'x', 'sent', now() - interval '1 hour') RETURNING id`).Scan(&mailID); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.QueryRow(ctx, `INSERT INTO raw_messages (sha256, data, source) VALUES (sha256('r'), 'report', 'smtp') RETURNING id`).Scan(&rawID); err != nil {
		t.Fatal(err)
	}
	v, err := e.st.BelieveBounce(ctx, tickets.ReturnedReport{MailID: mailID, UserID: e.req.ID, Address: e.req.Email,
		RawMessageID: rawID, Detail: "report <r1@mx.example.net>: 550 5.1.1 no such user"})
	if err != nil || !v.Marked {
		t.Fatalf("BelieveBounce = %+v, %v", v, err)
	}
	signInMails := func() int {
		return e.count(`SELECT count(*) FROM mail_outbox WHERE kind = 'sign-in' AND recipients = '{req@example.com}' AND status = 'pending'`)
	}
	portal := e.client()
	askLink := func() {
		t.Helper()
		page := portal.get("/portal/signin")
		if page.StatusCode != http.StatusOK {
			t.Fatalf("sign-in form: %d", page.StatusCode)
		}
		if res := portal.post("/portal/signin", url.Values{"email": {e.req.Email}}); res.StatusCode != http.StatusOK {
			t.Fatalf("ask for a link: %d", res.StatusCode)
		}
	}
	askLink()
	if n := signInMails(); n != 0 {
		t.Fatalf("%d sign-in links queued to a bouncing address", n)
	}

	admin := e.client()
	admin.signIn(e.admin)
	page := admin.get("/people").body
	if !strings.Contains(page, e.req.Email) || !strings.Contains(page, "550 5.1.1 no such user") {
		t.Fatalf("the People page does not list the bouncing address with its report:\n%s", page)
	}
	mod := e.client()
	mod.signIn(e.mod)
	if res := mod.post("/people/"+itoa(e.req.ID)+"/clear-bouncing", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a moderator clears a bouncing mark: %d", res.StatusCode)
	}
	if u, _ := e.st.User(ctx, e.req.ID); u.BouncingSince == nil {
		t.Fatal("a moderator cleared the mark")
	}
	if res := admin.post("/people/"+itoa(e.req.ID)+"/clear-bouncing", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("clear: %d", res.StatusCode)
	}
	if u, _ := e.st.User(ctx, e.req.ID); u.BouncingSince != nil {
		t.Fatal("the admin's clearing left the mark")
	}
	if page := admin.get("/people").body; !strings.Contains(page, "No address is marked bouncing") {
		t.Errorf("the People page still lists a bouncing address:\n%s", page)
	}
	askLink()
	if n := signInMails(); n != 1 {
		t.Fatalf("%d sign-in links queued after the clearing, want 1", n)
	}
}
