package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"ticketd/admin"
	"ticketd/tickets"
)

type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decode[T any](t *testing.T, res response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(res.body), &v); err != nil {
		t.Fatalf("decode %q: %v", res.body, err)
	}
	return v
}

func TestAPIAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	secret := e.token(e.admin)
	revoked := e.token(e.mod)
	toks, _ := e.st.APITokens(ctx, e.mod.ID)
	if err := e.st.RevokeAPIToken(ctx, toks[0].ID); err != nil {
		t.Fatal(err)
	}
	// A browser's signed-in cookie is no credential here.
	browser := e.client()
	browser.signIn(e.admin)
	cookieReq, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v1/tickets", nil)
	cookieRes := browser.do(cookieReq)

	for _, tc := range []struct {
		name   string
		res    response
		status int
		code   string
	}{
		{"no header", e.api("", "GET", "/tickets", ""), http.StatusUnauthorized, "unauthorized"},
		{"unknown token", e.api("tkd_nope", "GET", "/tickets", ""), http.StatusUnauthorized, "unauthorized"},
		{"revoked token", e.api(revoked, "GET", "/tickets", ""), http.StatusUnauthorized, "unauthorized"},
		{"session cookie only", cookieRes, http.StatusUnauthorized, "unauthorized"},
		{"unknown route", e.api(secret, "GET", "/nope", ""), http.StatusNotFound, "not_found"},
		{"wrong method", e.api(secret, "DELETE", "/tickets/1", ""), http.StatusMethodNotAllowed, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", tc.res.StatusCode, tc.status, tc.res.body)
			}
			if got := decode[apiErr](t, tc.res).Error.Code; got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
			if ct := tc.res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	if res := e.api(secret, "GET", "/tickets", ""); res.StatusCode != http.StatusOK {
		t.Fatalf("good token: %d", res.StatusCode)
	}
}

type listBody struct {
	Tickets []struct {
		ID           int64   `json:"id"`
		Status       string  `json:"status"`
		HelpfulNotes *string `json:"helpful_notes"`
		Assignee     *struct {
			Email string `json:"email"`
		} `json:"assignee"`
	} `json:"tickets"`
	Total  int            `json:"total"`
	Counts map[string]int `json:"counts"`
}

func TestAPIRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *admin.Options) { o.ModeratorsSeeUnassigned = true })
	mine := e.ticket("Mine", "x", e.req, &e.mod, tickets.PriorityHigh)
	theirs := e.ticket("Theirs", "y", e.req2, &e.mod2, "")
	nobodys := e.ticket("Nobody's", "z", e.req, nil, "")
	adminTok, modTok, reqTok := e.token(e.admin), e.token(e.mod), e.token(e.req)

	ids := func(b listBody) []int64 {
		var out []int64
		for _, t := range b.Tickets {
			out = append(out, t.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		tok   string
		query string
		want  []int64
	}{
		{"admin sees all", adminTok, "", []int64{mine.ID, theirs.ID, nobodys.ID}},
		{"admin filters", adminTok, "?assignee=none", []int64{nobodys.ID}},
		{"moderator: own and unassigned", modTok, "", []int64{mine.ID, nobodys.ID}},
		{"moderator cannot widen by filter", modTok, "?assignee=" + itoa(e.mod2.ID), nil},
		{"requester: own", reqTok, "", []int64{mine.ID, nobodys.ID}},
		{"priority filter", modTok, "?priority=high", []int64{mine.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.api(tc.tok, "GET", "/tickets"+tc.query, "")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, res.body)
			}
			b := decode[listBody](t, res)
			if diff := cmp.Diff(tc.want, ids(b)); diff != "" {
				t.Fatalf("tickets (-want +got):\n%s", diff)
			}
			if b.Total != len(tc.want) {
				t.Fatalf("total %d", b.Total)
			}
		})
	}
	if b := decode[listBody](t, e.api(reqTok, "GET", "/tickets", "")); b.Tickets[0].HelpfulNotes != nil {
		t.Error("a requester gets the helpful notes")
	}
	if res := e.api(adminTok, "GET", "/tickets?status=sideways", ""); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("unknown status filter: %d", res.StatusCode)
	}

	for _, tc := range []struct {
		name   string
		tok    string
		method string
		path   string
		body   string
		status int
		code   string
	}{
		{"moderator reads another's", modTok, "GET", "/tickets/" + itoa(theirs.ID), "", http.StatusNotFound, "not_found"},
		{"requester reads another's", reqTok, "GET", "/tickets/" + itoa(theirs.ID), "", http.StatusNotFound, "not_found"},
		{"no such ticket", adminTok, "GET", "/tickets/999999", "", http.StatusNotFound, "not_found"},
		{"moderator sets status of another's", modTok, "POST", "/tickets/" + itoa(theirs.ID) + "/status", `{"status":"done"}`, http.StatusNotFound, "not_found"},
		{"moderator assigns own to another", modTok, "POST", "/tickets/" + itoa(mine.ID) + "/assign", `{"assignee_id":` + itoa(e.mod2.ID) + `}`, http.StatusForbidden, "forbidden"},
		{"requester sets status of own", reqTok, "POST", "/tickets/" + itoa(mine.ID) + "/status", `{"status":"done"}`, http.StatusForbidden, "forbidden"},
		{"requester edits notes", reqTok, "PUT", "/tickets/" + itoa(mine.ID) + "/notes", `{"notes":"x"}`, http.StatusForbidden, "forbidden"},
		{"requester writes an internal note", reqTok, "POST", "/tickets/" + itoa(mine.ID) + "/reply", `{"body":"x","internal":true}`, http.StatusForbidden, "forbidden"},
		{"requester replies to another's", reqTok, "POST", "/tickets/" + itoa(theirs.ID) + "/reply", `{"body":"x"}`, http.StatusNotFound, "not_found"},
		{"unknown status", modTok, "POST", "/tickets/" + itoa(mine.ID) + "/status", `{"status":"sideways"}`, http.StatusUnprocessableEntity, "invalid"},
		{"assign to a requester", adminTok, "POST", "/tickets/" + itoa(mine.ID) + "/assign", `{"assignee_id":` + itoa(e.req.ID) + `}`, http.StatusUnprocessableEntity, "invalid"},
		{"unknown field", adminTok, "POST", "/tickets/" + itoa(mine.ID) + "/status", `{"state":"done"}`, http.StatusBadRequest, "bad_request"},
		{"not json", adminTok, "PUT", "/tickets/" + itoa(mine.ID) + "/notes", `notes=x`, http.StatusBadRequest, "bad_request"},
		{"notes missing", adminTok, "PUT", "/tickets/" + itoa(mine.ID) + "/notes", `{}`, http.StatusBadRequest, "bad_request"},
		{"empty reply", modTok, "POST", "/tickets/" + itoa(mine.ID) + "/reply", `{"body":"  "}`, http.StatusUnprocessableEntity, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(mine.ID) + e.snapshot(theirs.ID)
			res := e.api(tc.tok, tc.method, tc.path, tc.body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, res.body)
			}
			if got := decode[apiErr](t, res).Error.Code; got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
			if e.snapshot(mine.ID)+e.snapshot(theirs.ID) != before {
				t.Fatal("a refused call changed a ticket")
			}
		})
	}
}

type detailBody struct {
	Ticket struct {
		ID           int64   `json:"id"`
		Status       string  `json:"status"`
		HelpfulNotes *string `json:"helpful_notes"`
		Assignee     *struct {
			ID int64 `json:"id"`
		} `json:"assignee"`
	} `json:"ticket"`
	FirstResponse string `json:"first_response"`
	Messages      []struct {
		Kind     string `json:"kind"`
		Internal bool   `json:"internal"`
		Text     string `json:"text"`
		HTML     string `json:"html"`
	} `json:"messages"`
	Triage *struct {
		Summary  string `json:"summary"`
		Provider string `json:"provider"`
		Model    string `json:"model"`
	} `json:"triage"`
	Audit []struct {
		Action  string `json:"action"`
		Channel string `json:"channel"`
		Actor   string `json:"actor"`
	} `json:"audit"`
}

func TestAPIChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *admin.Options) { o.ModeratorsSeeUnassigned = true })
	ctx := context.Background()
	tk := e.ticket("API ticket", "please help", e.req, nil, "")
	adminTok, modTok, reqTok := e.token(e.admin), e.token(e.mod), e.token(e.req)
	path := "/tickets/" + itoa(tk.ID)

	// A moderator takes the unassigned ticket.
	res := e.api(modTok, "POST", path+"/assign", `{"assignee_email":"MOD@example.com"}`)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("take: %d %s", res.StatusCode, res.body)
	}
	change := decode[struct {
		Change struct {
			Field   string `json:"field"`
			New     string `json:"new"`
			Changed bool   `json:"changed"`
		} `json:"change"`
	}](t, res)
	if change.Change.Field != "assignee" || change.Change.New != e.mod.Email || !change.Change.Changed {
		t.Fatalf("change %+v", change.Change)
	}
	// The admin reassigns; the same call again changes nothing.
	for i, changed := range []bool{true, false} {
		res := e.api(adminTok, "POST", path+"/assign", `{"assignee_id":`+itoa(e.mod2.ID)+`,"reason":"networking"}`)
		if res.StatusCode != http.StatusOK || strings.Contains(res.body, `"changed": true`) != changed {
			t.Fatalf("reassign %d: %d %s", i, res.StatusCode, res.body)
		}
	}
	if res := e.api(adminTok, "POST", path+"/status", `{"status":"In-Progress"}`); res.StatusCode != http.StatusOK {
		t.Fatalf("status: %d", res.StatusCode)
	}
	if res := e.api(adminTok, "PUT", path+"/notes", `{"notes":"Reset the router."}`); res.StatusCode != http.StatusOK {
		t.Fatalf("notes: %d", res.StatusCode)
	}
	if diff := cmp.Diff([]string{"ticket.assigned", "ticket.assigned", "ticket.status_changed"}, eventNames(e, tk.ID)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}

	// A staff reply with an Idempotency-Key: stored and queued once.
	for i, status := range []int{http.StatusCreated, http.StatusOK} {
		res := e.api(adminTok, "POST", path+"/reply", `{"body":"Did that help?"}`, "Idempotency-Key", "retry-key-0001")
		if res.StatusCode != status {
			t.Fatalf("reply %d: %d %s", i, res.StatusCode, res.body)
		}
	}
	if n := e.count(`SELECT count(*) FROM mail_outbox WHERE ticket_id = $1 AND kind = 'reply'`, tk.ID); n != 1 {
		t.Fatalf("%d reply mails, want 1", n)
	}
	if res := e.api(adminTok, "POST", path+"/reply", `{"body":"Note to self","internal":true}`); res.StatusCode != http.StatusCreated {
		t.Fatalf("note: %d", res.StatusCode)
	}
	// The requester's reply goes through intake.
	if res := e.api(reqTok, "POST", path+"/reply", `{"body":"Yes, thanks!"}`); res.StatusCode != http.StatusCreated {
		t.Fatalf("requester reply: %d %s", res.StatusCode, res.body)
	}
	var src string
	if err := e.pool.QueryRow(ctx, `SELECT r.source FROM messages m JOIN raw_messages r ON r.id = m.raw_message_id
		WHERE m.ticket_id = $1 AND m.reply_text = 'Yes, thanks!'`, tk.ID).Scan(&src); err != nil || src != "api" {
		t.Fatalf("requester's reply: source %q, %v", src, err)
	}

	// What each role reads.
	staff := decode[detailBody](t, e.api(adminTok, "GET", path, ""))
	if staff.Ticket.Assignee == nil || staff.Ticket.Assignee.ID != e.mod2.ID || staff.Ticket.Status != "in_progress" ||
		staff.Ticket.HelpfulNotes == nil || *staff.Ticket.HelpfulNotes != "Reset the router." {
		t.Fatalf("staff view of the ticket %+v", staff.Ticket)
	}
	var kinds []string
	for _, m := range staff.Messages {
		kinds = append(kinds, m.Kind)
	}
	if diff := cmp.Diff([]string{"opening", "reply", "note", "reply"}, kinds); diff != "" {
		t.Fatalf("staff messages (-want +got):\n%s", diff)
	}
	if staff.Triage == nil || len(staff.Audit) == 0 {
		t.Fatal("staff view lacks triage or audit")
	}
	var apiActions []string
	for _, a := range staff.Audit {
		if a.Channel == "api" {
			apiActions = append(apiActions, a.Action)
		}
	}
	if diff := cmp.Diff([]string{"assign", "assign", "status", "helpful_notes", "reply", "note"}, apiActions); diff != "" {
		t.Fatalf("api audit entries (-want +got):\n%s", diff)
	}
	req := decode[detailBody](t, e.api(reqTok, "GET", path, ""))
	if req.Triage != nil || req.Audit != nil || req.Ticket.HelpfulNotes != nil {
		t.Fatal("the requester's view has staff-only parts")
	}
	for _, m := range req.Messages {
		if m.Internal || strings.Contains(m.Text, "Note to self") {
			t.Fatal("the requester's view has the internal note")
		}
	}
	if len(req.Messages) != 3 {
		t.Fatalf("requester sees %d messages, want 3", len(req.Messages))
	}
}

// TestUnstorableText: a NUL character or bytes that are not UTF-8, in a
// search, a form or a JSON body, are the caller's mistake (400), not ours.
func TestUnstorableText(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer jam", "it jams", e.req, &e.mod, "")
	c := e.client()
	c.signIn(e.admin)
	tok := e.token(e.admin)
	path := "/tickets/" + itoa(tk.ID)
	for _, tc := range []struct {
		name string
		res  func() response
	}{
		{"search with NUL", func() response { return c.get("/tickets?q=%00") }},
		{"search not UTF-8", func() response { return c.get("/tickets?q=%ff") }},
		{"API search with NUL", func() response { return e.api(tok, "GET", "/tickets?q=%00", "") }},
		{"API notes with NUL", func() response { return e.api(tok, "PUT", path+"/notes", `{"notes":"a\u0000b"}`) }},
		{"API reply with NUL", func() response { return e.api(tok, "POST", path+"/reply", `{"body":"a\u0000b"}`) }},
		{"web notes with NUL", func() response { return c.post(path+"/notes", url.Values{"notes": {"a\x00b"}}) }},
		{"token name not UTF-8", func() response { return c.post("/tokens", url.Values{"name": {"a\xffb"}}) }},
		{"sign-in address with NUL", func() response {
			return e.client().post("/signin", url.Values{"email": {"a\x00b@example.com"}, "password": {"x"}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if res := tc.res(); res.StatusCode != http.StatusBadRequest {
				t.Fatalf("%d, want 400\n%s", res.StatusCode, res.body)
			}
		})
	}
	if got, err := e.st.Ticket(context.Background(), tk.ID); err != nil || got.HelpfulNotes != "" {
		t.Errorf("notes changed to %q (%v)", got.HelpfulNotes, err)
	}
}

// TestAPIAssignByAddress: an address is looked up only for a caller who may
// assign to it, so nobody else learns which addresses have accounts.
func TestAPIAssignByAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *admin.Options) { o.ModeratorsSeeUnassigned = true })
	tk := e.ticket("Printer jam", "it jams", e.req, nil, "")
	path := "/tickets/" + itoa(tk.ID) + "/assign"
	for _, who := range []tickets.User{e.req2, e.req} {
		tok := e.token(who)
		unknown := e.api(tok, "POST", path, `{"assignee_email":"nobody@example.com"}`)
		known := e.api(tok, "POST", path, `{"assignee_email":"mod2@example.com"}`)
		if unknown.StatusCode != known.StatusCode || unknown.StatusCode/100 != 4 {
			t.Errorf("%s: unknown address %d, known address %d; want the same refusal", who.Email, unknown.StatusCode, known.StatusCode)
		}
	}
	modTok := e.token(e.mod)
	if res := e.api(modTok, "POST", path, `{"assignee_email":"mod2@example.com"}`); res.StatusCode != http.StatusForbidden {
		t.Errorf("a moderator assigning someone else by address: %d, want 403", res.StatusCode)
	}
	if res := e.api(modTok, "POST", path, `{"assignee_email":"MOD@example.com"}`); res.StatusCode != http.StatusOK {
		t.Fatalf("a moderator taking the ticket by their own address: %d %s", res.StatusCode, res.body)
	}
	adminTok := e.token(e.admin)
	if res := e.api(adminTok, "POST", path, `{"assignee_email":"nobody@example.com"}`); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("an admin naming an unknown address: %d, want 422", res.StatusCode)
	}
	if res := e.api(adminTok, "POST", path, `{"assignee_email":"mod2@example.com"}`); res.StatusCode != http.StatusOK {
		t.Errorf("an admin assigning by address: %d %s", res.StatusCode, res.body)
	}
	if got, err := e.st.Ticket(context.Background(), tk.ID); err != nil || got.AssigneeID == nil || *got.AssigneeID != e.mod2.ID {
		t.Errorf("assignee %v (%v), want mod2 (%d)", got.AssigneeID, err, e.mod2.ID)
	}
}

// TestIdempotencyKeysAreCaseSensitive: keys that differ in case are
// different requests.
func TestIdempotencyKeysAreCaseSensitive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer jam", "it jams", e.req, &e.mod, "")
	tok := e.token(e.mod)
	path := "/tickets/" + itoa(tk.ID) + "/reply"
	for _, key := range []string{"AbCdEfGh12", "abcdefgh12"} {
		if res := e.api(tok, "POST", path, `{"body":"answer under `+key+`"}`, "Idempotency-Key", key); res.StatusCode != http.StatusCreated {
			t.Fatalf("key %s: %d %s", key, res.StatusCode, res.body)
		}
	}
}

// TestStaffRepliesThread: a staff reply, stored before it is mailed, answers
// the thread and never itself.
func TestStaffRepliesThread(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer jam", "it jams", e.req, &e.mod, "")
	path := "/tickets/" + itoa(tk.ID) + "/reply"
	if res := e.api(e.token(e.mod), "POST", path, `{"body":"Which model is it?"}`); res.StatusCode != http.StatusCreated {
		t.Fatalf("API reply: %d %s", res.StatusCode, res.body)
	}
	c := e.client()
	c.signIn(e.mod)
	if res := c.post(path, url.Values{"body": {"Any news?"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("web reply: %d %s", res.StatusCode, res.body)
	}
	rows, err := e.pool.Query(context.Background(), `SELECT data FROM mail_outbox WHERE ticket_id = $1 AND kind = 'reply' ORDER BY id`, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	datas, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil || len(datas) != 2 {
		t.Fatalf("%d reply mails (%v), want 2", len(datas), err)
	}
	var first string
	for i, data := range datas {
		m, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		own, parent, refs := m.Header.Get("Message-Id"), m.Header.Get("In-Reply-To"), m.Header.Get("References")
		if own == "" || parent == own || strings.Contains(refs, own) {
			t.Errorf("reply %d: Message-Id %s, In-Reply-To %s, References %s: it answers itself", i, own, parent, refs)
		}
		if !strings.HasPrefix(refs, "<open-printer-jam@example.net>") {
			t.Errorf("reply %d: References %q do not start at the opening mail", i, refs)
		}
		if i == 0 {
			first = own
		} else if !strings.Contains(refs, first) {
			t.Errorf("the second reply's References %q lack the first reply %s", refs, first)
		}
	}
}

// TestAPIRequestBounds: filters the list does not know are refused, not
// dropped, and a body over a call's limit is a 413.
func TestAPIRequestBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := e.ticket("Printer jam", "it jams", e.req, &e.mod, "")
	tok := e.token(e.admin)
	for _, q := range []string{"assignee=bogus", "sort=bogus", "limit=0", "limit=abc", "offset=-1", "offset=99999999999", "status=sideways"} {
		if res := e.api(tok, "GET", "/tickets?"+q, ""); res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("GET /tickets?%s: %d, want 422", q, res.StatusCode)
		}
	}
	for _, q := range []string{"assignee=me", "assignee=none", "sort=updated", "limit=200", "offset=0"} {
		if res := e.api(tok, "GET", "/tickets?"+q, ""); res.StatusCode != http.StatusOK {
			t.Errorf("GET /tickets?%s: %d, want 200", q, res.StatusCode)
		}
	}
	big := `{"notes":"` + strings.Repeat("x", 2<<20) + `"}`
	res := e.api(tok, "PUT", "/tickets/"+itoa(tk.ID)+"/notes", big)
	if res.StatusCode != http.StatusRequestEntityTooLarge || decode[apiErr](t, res).Error.Code != "too_large" {
		t.Errorf("a 2 MB body: %d %s", res.StatusCode, res.body)
	}
}
