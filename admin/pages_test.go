package admin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"ticketd/admin"
	"ticketd/tickets"
)

// A moderator on a ticket page must get the staff navigation, not the
// requester portal's.
func TestModeratorTicketPageNav(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, &e.mod, "")
	c := e.client()
	c.signIn(e.mod)
	res := c.get("/tickets/" + itoa(tk.ID))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, res.body)
	}
	if strings.Contains(res.body, `href="/portal/new"`) || !strings.Contains(res.body, `<a href="/tickets" class="active">Tickets</a>`) {
		t.Errorf("moderator's ticket page shows the portal nav:\n%s", res.body[:strings.Index(res.body, "</header>")])
	}
}

// A token name of 60 characters (within the form's maxlength="100") is
// taken: the limit counts characters, not bytes.
func TestTokenNameCountsCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client()
	c.signIn(e.mod)
	name := strings.Repeat("ж", 60) // 60 characters, 120 bytes
	res := c.post("/tokens", url.Values{"name": {name}})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("a 60-character token name: %d, %s", res.StatusCode, errorText(res.body))
	}
}

func errorText(body string) string {
	if i := strings.Index(body, `class="error"`); i >= 0 {
		return body[i:min(len(body), i+200)]
	}
	return ""
}

// A staff reply refused for its files comes back with the text the
// moderator wrote, to fix and send again.
func TestStaffReplyKeepsTextOnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, &e.mod, "")
	c := e.client()
	c.signIn(e.mod)
	many := make([]file, 11)
	for i := range many {
		many[i] = file{"f.txt", "text/plain", []byte("x")}
	}
	const typed = "A long careful answer about tray 2."
	res := c.postFiles("/tickets/"+itoa(tk.ID)+"/reply", map[string]string{"body": typed, "internal": "0", "nonce": "r1r1r1r1"}, many)
	loc := res.Header.Get("Location")
	page := res.body
	if res.StatusCode == http.StatusSeeOther {
		page = c.get(loc).body
	}
	if !strings.Contains(page, "at most 10 files") {
		t.Fatalf("no error shown: %d", res.StatusCode)
	}
	if !strings.Contains(page, typed) {
		t.Errorf("the typed reply is lost after the validation error (%d -> %s)", res.StatusCode, loc)
	}
}

// The same on the portal.
func TestPortalReplyKeepsTextOnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, nil, "")
	c := e.client()
	c.signInLink(e.req, tk.ID)
	many := make([]file, 11)
	for i := range many {
		many[i] = file{"f.txt", "text/plain", []byte("x")}
	}
	const typed = "Here are all my logs, explained at length."
	res := c.postFiles("/portal/tickets/"+itoa(tk.ID)+"/reply", map[string]string{"body": typed, "nonce": "p1p1p1p1"}, many)
	page := res.body
	if res.StatusCode == http.StatusSeeOther {
		page = c.get(res.Header.Get("Location")).body
	}
	if !strings.Contains(page, "at most 10 files") {
		t.Fatalf("no error shown: %d", res.StatusCode)
	}
	if !strings.Contains(page, typed) {
		t.Errorf("the typed reply is lost after the validation error")
	}
}

// TestPortalReplyTwice: a reply posted twice (a double click, a reload) is
// stored once, and the second answer says so.
func TestPortalReplyTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, nil, "")
	c := e.client()
	c.signInLink(e.req, tk.ID)
	form := url.Values{"body": {"Still jams."}, "nonce": {"reply-nonce-0001"}}
	for i := 0; i < 2; i++ {
		res := c.post("/portal/tickets/"+itoa(tk.ID)+"/reply", form)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("%d: %d", i, res.StatusCode)
		}
	}
	if n := e.count(`SELECT count(*) FROM messages WHERE ticket_id = $1 AND kind = 'reply'`, tk.ID); n != 1 {
		t.Fatalf("%d replies", n)
	}
	if page := c.get("/portal/tickets/" + itoa(tk.ID)).body; !strings.Contains(page, "received already") {
		t.Fatal("no duplicate notice")
	}
}

// Saving the notes form untouched must not change the notes: browsers send
// a textarea's line breaks as CRLF.
func TestNotesUntouchedSaveIsNoChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, &e.mod, "")
	if err := e.st.InTx(t.Context(), func(tx *tickets.Store) error {
		_, err := tx.SetHelpfulNotes(t.Context(), tk.ID, "Check tray 2.\nThen the fuser.", tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signIn(e.mod)
	before := e.count(`SELECT count(*) FROM audit_log WHERE ticket_id = $1`, tk.ID)
	c.post("/tickets/"+itoa(tk.ID)+"/notes", url.Values{"notes": {"Check tray 2.\r\nThen the fuser."}})
	page := c.get("/tickets/" + itoa(tk.ID)).body
	if n := e.count(`SELECT count(*) FROM audit_log WHERE ticket_id = $1`, tk.ID); n != before || !strings.Contains(page, "Helpful notes unchanged.") {
		t.Errorf("an untouched notes form was saved as a change: %d new audit entries", n-before)
	}
}

// The audit trail names statuses as the rest of the page and the mails do.
func TestAuditStatusLabels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer", "It jams.", e.req, &e.mod, "")
	c := e.client()
	c.signIn(e.mod)
	c.post("/tickets/"+itoa(tk.ID)+"/status", url.Values{"status": {"in_progress"}})
	page := c.get("/tickets/" + itoa(tk.ID)).body
	trail := page[strings.Index(page, "Audit trail"):]
	trail = trail[:strings.Index(trail, "</table>")]
	if strings.Contains(trail, "in_progress") || !strings.Contains(trail, "To-Do → In-Progress") {
		t.Errorf("the audit trail does not show statuses as labels:\n%s", trail)
	}
}

// A link to a page past the end (tickets closed since) leads to the last
// page, not to "no tickets match" under tabs that count some.
func TestPagePastEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ticket("Printer", "It jams.", e.req, nil, "")
	c := e.client()
	c.signIn(e.admin)
	page := c.get("/tickets?page=2").body
	if strings.Contains(page, "No tickets match these filters.") {
		t.Errorf("page 2 of 1 claims no ticket matches; All tab counts 1")
	}
}

// A moderator who wrote to support themselves follows the link of their
// acknowledgement: the ticket is someone else's to work, so it opens on the
// portal, where the moderator takes part in it like any requester.
func TestStaffRequesterLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("My laptop", "It is broken.", e.mod, &e.mod2, "")
	c := e.client()
	c.signIn(e.mod)
	res := c.get(admin.TicketLink("")(tk.ID, e.linkToken(e.mod, tk.ID)))
	loc := res.Header.Get("Location")
	page := c.get(loc)
	if page.StatusCode != http.StatusOK {
		t.Errorf("the link of one's own ticket leads to %s: %d", loc, page.StatusCode)
	}
}
