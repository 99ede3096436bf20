package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ticketd/admin"
	"ticketd/tickets"
)

var rowRE = regexp.MustCompile(`<a href="/tickets/(\d+)">`)

// listed returns the ticket ids a list page shows, in order.
func listed(body string) []string {
	var ids []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestTicketListFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.ticket("Invoice twice", "charged twice for the invoice", e.req, &e.mod, tickets.PriorityHigh)
	b := e.ticket("VPN drops", "the vpn tunnel drops every hour", e.req2, &e.mod2, tickets.PriorityMedium)
	c := e.ticket("Slow query", "postgres query is slow", e.req, nil, tickets.PriorityHigh)
	d := e.ticket("Password reset", "cannot reset my password", e.req2, &e.mod, tickets.PriorityLow)
	err := e.st.InTx(ctx, func(tx *tickets.Store) error {
		sys := tickets.Actor{Channel: tickets.ChannelSystem}
		if _, err := tx.SetSkills(ctx, a.ID, []string{"billing"}, sys); err != nil {
			return err
		}
		if _, err := tx.SetSkills(ctx, c.ID, []string{"postgres"}, sys); err != nil {
			return err
		}
		_, err := tx.SetStatus(ctx, d.ID, tickets.StatusCompleted, sys)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ts ...tickets.Ticket) []string {
		out := []string{}
		for _, t := range ts {
			out = append(out, itoa(t.ID))
		}
		return out
	}
	admin := e.client()
	admin.signIn(e.admin)
	for _, tc := range []struct {
		name  string
		query string
		want  []string
	}{
		{"default order: priority, then oldest", "", ids(a, c, b, d)},
		{"status", "?status=completed", ids(d)},
		{"status alias", "?status=done", ids(d)},
		{"priority", "?priority=high", ids(a, c)},
		{"assignee", "?assignee=" + itoa(e.mod.ID), ids(a, d)},
		{"unassigned", "?assignee=none", ids(c)},
		{"assigned to me (nobody)", "?assignee=me", ids()},
		{"skill", "?skill=postgres", ids(c)},
		{"full text", "?q=vpn", ids(b)},
		{"full text, web search syntax", "?q=" + url.QueryEscape(`"invoice" -vpn`), ids(a)},
		{"newest first", "?sort=newest", ids(d, c, b, a)},
		{"filters combine", "?priority=high&assignee=none", ids(c)},
		{"unknown values are ignored", "?status=bogus&priority=urgent-ish", ids(a, c, b, d)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := admin.get("/tickets" + tc.query)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			got := listed(res.body)
			if got == nil {
				got = []string{}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("tickets listed (-want +got):\n%s", diff)
			}
		})
	}

	// Counts per status keep the other filters.
	res := admin.get("/tickets?priority=high")
	for _, want := range []string{`All <span class="count">2</span>`, `To-Do <span class="count">2</span>`,
		`Completed <span class="count">0</span>`} {
		if !strings.Contains(res.body, want) {
			t.Errorf("counts lack %q", want)
		}
	}

	// A moderator's list holds only their tickets, whatever the filters say.
	mod := e.client()
	mod.signIn(e.mod)
	if diff := cmp.Diff(ids(a, d), listed(mod.get("/tickets").body)); diff != "" {
		t.Errorf("moderator's list (-want +got):\n%s", diff)
	}
	if got := listed(mod.get("/tickets?assignee=" + itoa(e.mod2.ID)).body); len(got) != 0 {
		t.Errorf("moderator sees another's tickets through the assignee filter: %v", got)
	}
}

func TestTicketListPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 27; i++ {
		e.ticket("Ticket "+itoa(int64(i)), "body", e.req, nil, "")
	}
	c := e.client()
	c.signIn(e.admin)
	first := c.get("/tickets")
	if n := len(listed(first.body)); n != 25 {
		t.Fatalf("first page has %d tickets, want 25", n)
	}
	if !strings.Contains(first.body, "Page 1 of 2") || !strings.Contains(first.body, `href="/tickets?page=2"`) {
		t.Fatal("first page does not link the second")
	}
	second := c.get("/tickets?page=2")
	if n := len(listed(second.body)); n != 2 {
		t.Fatalf("second page has %d tickets, want 2", n)
	}
}

// TestRoles runs every page and action as every role. Another's ticket is
// a 404 like a ticket that does not exist; a role's missing power on a
// ticket it may see is refused without change.
func TestRoles(t *testing.T) {
	t.Parallel()
	for _, seeUnassigned := range []bool{false, true} {
		t.Run("moderators see unassigned="+map[bool]string{true: "yes", false: "no"}[seeUnassigned], func(t *testing.T) {
			e := newEnv(t, func(o *admin.Options) { o.ModeratorsSeeUnassigned = seeUnassigned })
			mine := e.ticket("Mine", "for mod", e.req, &e.mod, "")
			theirs := e.ticket("Theirs", "for mod2", e.req2, &e.mod2, "")
			nobodys := e.ticket("Nobody's", "unassigned", e.req, nil, "")

			anon := e.client()
			admin := e.client()
			admin.signIn(e.admin)
			mod := e.client()
			mod.signIn(e.mod)
			req := e.client()
			req.signInLink(e.req, mine.ID)

			page := func(tk tickets.Ticket) string { return "/tickets/" + itoa(tk.ID) }
			unassigned := http.StatusNotFound
			if seeUnassigned {
				unassigned = http.StatusOK
			}
			for _, tc := range []struct {
				name   string
				c      *client
				path   string
				status int
			}{
				{"anonymous home", anon, "/", http.StatusSeeOther},
				{"anonymous list", anon, "/tickets", http.StatusSeeOther},
				{"anonymous new request", anon, "/portal/new", http.StatusSeeOther},
				{"anonymous quarantine", anon, "/quarantine", http.StatusSeeOther},
				{"anonymous ticket", anon, page(mine), http.StatusSeeOther},
				{"anonymous portal", anon, "/portal", http.StatusSeeOther},
				{"admin list", admin, "/tickets", http.StatusOK},
				{"admin any ticket", admin, page(theirs), http.StatusOK},
				{"admin unassigned ticket", admin, page(nobodys), http.StatusOK},
				{"admin no such ticket", admin, "/tickets/999999", http.StatusNotFound},
				{"admin quarantine", admin, "/quarantine", http.StatusOK},
				{"admin people", admin, "/people", http.StatusOK},
				{"moderator own ticket", mod, page(mine), http.StatusOK},
				{"moderator another's ticket", mod, page(theirs), http.StatusNotFound},
				{"moderator unassigned ticket", mod, page(nobodys), unassigned},
				{"moderator quarantine", mod, "/quarantine", http.StatusForbidden},
				{"moderator people", mod, "/people", http.StatusForbidden},
				{"requester staff list", req, "/tickets", http.StatusNotFound},
				{"requester staff ticket page", req, page(mine), http.StatusNotFound},
				{"requester people", req, "/people", http.StatusNotFound},
				{"requester own ticket in the portal", req, "/portal/tickets/" + itoa(mine.ID), http.StatusOK},
				{"requester another's ticket in the portal", req, "/portal/tickets/" + itoa(theirs.ID), http.StatusNotFound},
				{"requester's list", req, "/portal", http.StatusOK},
				{"requester's new request form", req, "/portal/new", http.StatusOK},
				{"requester quarantine", req, "/quarantine", http.StatusNotFound},
				{"moderator's portal", mod, "/portal", http.StatusOK},
				{"anonymous tokens", anon, "/tokens", http.StatusSeeOther},
				{"admin tokens", admin, "/tokens", http.StatusOK},
				{"moderator tokens", mod, "/tokens", http.StatusOK},
				{"requester tokens", req, "/tokens", http.StatusNotFound},
			} {
				t.Run(tc.name, func(t *testing.T) {
					res := tc.c.get(tc.path)
					if res.StatusCode != tc.status {
						t.Fatalf("GET %s: %d, want %d", tc.path, res.StatusCode, tc.status)
					}
					if tc.status == http.StatusNotFound && strings.Contains(res.body, "Theirs") {
						t.Fatal("the 404 page shows the ticket")
					}
				})
			}

			// The start page sends each to their own.
			for _, tc := range []struct {
				name string
				c    *client
				to   string
			}{{"anonymous", anon, "/signin"}, {"admin", admin, "/tickets"}, {"moderator", mod, "/tickets"}, {"requester", req, "/portal"}} {
				if got := tc.c.get("/").Header.Get("Location"); got != tc.to {
					t.Errorf("%s: / leads to %q, want %q", tc.name, got, tc.to)
				}
			}

			// Actions: each must leave the ticket unchanged when refused.
			for _, tc := range []struct {
				name   string
				c      *client
				ticket tickets.Ticket
				path   string
				form   url.Values
				status int // 303 with a notice, or an error page
				denied bool
			}{
				{"moderator sets status of another's", mod, theirs, "/status", url.Values{"status": {"completed"}}, http.StatusNotFound, true},
				{"moderator edits notes of another's", mod, theirs, "/notes", url.Values{"notes": {"x"}}, http.StatusNotFound, true},
				{"moderator replies on another's", mod, theirs, "/reply", url.Values{"body": {"hi"}}, http.StatusNotFound, true},
				{"moderator assigns own ticket to another", mod, mine, "/assign", url.Values{"assignee_id": {itoa(e.mod2.ID)}}, http.StatusSeeOther, true},
				{"requester posts a staff action", req, mine, "/status", url.Values{"status": {"completed"}}, http.StatusNotFound, true},
				{"moderator sets status of own", mod, mine, "/status", url.Values{"status": {"in-progress"}}, http.StatusSeeOther, false},
				{"admin assigns another's", admin, theirs, "/assign", url.Values{"assignee_id": {itoa(e.mod.ID)}}, http.StatusSeeOther, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before := e.snapshot(tc.ticket.ID)
					res := tc.c.post("/tickets/"+itoa(tc.ticket.ID)+tc.path, tc.form)
					if res.StatusCode != tc.status {
						t.Fatalf("POST: %d, want %d", res.StatusCode, tc.status)
					}
					changed := e.snapshot(tc.ticket.ID) != before
					if changed == tc.denied {
						t.Fatalf("ticket changed: %v, want %v", changed, !tc.denied)
					}
				})
			}

			// Taking an unassigned ticket: only when moderators see them.
			res := mod.post("/tickets/"+itoa(nobodys.ID)+"/assign", url.Values{"assignee_id": {itoa(e.mod.ID)}})
			got, _ := e.st.Ticket(context.Background(), nobodys.ID)
			taken := got.AssigneeID != nil && *got.AssigneeID == e.mod.ID
			if taken != seeUnassigned {
				t.Fatalf("moderator took an unassigned ticket: %v (%d), want %v", taken, res.StatusCode, seeUnassigned)
			}
		})
	}
}

// snapshot is everything about a ticket an action may change.
func (e *env) snapshot(id int64) string {
	e.t.Helper()
	ctx := context.Background()
	t, err := e.st.Ticket(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	msgs, err := e.st.Messages(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(struct {
		T tickets.Ticket
		N int
	}{t, len(msgs)})
	return string(b)
}

func eventNames(e *env, ticketID int64) []string {
	rows, err := e.pool.Query(context.Background(), `SELECT name FROM event_outbox WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func TestTicketActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tk := e.ticket("Printer on fire", "it is on fire", e.req, nil, "")
	cc := e.user("boss@example.com", "The Boss", tickets.RoleUser, nil)
	if err := e.st.AddParticipant(ctx, tk.ID, cc.ID); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signIn(e.admin)
	path := "/tickets/" + itoa(tk.ID)

	// Assign: the change, its audit entry and ticket.assigned, in one go.
	res := c.post(path+"/assign", url.Values{"assignee_id": {itoa(e.mod.ID)}, "reason": {"knows printers"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("assign: %d", res.StatusCode)
	}
	got, _ := e.st.Ticket(ctx, tk.ID)
	if got.AssigneeID == nil || *got.AssigneeID != e.mod.ID || got.AssignmentReason != "knows printers" {
		t.Fatalf("after assign: assignee %v, reason %q", got.AssigneeID, got.AssignmentReason)
	}
	if !strings.Contains(c.get(path).body, "Assignee changed from nobody to mod@example.com.") {
		t.Error("no notice after assigning")
	}
	var data map[string]any
	if err := e.pool.QueryRow(ctx, `SELECT data FROM event_outbox WHERE ticket_id = $1 AND name = 'ticket.assigned'`, tk.ID).Scan(&data); err != nil {
		t.Fatalf("no ticket.assigned event: %v", err)
	}
	if data["assignee_id"] != float64(e.mod.ID) || data["actor_id"] != float64(e.admin.ID) || data["channel"] != "web" {
		t.Fatalf("ticket.assigned data %v", data)
	}

	// Status, priority, notes.
	for _, step := range []struct {
		path string
		form url.Values
	}{
		{"/status", url.Values{"status": {"completed"}}},
		{"/priority", url.Values{"priority": {"high"}}},
		{"/notes", url.Values{"notes": {"Try turning it off first."}}},
	} {
		if res := c.post(path+step.path, step.form); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST %s: %d", step.path, res.StatusCode)
		}
	}
	got, _ = e.st.Ticket(ctx, tk.ID)
	if got.Status != tickets.StatusCompleted || got.Priority != tickets.PriorityHigh || got.HelpfulNotes != "Try turning it off first." {
		t.Fatalf("after the actions: status %s, priority %s, notes %q", got.Status, got.Priority, got.HelpfulNotes)
	}
	if diff := cmp.Diff([]string{"ticket.assigned", "ticket.status_changed", "ticket.completed"}, eventNames(e, tk.ID)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	// A bad value is refused with a notice, and changes nothing.
	c.post(path+"/status", url.Values{"status": {"sideways"}})
	if page := c.get(path); !strings.Contains(page.body, "unknown status") {
		t.Error("no notice for an unknown status")
	}

	// A reply is stored and queued to the requester and the CC'd boss in
	// one transaction; the same form posted twice stores it once.
	form := url.Values{"body": {"We sent a technician."}, "internal": {"0"}, "nonce": {"form-nonce-1234"}}
	for i := 0; i < 2; i++ {
		if res := c.post(path+"/reply", form); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("reply %d: %d", i, res.StatusCode)
		}
	}
	if n := e.count(`SELECT count(*) FROM messages WHERE ticket_id = $1 AND direction = 'outbound' AND kind = 'reply'`, tk.ID); n != 1 {
		t.Fatalf("%d replies stored, want 1", n)
	}
	var rcpts []string
	rows, _ := e.pool.Query(ctx, `SELECT unnest(recipients) FROM mail_outbox WHERE ticket_id = $1 AND kind = 'reply' ORDER BY 1`, tk.ID)
	for rows.Next() {
		var r string
		rows.Scan(&r)
		rcpts = append(rcpts, r)
	}
	rows.Close()
	if diff := cmp.Diff([]string{cc.Email, e.req.Email}, rcpts); diff != "" {
		t.Fatalf("reply mailed to (-want +got):\n%s", diff)
	}
	if page := c.get(path); !strings.Contains(page.body, "We sent a technician.") || !strings.Contains(page.body, "That was sent already.") {
		t.Error("the thread lacks the reply, or the second post was not recognised")
	}

	// An internal note is stored, marked, and mailed to nobody.
	mails := e.count(`SELECT count(*) FROM mail_outbox WHERE ticket_id = $1`, tk.ID)
	c.post(path+"/reply", url.Values{"body": {"Between us: the printer is ancient."}, "internal": {"1"}})
	if n := e.count(`SELECT count(*) FROM messages WHERE ticket_id = $1 AND kind = 'note' AND internal`, tk.ID); n != 1 {
		t.Fatalf("%d internal notes, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM mail_outbox WHERE ticket_id = $1`, tk.ID); n != mails {
		t.Fatalf("an internal note queued mail: %d mails, had %d", n, mails)
	}
	page := c.get(path).body
	if !strings.Contains(page, `class="msg note"`) || !strings.Contains(page, "Internal note") {
		t.Error("the note is not marked internal on the page")
	}
	// The requester never sees it.
	req := e.client()
	req.signInLink(e.req, tk.ID)
	portal := req.get("/portal/tickets/" + itoa(tk.ID)).body
	if strings.Contains(portal, "ancient") {
		t.Fatal("the portal shows an internal note")
	}
	if !strings.Contains(portal, "We sent a technician.") {
		t.Fatal("the portal lacks the staff reply")
	}

	// Every change is in the audit trail with its actor and channel.
	trail, _ := e.st.AuditTrail(ctx, tk.ID)
	var actions []string
	for _, a := range trail {
		if a.Channel == tickets.ChannelWeb {
			actions = append(actions, a.Action)
		}
	}
	if diff := cmp.Diff([]string{"assign", "status", "priority", "helpful_notes", "reply", "note"}, actions); diff != "" {
		t.Fatalf("web audit entries (-want +got):\n%s", diff)
	}
}

func TestTicketPageShowsTriage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tk := e.ticket("Refund", "I want my money back", e.req, nil, "")
	err := e.st.InTx(ctx, func(tx *tickets.Store) error {
		return tx.ApplyTriage(ctx, tk.ID, tickets.Triage{Summary: "Customer asks for a refund",
			HelpfulNotes: "Check the refund policy", FirstResponse: "We are looking into your refund.",
			Priority: tickets.PriorityHigh, Skills: []string{"billing"}, SuggestedSkills: []string{"refunds"},
			AssigneeID: &e.mod.ID, AssignmentReason: "billing skill, lowest load"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO ai_decisions (ticket_id, provider, model, input_hash)
		VALUES ($1, 'openai', 'gpt-test-mini', '\x00')`, tk.ID); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signIn(e.mod)
	page := c.get("/tickets/" + itoa(tk.ID)).body
	for _, want := range []string{"Customer asks for a refund", "Check the refund policy", "We are looking into your refund.",
		"billing skill, lowest load", "openai", "gpt-test-mini", `<span class="chip new">refunds</span>`, "In-Progress"} {
		if !strings.Contains(page, want) {
			t.Errorf("triage panel lacks %q", want)
		}
	}
}

func TestAttachments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tk := e.ticket("Logs", "see attached", e.req, &e.mod, "")
	msgs, _ := e.st.Messages(ctx, tk.ID)
	note, err := e.st.InsertMessage(ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Outbound, Kind: tickets.KindNote,
		Internal: true, MessageID: "note-1@example.com", TextBody: "internal"})
	if err != nil {
		t.Fatal(err)
	}
	insert := func(msgID int64, name, ctype string, data []byte) int64 {
		var id int64
		err := e.pool.QueryRow(ctx, `INSERT INTO attachments (message_id, filename, content_type, size, sha256, data)
			VALUES ($1, $2, $3, $4, sha256($5), $5) RETURNING id`, msgID, name, ctype, len(data), data).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	logID := insert(msgs[0].ID, "log.txt", "text/plain", []byte("line 1\n"))
	htmlID := insert(msgs[0].ID, "evil.html", "text/html", []byte("<script>alert(1)</script>"))
	secretID := insert(note.ID, "secret.txt", "text/plain", []byte("staff only"))

	staff := e.client()
	staff.signIn(e.mod)
	req := e.client()
	req.signInLink(e.req, tk.ID)
	other := e.client()
	other2 := e.ticket("Other", "x", e.req2, nil, "")
	other.signInLink(e.req2, other2.ID)

	staffURL := func(id int64) string { return "/tickets/" + itoa(tk.ID) + "/attachments/" + itoa(id) }
	portalURL := func(id int64) string { return "/portal/tickets/" + itoa(tk.ID) + "/attachments/" + itoa(id) }
	for _, tc := range []struct {
		name   string
		c      *client
		path   string
		status int
		ctype  string
	}{
		{"staff downloads text", staff, staffURL(logID), http.StatusOK, "text/plain; charset=utf-8"},
		{"html downloads as bytes", staff, staffURL(htmlID), http.StatusOK, "application/octet-stream"},
		{"staff downloads a note's file", staff, staffURL(secretID), http.StatusOK, "text/plain; charset=utf-8"},
		{"requester downloads their file", req, portalURL(logID), http.StatusOK, "text/plain; charset=utf-8"},
		{"requester cannot get a note's file", req, portalURL(secretID), http.StatusNotFound, ""},
		{"another requester cannot", other, portalURL(logID), http.StatusNotFound, ""},
		{"attachment of another ticket's url", staff, "/tickets/" + itoa(other2.ID) + "/attachments/" + itoa(logID), http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.c.get(tc.path)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != http.StatusOK {
				return
			}
			if got := res.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if cd := res.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
				t.Errorf("Content-Disposition %q", cd)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
				t.Errorf("CSP %q lacks sandbox", csp)
			}
		})
	}
}
