package admin_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"ticketd/workflows/triage"
)

// TestSavedReplies: admins write, edit and delete saved replies; staff
// insert one into the answer box of a ticket, escaped; triage proposes the
// one that fits a new ticket as its first response.
func TestSavedReplies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	adm := e.client()
	adm.signIn(e.admin)
	body := "Choose “Forgot password” on the sign-in page. <script>alert(1)</script>"
	res := adm.post("/saved-replies", url.Values{"title": {"Password reset"}, "body": {body}, "skills": {"billing"},
		"terms": {"forgot my password\npassword reset"}, "language": {"EN"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d %s", res.StatusCode, errorText(res.body))
	}
	list, err := e.st.SavedReplies(ctx)
	if err != nil || len(list) != 1 || list[0].Language != "en" || list[0].Skills[0] != "billing" || len(list[0].Terms) != 2 {
		t.Fatalf("saved replies %+v, %v", list, err)
	}
	sr := list[0]
	page := adm.get("/saved-replies")
	if !strings.Contains(page.body, "Password reset") || strings.Contains(page.body, "<script>alert(1)") {
		t.Errorf("the list does not show the reply, or shows its markup unescaped")
	}

	// Edit: no longer billing's, but the accounts skill is nobody's here;
	// give it the words only.
	res = adm.post("/saved-replies", url.Values{"id": {itoa(sr.ID)}, "title": {"Resetting your password"}, "body": {body},
		"terms": {"forgot my password\nreset my password"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %d %s", res.StatusCode, errorText(res.body))
	}
	if got, _ := e.st.SavedReply(ctx, sr.ID); got.Title != "Resetting your password" || len(got.Skills) != 0 || got.Language != "" {
		t.Errorf("after the edit: %+v", got)
	}
	res = adm.post("/saved-replies", url.Values{"title": {" "}, "body": {"text kept"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.body, "needs a title") || !strings.Contains(res.body, "text kept") {
		t.Errorf("a reply without a title: %d %s", res.StatusCode, errorText(res.body))
	}
	res = adm.post("/saved-replies", url.Values{"title": {"x"}, "body": {"y"}, "language": {"english"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.body, "two-letter code") {
		t.Errorf("a language that is no code: %d %s", res.StatusCode, errorText(res.body))
	}

	// A moderator inserts it on the ticket page: into the answer box, as
	// text.
	tk := e.ticket("Password", "I forgot my password.", e.req, &e.mod, "")
	mod := e.client()
	mod.signIn(e.mod)
	page = mod.get("/tickets/" + itoa(tk.ID))
	if !strings.Contains(page.body, "?saved_reply="+itoa(sr.ID)+"#answer") {
		t.Fatalf("the ticket page offers no saved reply")
	}
	page = mod.get("/tickets/" + itoa(tk.ID) + "?saved_reply=" + itoa(sr.ID))
	box := page.body[strings.Index(page.body, `<textarea name="body"`):]
	box = box[:strings.Index(box, "</textarea>")]
	if !strings.Contains(html.UnescapeString(box), body) || strings.Contains(box, "<script>") {
		t.Errorf("the answer box holds %q", box)
	}
	if page := mod.get("/tickets/" + itoa(tk.ID) + "?saved_reply=999999"); strings.Contains(html.UnescapeString(page.body), "Forgot password") &&
		strings.Contains(page.body[strings.Index(page.body, `<textarea name="body"`):], "Forgot") {
		t.Error("an unknown saved reply filled the answer box")
	}
	// Moderators use saved replies; only admins write them.
	if res := mod.post("/saved-replies", url.Values{"title": {"mine"}, "body": {"x"}}); res.StatusCode == http.StatusSeeOther {
		t.Error("a moderator wrote a saved reply")
	}
	if res := mod.post("/saved-replies/delete", url.Values{"id": {itoa(sr.ID)}}); res.StatusCode == http.StatusSeeOther {
		t.Error("a moderator deleted a saved reply")
	}

	// Triage proposes it to a ticket it fits, and to no other.
	desk, err := triage.LoadDesk(ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	rules := triage.Guard(triage.NewRules(triage.RulesOptions{}), triage.GuardOptions{})
	for subject, want := range map[string]string{"I forgot my password": body, "The printer jams": ""} {
		res, _, err := rules.Analyze(ctx, desk.Input(tk.ID, subject, subject+" since this morning."))
		if err != nil {
			t.Fatal(err)
		}
		if res.FirstResponse != want {
			t.Errorf("%q: first response %q, want %q", subject, res.FirstResponse, want)
		}
	}

	if res := adm.post("/saved-replies/delete", url.Values{"id": {itoa(sr.ID)}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if _, err := e.st.SavedReply(ctx, sr.ID); err == nil {
		t.Error("the saved reply is still there")
	}
	if res := adm.post("/saved-replies/delete", url.Values{"id": {itoa(sr.ID)}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("deleting it again: %d", res.StatusCode)
	}
}
